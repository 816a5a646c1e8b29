/// The keys a consumer of a list keeps in Redis beside it, for a list `L` and a consumer id `C` — the
/// one place their names are spelled (see ``ReliableListConsumer`` for what each holds).
public struct ConsumerKeys: Sendable, Equatable {
    /// The consumed list `L`.
    public let list: String
    /// The consumer id `C`.
    public let consumerID: String

    /// The keys of consumer `consumerID` of `list`.
    public init(list: String, consumerID: String) {
        self.list = list
        self.consumerID = consumerID
    }

    /// `L:processing:C`: events taken and not yet acked.
    public var processingList: String { processingList(of: consumerID) }
    /// `L:consumer:C`: the heartbeat, holding the run's token.
    public var heartbeat: String { heartbeat(of: consumerID) }
    /// `L:dead`: values the handler could not decode.
    public var deadList: String { "\(list):dead" }
    /// `pixeld:consumers:L`: the set of the ids of the list's consumers.
    public var consumers: String { "pixeld:consumers:\(list)" }
    /// `L:output:C`: the acknowledged length of `pixeld consume --output`'s file.
    public var outputLength: String { "\(list):output:\(consumerID)" }
    /// `L:archive:C`: the acknowledged lengths of `pixeld consume --archive`'s files (a hash).
    public var archiveLengths: String { "\(list):archive:\(consumerID)" }

    /// `L:processing:`: what every processing list of the list begins with, the consumer's id after it.
    public var processingPrefix: String { "\(list):processing:" }
    /// The processing list of another consumer `id` of the list.
    public func processingList(of id: String) -> String { processingPrefix + id }
    /// The heartbeat of another consumer `id` of the list.
    public func heartbeat(of id: String) -> String { "\(list):consumer:\(id)" }
}
