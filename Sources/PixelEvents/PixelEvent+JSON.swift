extension PixelEvent {
    /// The event as one line of JSON, without a trailing newline.
    ///
    /// Keys come in a stable order: `ts` (a JSON number, ``timestampText`` verbatim), `args` (an
    /// object), then ``fields`` in input order, each as a string. In `args` a name given once maps
    /// to a string and a name given more than once maps to an array of its values in request order,
    /// placed where the name first appeared: `e=a&k=1&k=2` → `{"e":"a","k":["1","2"]}`.
    ///
    /// The output is always valid JSON: quotes, backslashes and control characters are escaped,
    /// and text is valid UTF-8 (invalid input bytes became U+FFFD while decoding).
    public func jsonLine() -> String {
        var bytes: [UInt8] = []
        appendJSONLine(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the UTF-8 bytes of ``jsonLine()`` to `buffer`, without a trailing newline.
    ///
    /// Lets a writer batch many events into one buffer without building intermediate strings.
    /// - Parameter buffer: The buffer to append to.
    public func appendJSONLine(to buffer: inout [UInt8]) {
        var writer = JSONWriter(appendingTo: buffer)
        buffer = []
        writer.bytes.reserveCapacity(writer.bytes.count + estimatedJSONSize)
        writer.appendRaw("{\"ts\":")
        writeTimestamp(into: &writer)
        writer.appendRaw(",\"args\":")
        writeArgs(into: &writer)
        for field in fields {
            writer.append(ASCII.comma)
            writer.appendString(field.name)
            writer.append(ASCII.colon)
            writer.appendString(field.value)
        }
        writer.append(ASCII.closeBrace)
        buffer = writer.bytes
    }

    private var estimatedJSONSize: Int {
        var size = 32 + timestampText.utf8.count
        for arg in args {
            size += arg.name.utf8.count + arg.value.utf8.count + 6
        }
        for field in fields {
            size += field.name.utf8.count + field.value.utf8.count + 6
        }
        return size
    }

    private func writeTimestamp(into writer: inout JSONWriter) {
        if Timestamp.isCanonicalJSONNumber(timestampText) {
            writer.appendRaw(timestampText)
        } else if timestamp.isFinite {
            writer.appendRaw("\(timestamp)")
        } else {
            writer.appendRaw("null")
        }
    }

    private func writeArgs(into writer: inout JSONWriter) {
        writer.append(ASCII.openBrace)
        if args.count <= 16 {
            writeArgsByScanning(into: &writer)
        } else {
            writeArgsByHashing(into: &writer)
        }
        writer.append(ASCII.closeBrace)
    }

    /// Few arguments: find repeats by scanning, no allocation.
    private func writeArgsByScanning(into writer: inout JSONWriter) {
        var first = true
        for index in args.indices {
            let name = args[index].name
            if args[..<index].contains(where: { Self.sameName($0.name, name) }) {
                continue
            }
            var repeats = 0
            for later in args[(index + 1)...] where Self.sameName(later.name, name) {
                repeats += 1
            }
            if !first {
                writer.append(ASCII.comma)
            }
            first = false
            writer.appendString(name)
            writer.append(ASCII.colon)
            if repeats == 0 {
                writer.appendString(args[index].value)
            } else {
                writer.append(ASCII.openBracket)
                writer.appendString(args[index].value)
                for later in args[(index + 1)...] where Self.sameName(later.name, name) {
                    writer.append(ASCII.comma)
                    writer.appendString(later.value)
                }
                writer.append(UInt8(ascii: "]"))
            }
        }
    }

    /// Whether two argument names are the same name: byte for byte, as JSON compares member names.
    /// (`String.==` compares canonical equivalence, which would merge `é` with `e` + U+0301.)
    private static func sameName(_ a: String, _ b: String) -> Bool {
        a.utf8.elementsEqual(b.utf8)
    }

    /// Many arguments: group by name with a dictionary so hostile inputs stay linear. Keyed by the
    /// name's bytes, for the reason given at ``sameName(_:_:)``.
    private func writeArgsByHashing(into writer: inout JSONWriter) {
        var groups: [[UInt8]: [Int]] = [:]
        var order: [[UInt8]] = []
        for (index, arg) in args.enumerated() {
            let key = Array(arg.name.utf8)
            if groups[key, default: []].isEmpty {
                order.append(key)
            }
            groups[key, default: []].append(index)
        }
        for (position, key) in order.enumerated() {
            if position > 0 {
                writer.append(ASCII.comma)
            }
            let indices = groups[key] ?? []
            writer.appendString(args[indices[0]].name)
            writer.append(ASCII.colon)
            if indices.count == 1 {
                writer.appendString(args[indices[0]].value)
            } else {
                writer.append(ASCII.openBracket)
                for (offset, index) in indices.enumerated() {
                    if offset > 0 {
                        writer.append(ASCII.comma)
                    }
                    writer.appendString(args[index].value)
                }
                writer.append(UInt8(ascii: "]"))
            }
        }
    }
}
