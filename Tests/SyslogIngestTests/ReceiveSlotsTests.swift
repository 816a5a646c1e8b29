@testable import SyslogIngest
import Testing

/// How many slots each `recvmmsg` offers (`DatagramListener.slotsToOffer`): twice as many, up to
/// the batch size, after a full call; twice the last count, at least 16, after one that was not.
@Suite struct ReceiveSlotsTests {
    @Test func offerFollowsWhatCallsReturn() {
        var offered = 64
        var offers: [Int] = []
        // A trickle, then a burst that fills every offer, then quiet again.
        for received in [1, 1, 0, 3, 16, 32, 64, 64, 40, 10, 1] {
            offered = DatagramListener.slotsToOffer(after: received, offered: offered, batchSize: 64)
            offers.append(offered)
        }
        #expect(offers == [16, 16, 16, 16, 32, 64, 64, 64, 64, 20, 16])
    }

    @Test func neverMoreThanTheBatchSize() {
        #expect(DatagramListener.slotsToOffer(after: 4, offered: 4, batchSize: 4) == 4)
        #expect(DatagramListener.slotsToOffer(after: 0, offered: 4, batchSize: 4) == 4)
        #expect(DatagramListener.slotsToOffer(after: 1, offered: 2, batchSize: 2) == 2)
    }
}
