import Foundation

/// One thread, alive as long as the test process, on which every child is spawned.
///
/// Linux sends a child's parent-death signal when the *thread* that created it exits; spawning
/// from the Swift concurrency pool (whose threads come and go) would kill children at random.
/// Spawning here also serializes pipe creation, so no child inherits another child's pipes.
final class SpawnThread: @unchecked Sendable {
    // @unchecked Sendable: `queue` is only touched while `condition` is locked.
    static let shared = SpawnThread()

    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while queue.isEmpty { condition.wait() }
                let job = queue.removeFirst()
                condition.unlock()
                job()
            }
        }
        thread.name = "pixeld-test-spawner"
        thread.start()
    }

    /// Runs `body` on the spawner thread and returns its result, blocking the caller meanwhile.
    func run<Result: Sendable>(_ body: @escaping @Sendable () -> Result) -> Result {
        let box = ResultBox<Result>()
        condition.lock()
        queue.append {
            let value = body()
            box.set(value)
        }
        condition.signal()
        condition.unlock()
        return box.wait()
    }
}

/// A value handed from one thread to another.
private final class ResultBox<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched while `condition` is locked.
    private let condition = NSCondition()
    private var value: Value?

    func set(_ newValue: Value) {
        condition.lock()
        value = newValue
        condition.broadcast()
        condition.unlock()
    }

    func wait() -> Value {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }
}
