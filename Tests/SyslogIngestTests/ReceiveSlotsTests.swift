@testable import SyslogIngest
import Testing

/// How many slots each `recvmmsg` offers (`DatagramListener.slotsToOffer`): all of them while calls
/// come back full, twice the last count (at least 8) when they do not.
@Suite struct ReceiveSlotsTests {
    @Test func offerFollowsWhatCallsReturn() {
        var offered = 64
        var offers: [Int] = []
        // A trickle, then a burst that fills every offer, then quiet again.
        for received in [1, 1, 0, 3, 8, 16, 32, 64, 64, 40, 1] {
            offered = DatagramListener.slotsToOffer(after: received, offered: offered, batchSize: 64)
            offers.append(offered)
        }
        #expect(offers == [8, 8, 8, 8, 16, 32, 64, 64, 64, 64, 8])
    }

    @Test func neverMoreThanTheBatchSize() {
        #expect(DatagramListener.slotsToOffer(after: 4, offered: 4, batchSize: 4) == 4)
        #expect(DatagramListener.slotsToOffer(after: 0, offered: 4, batchSize: 4) == 4)
        #expect(DatagramListener.slotsToOffer(after: 1, offered: 2, batchSize: 2) == 2)
    }
}
