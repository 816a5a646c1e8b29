import ArgumentParser
@testable import PixeldCLI
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `PIXELD_*` variables as the commands read them. Each test uses flag names of its own, so that
/// tests running at the same time never see each other's variables.
@Suite struct EnvironmentTests {
    /// Sets `PIXELD_<FLAG>` for the length of `body`.
    private func with(_ flag: String, _ value: String, _ body: () throws -> Void) rethrows {
        let name = "PIXELD_" + flag.uppercased().split(separator: "-").joined(separator: "_")
        setenv(name, value, 1)
        defer { unsetenv(name) }
        try body()
    }

    @Test func theCommandLineWinsThenTheVariableThenTheDefault() {
        #expect(Environment.resolve(nil, flag: "test-resolve-a", default: "fallback") == "fallback")
        with("test-resolve-a", "from-env") {
            #expect(Environment.value(forFlag: "test-resolve-a") == "from-env")
            #expect(Environment.resolve(nil, flag: "test-resolve-a", default: "fallback") == "from-env")
            #expect(Environment.resolve("given", flag: "test-resolve-a", default: "fallback") == "given")
        }
        with("test-resolve-b", "") {
            #expect(Environment.value(forFlag: "test-resolve-b") == nil, "an empty variable counts as unset")
        }
        with("test-resolve-list", "udp://a:1 udp://b:2") {
            #expect(Environment.resolve([], flag: "test-resolve-list") == ["udp://a:1", "udp://b:2"])
            #expect(Environment.resolve(["x"], flag: "test-resolve-list") == ["x"])
        }
    }

    @Test func aNumberOutsideItsRangeNamesTheFlagAndTheRange() throws {
        #expect(try Environment.integer(nil, flag: "test-int-a", default: 7, range: 1...10) == 7)
        try with("test-int-a", "9") { () throws in
            #expect(try Environment.integer(nil, flag: "test-int-a", default: 7, range: 1...10) == 9)
        }
        with("test-int-a", "eleven") {
            #expect {
                try Environment.integer(nil, flag: "test-int-a", default: 7, range: 1...10)
            } throws: { error in
                "\(error)" == "--test-int-a: 'eleven' must be a whole number in 1…10"
            }
        }
        #expect(throws: ValidationError.self) { try Environment.integer(11, flag: "test-int-b", default: 7, range: 1...10) }
    }

    @Test(arguments: [("1", true), ("YES", true), ("on", true), ("0", false), ("Off", false), ("no", false)])
    func anOnOffVariable(text: String, value: Bool) throws {
        try with("test-switch", text) { () throws in
            #expect(try Environment.flag(false, flag: "test-switch") == value)
            #expect(try Environment.flag(true, flag: "test-switch"), "the command line's flag wins")
        }
    }

    @Test func anOnOffVariableWithAnyOtherValueIsRefused() {
        with("test-switch-bad", "maybe") {
            #expect {
                try Environment.flag(false, flag: "test-switch-bad")
            } throws: { error in
                "\(error)" == "PIXELD_TEST_SWITCH_BAD='maybe' (--test-switch-bad) must be 1, true, yes, on, 0, false, no or off"
            }
        }
    }

    @Test func flagsThatWouldChangeNothingAreRefusedInOneLine() throws {
        try Environment.refuse([("--spool-sync", false)], needing: "--spool")
        with("test-given", "x") {
            #expect(Environment.isGiven(nil, flag: "test-given"))
        }
        #expect(!Environment.isGiven(nil, flag: "test-not-given"))
        #expect(Environment.isGiven("value", flag: "test-not-given"))
        #expect {
            try Environment.refuse([("--a", true), ("--b", false), ("--c", true)], needing: "--spool: without it nothing is spooled")
        } throws: { error in
            "\(error)" == "--a, --c (flag or PIXELD_* variable) need --spool: without it nothing is spooled"
        }
        #expect {
            try Environment.refuse([("--a", true)], needing: "--spool")
        } throws: { error in
            "\(error)" == "--a (flag or PIXELD_* variable) needs --spool"
        }
    }
}
