/// A small XML reader for S3's answers (ListObjectsV2, errors, multipart results): elements, text,
/// entities (`&amp;` ... and `&#NN;` / `&#xHH;`), CDATA, comments and processing instructions.
/// Attributes are skipped and namespace prefixes dropped: S3's answers carry their data in elements.
struct S3XMLElement: Sendable {
    var name: String
    var children: [S3XMLElement] = []
    /// The element's own text (concatenated; whitespace kept).
    var text: String = ""

    /// The first child named `name`.
    func child(_ name: String) -> S3XMLElement? { children.first { $0.name == name } }
    /// All children named `name`.
    func children(_ name: String) -> [S3XMLElement] { children.filter { $0.name == name } }
    /// The text of the first child named `name`.
    func value(_ name: String) -> String? { child(name)?.text }
}

struct XMLParseError: Error, CustomStringConvertible {
    var description: String
}

enum XMLReader {
    /// Parses a document and returns its root element.
    static func parse(_ bytes: some Collection<UInt8>) throws -> S3XMLElement {
        var parser = Parser(bytes: Array(bytes))
        return try parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        var position = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ what: String) -> XMLParseError { XMLParseError(description: "XML: \(what) at byte \(position)") }

        func starts(with text: String) -> Bool {
            let utf8 = Array(text.utf8)
            guard position + utf8.count <= bytes.count else { return false }
            return Array(bytes[position..<position + utf8.count]) == utf8
        }

        mutating func skip(past text: String) throws {
            let utf8 = Array(text.utf8)
            while position + utf8.count <= bytes.count {
                if bytes[position] == utf8[0], Array(bytes[position..<position + utf8.count]) == utf8 {
                    position += utf8.count
                    return
                }
                position += 1
            }
            throw error("missing '\(text)'")
        }

        /// Skips whitespace, the prolog, comments, doctype and processing instructions.
        mutating func skipMisc() throws {
            while position < bytes.count {
                let byte = bytes[position]
                if byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 || byte == 0xEF || byte == 0xBB || byte == 0xBF {
                    position += 1  // whitespace or a UTF-8 byte-order mark
                } else if starts(with: "<?") {
                    try skip(past: "?>")
                } else if starts(with: "<!--") {
                    try skip(past: "-->")
                } else if starts(with: "<!") {
                    try skip(past: ">")
                } else {
                    return
                }
            }
        }

        mutating func document() throws -> S3XMLElement {
            try skipMisc()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "<") else { throw error("no root element") }
            return try element()
        }

        static func isNameByte(_ byte: UInt8) -> Bool {
            !(byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 || byte == UInt8(ascii: ">")
                || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "="))
        }

        mutating func name() throws -> String {
            let start = position
            while position < bytes.count, Self.isNameByte(bytes[position]) { position += 1 }
            guard position > start else { throw error("empty element name") }
            let full = String(decoding: bytes[start..<position], as: UTF8.self)
            if let colon = full.lastIndex(of: ":") { return String(full[full.index(after: colon)...]) }
            return full
        }

        /// Parses `<name ...>...</name>` or `<name .../>`; `position` is at `<`.
        mutating func element() throws -> S3XMLElement {
            position += 1
            var element = S3XMLElement(name: try name())
            // Attributes: skip to the end of the tag, honouring quotes.
            var quote: UInt8? = nil
            while true {
                guard position < bytes.count else { throw error("unterminated tag <\(element.name)>") }
                let byte = bytes[position]
                if let q = quote {
                    if byte == q { quote = nil }
                } else if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'") {
                    quote = byte
                } else if byte == UInt8(ascii: "/"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: ">") {
                    position += 2
                    return element
                } else if byte == UInt8(ascii: ">") {
                    position += 1
                    break
                }
                position += 1
            }
            // Content.
            var text: [UInt8] = []
            while true {
                guard position < bytes.count else { throw error("unterminated element <\(element.name)>") }
                let byte = bytes[position]
                if byte == UInt8(ascii: "<") {
                    if starts(with: "</") {
                        position += 2
                        let closing = try name()
                        guard closing == element.name else { throw error("</\(closing)> closes <\(element.name)>") }
                        while position < bytes.count, bytes[position] != UInt8(ascii: ">") { position += 1 }
                        guard position < bytes.count else { throw error("unterminated closing tag") }
                        position += 1
                        element.text = String(decoding: text, as: UTF8.self)
                        return element
                    } else if starts(with: "<![CDATA[") {
                        position += 9
                        let start = position
                        try skip(past: "]]>")
                        text.append(contentsOf: bytes[start..<(position - 3)])
                    } else if starts(with: "<!--") {
                        try skip(past: "-->")
                    } else if starts(with: "<?") {
                        try skip(past: "?>")
                    } else {
                        element.children.append(try self.element())
                    }
                } else if byte == UInt8(ascii: "&") {
                    try entity(into: &text)
                } else {
                    text.append(byte)
                    position += 1
                }
            }
        }

        mutating func entity(into text: inout [UInt8]) throws {
            let start = position
            while position < bytes.count, bytes[position] != UInt8(ascii: ";"), position - start < 12 { position += 1 }
            guard position < bytes.count, bytes[position] == UInt8(ascii: ";") else {
                // A stray '&': keep it literally.
                position = start + 1
                text.append(UInt8(ascii: "&"))
                return
            }
            let name = String(decoding: bytes[(start + 1)..<position], as: UTF8.self)
            position += 1
            switch name {
            case "amp": text.append(UInt8(ascii: "&"))
            case "lt": text.append(UInt8(ascii: "<"))
            case "gt": text.append(UInt8(ascii: ">"))
            case "quot": text.append(UInt8(ascii: "\""))
            case "apos": text.append(UInt8(ascii: "'"))
            default:
                var scalarValue: UInt32?
                if name.hasPrefix("#x") || name.hasPrefix("#X") {
                    scalarValue = UInt32(name.dropFirst(2), radix: 16)
                } else if name.hasPrefix("#") {
                    scalarValue = UInt32(name.dropFirst(1))
                }
                if let value = scalarValue, let scalar = Unicode.Scalar(value) {
                    text.append(contentsOf: Array(String(Character(scalar)).utf8))
                } else {
                    text.append(contentsOf: Array("&\(name);".utf8))
                }
            }
        }
    }

    /// Escapes text for an XML element's content.
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }
}
