import SyslogIngest
import Testing

@Suite("Facility, Severity, Priority and FacilityFilter")
struct FacilityFilterTests {
    @Test("the default filter keeps local3 only")
    func defaultFilter() {
        for facility in Facility.allCases {
            #expect(FacilityFilter.default.allows(facility) == (facility == .local3))
        }
        #expect(FacilityFilter.default.description == "local3")
    }

    @Test(
        "parsing facility lists",
        arguments: [
            ("local3", [Facility.local3]),
            ("LOCAL3", [.local3]),
            ("Local3", [.local3]),
            ("local3,local4", [.local3, .local4]),
            (" local4 , local3 ", [.local3, .local4]),
            ("local3,local3", [.local3]),
            ("kern,daemon,authpriv,solaris-cron,local7", [.kern, .daemon, .authpriv, .solarisCron, .local7]),
            ("audit,alert,solariscron", [.audit, .alert, .solarisCron]),
            // FreeBSD's console is 14; security is auth (4), as logger -p and rsyslog read it.
            ("console,security", [.auth, .alert]),
            // nginx's names: intern is 5, clock is 9; its cron is 15 (solaris-cron here).
            ("intern,clock", [.syslog, .cron]),
            ("19,0,15", [.kern, .solarisCron, .local3]),
            ("all", Facility.allCases),
            ("*", Facility.allCases),
        ]
    )
    func parsing(spec: String, facilities: [Facility]) throws {
        let filter = try FacilityFilter(parsing: spec)
        #expect(filter.facilities == facilities)
        #expect(filter == FacilityFilter(facilities))
        for facility in Facility.allCases {
            #expect(filter.allows(facility) == facilities.contains(facility))
        }
    }

    @Test(
        "bad facility lists fail with one line naming the bad item",
        arguments: [
            ("local9", SyslogIngestConfigError.Code.unknownFacility, "local9"),
            ("local3,lcoal4", .unknownFacility, "lcoal4"),
            ("24", .unknownFacility, "24"),
            ("local3,191", .unknownFacility, "191"),
            ("-1", .unknownFacility, "-1"),
            ("", .emptyFacilityList, ""),
            ("local3,,local4", .emptyFacilityList, "local3,,local4"),
            ("local3,", .emptyFacilityList, "local3,"),
        ]
    )
    func badSpecs(spec: String, code: SyslogIngestConfigError.Code, mentioned: String) {
        do {
            _ = try FacilityFilter(parsing: spec)
            Issue.record("accepted \(spec.debugDescription)")
        } catch {
            #expect(error.code == code)
            #expect(error.description.contains("\"\(mentioned)\""), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }

    @Test("the description round-trips through parsing")
    func descriptionRoundTrip() throws {
        for facility in Facility.allCases {
            let filter = FacilityFilter([facility])
            #expect(try FacilityFilter(parsing: filter.description) == filter)
        }
        let several = FacilityFilter([.local7, .kern, .local3])
        #expect(several.description == "kern,local3,local7")
        #expect(try FacilityFilter(parsing: several.description) == several)
        #expect(FacilityFilter([]).facilities.isEmpty)
    }

    @Test("facility names and codes")
    func facilityNames() {
        #expect(Facility.allCases.count == 24)
        #expect(Facility.allCases.map(\.rawValue) == Array(0...23))
        #expect(Facility.local3.rawValue == 19)
        #expect(Facility.local3.name == "local3")
        for facility in Facility.allCases {
            #expect(Facility(name: facility.name) == facility)
            #expect(Facility(name: facility.name.uppercased()) == facility)
        }
        #expect(Facility(name: "local8") == nil)
        #expect(Facility(name: "") == nil)
        #expect(Facility(name: " local3") == nil)
    }

    @Test("severity names and order")
    func severities() {
        #expect(Severity.emergency < Severity.debug)
        #expect(Severity.allCases.sorted() == Severity.allCases)
        #expect(Severity.warning <= .warning && Severity.error <= .warning && !(Severity.notice <= .warning))
        for severity in Severity.allCases {
            #expect(Severity(name: severity.name) == severity)
        }
        #expect(Severity(name: "INFORMATIONAL") == .informational)
        #expect(Severity(name: "error") == .error)
        #expect(Severity(name: "loud") == nil)
    }

    @Test("priority values 0...191 round-trip; others are rejected")
    func priorities() {
        for value in 0...191 {
            let priority = Priority(value: value)
            #expect(priority?.value == value)
            #expect(priority?.facility.rawValue == UInt8(value / 8))
            #expect(priority?.severity.rawValue == UInt8(value % 8))
        }
        for value in [-1, 192, 999, Int.max, Int.min] {
            #expect(Priority(value: value) == nil)
        }
        #expect(Priority(value: 158) == Priority(facility: .local3, severity: .informational))
        #expect(Priority(value: 158)?.description == "local3.info")
    }
}
