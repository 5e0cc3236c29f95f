/// A small XML reader for S3's answers (ListObjectsV2, errors, multipart results): elements, text,
/// entities (`&amp;` ... and `&#NN;` / `&#xHH;`), CDATA, comments and processing instructions.
/// Attributes are skipped and namespace prefixes dropped: S3's answers carry their data in elements.
/// Line ends in text are normalized as XML 1.0 says (CR LF and a lone CR read as LF; `&#13;` stays
/// CR). A document type declaration is refused (S3 sends none, and its entities would not be
/// expanded), and so is nesting deeper than ``XMLReader/maximumDepth``. `scripts/fuzz xml` checks
/// the reader against Foundation's (libxml2's) on every document that one accepts.
package struct S3XMLElement: Sendable {
    package var name: String
    package var children: [S3XMLElement] = []
    /// The element's own text (concatenated; whitespace kept).
    package var text: String = ""

    package init(name: String) { self.name = name }

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

package enum XMLReader {
    /// The deepest nesting read. S3's answers nest 4 levels; an answer nested deeper (a broken store
    /// or proxy) is refused instead of being followed until the stack runs out.
    package static let maximumDepth = 64

    /// Parses a document and returns its root element.
    package static func parse(_ bytes: some Collection<UInt8>) throws -> S3XMLElement {
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
                    throw error("a document type declaration (<!DOCTYPE) is not expected in an S3 answer")
                } else {
                    return
                }
            }
        }

        mutating func document() throws -> S3XMLElement {
            try skipMisc()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "<") else { throw error("no root element") }
            return try element(depth: 1)
        }

        static func endsReference(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: "&") || byte == UInt8(ascii: "<") || byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
        }

        static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

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

        /// Appends raw text, its line ends normalized: CR LF and a lone CR become LF.
        static func appendNormalizingLineEnds(_ raw: ArraySlice<UInt8>, to text: inout [UInt8]) {
            var index = raw.startIndex
            while index < raw.endIndex {
                let byte = raw[index]
                index += 1
                if byte == 0x0D {
                    text.append(0x0A)
                    if index < raw.endIndex, raw[index] == 0x0A { index += 1 }
                } else {
                    text.append(byte)
                }
            }
        }

        /// Parses `<name ...>...</name>` or `<name .../>`, `depth` levels down; `position` is at `<`.
        mutating func element(depth: Int) throws -> S3XMLElement {
            guard depth <= XMLReader.maximumDepth else { throw error("elements nested deeper than \(XMLReader.maximumDepth)") }
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
                        Self.appendNormalizingLineEnds(bytes[start..<(position - 3)], to: &text)
                    } else if starts(with: "<!--") {
                        try skip(past: "-->")
                    } else if starts(with: "<?") {
                        try skip(past: "?>")
                    } else if starts(with: "<!") {
                        throw error("unexpected '<!' in <\(element.name)>")
                    } else {
                        element.children.append(try self.element(depth: depth + 1))
                    }
                } else if byte == UInt8(ascii: "&") {
                    try entity(into: &text)
                } else {
                    // Plain text up to the next markup or reference (a CR LF never straddles it).
                    let start = position
                    while position < bytes.count, bytes[position] != UInt8(ascii: "<"), bytes[position] != UInt8(ascii: "&") { position += 1 }
                    Self.appendNormalizingLineEnds(bytes[start..<position], to: &text)
                }
            }
        }

        mutating func entity(into text: inout [UInt8]) throws {
            let start = position
            position += 1
            // To the `;`, at any length (`&#0000…65;` is a reference too: found by `scripts/fuzz
            // xml`, where a cap of 12 bytes kept it as text), but not past a byte no reference
            // holds, so that a stray `&` costs a scan to the next `&`, `<` or space at most.
            while position < bytes.count, bytes[position] != UInt8(ascii: ";"), !Self.endsReference(bytes[position]) { position += 1 }
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
                // A character reference: `&#` and decimal digits, or `&#x` and hexadecimal ones (no
                // sign, which UInt32's parser would take).
                var scalarValue: UInt32?
                if name.hasPrefix("#x"), name.utf8.dropFirst(2).allSatisfy({ Self.isDigit($0) || (0x41...0x46).contains($0 & 0xDF) }) {
                    scalarValue = UInt32(name.dropFirst(2), radix: 16)
                } else if name.hasPrefix("#"), name.utf8.dropFirst(1).allSatisfy(Self.isDigit) {
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
    package static func escape(_ text: String) -> String {
        // By scalar, not by Character: a combining mark after `<` makes one Character of the two,
        // which a switch over Characters let through unescaped (found by `scripts/fuzz xml`).
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out.append(contentsOf: "&amp;".unicodeScalars)
            case "<": out.append(contentsOf: "&lt;".unicodeScalars)
            case ">": out.append(contentsOf: "&gt;".unicodeScalars)
            case "\"": out.append(contentsOf: "&quot;".unicodeScalars)
            case "'": out.append(contentsOf: "&apos;".unicodeScalars)
            case "\r": out.append(contentsOf: "&#13;".unicodeScalars)  // a raw CR would be read as LF
            default: out.append(scalar)
            }
        }
        return String(out)
    }
}
