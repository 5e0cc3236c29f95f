import Foundation
import FoundationXML
import S3

extension FuzzChecks {
    /// The S3 client's XML reader on any bytes (what a store, or a proxy in front of it, answers).
    ///
    /// - It refuses what it cannot read with an `XML: …` error, never by crashing or by running
    ///   out of stack (it refuses nesting deeper than `XMLReader.maximumDepth`).
    /// - Where Foundation's `XMLParser` (libxml2, a second and independent reader) accepts a UTF-8
    ///   document without a document type declaration, this reader accepts it too and reads the
    ///   same elements (namespace prefixes dropped, as this reader drops them), in the same order,
    ///   with the same text. It may accept more (it skips attributes unchecked, and what follows
    ///   the root element): S3's answers are read leniently.
    /// - Every text it reads, escaped with `XMLReader.escape` (how the client writes XML), reads
    ///   back the same.
    public static func xml(_ input: UnsafeRawBufferPointer) -> [String] {
        let bytes = Array(input)
        var problems: [String] = []
        let ours: S3XMLElement?
        do {
            ours = try XMLReader.parse(bytes)
        } catch {
            ours = nil
            if !"\(error)".hasPrefix("XML: ") { problems.append("a refusal that does not say it is XML's: \(error)") }
        }
        if let ours {
            var texts: [String] = []
            collectTexts(ours, into: &texts)
            for text in texts {
                let written = "<k>" + XMLReader.escape(text) + "</k>"
                let back = try? XMLReader.parse(Array(written.utf8)).text
                if back != text { problems.append("the text \(text.debugDescription) escaped and read back is \(back.debugDescription)") }
            }
        }
        if let (theirs, depth) = foundationTree(bytes) {
            if depth > XMLReader.maximumDepth {
                if ours != nil { problems.append("this reader reads a document nested \(depth) deep, over its limit") }
            } else if let ours {
                let mine = outline(ours)
                if mine != theirs {
                    problems.append("Foundation reads \(theirs.prefix(300).debugDescription), this reader \(mine.prefix(300).debugDescription)")
                }
            } else {
                problems.append("Foundation reads the document, this reader refuses it")
            }
        }
        return problems
    }

    static func collectTexts(_ element: S3XMLElement, into texts: inout [String]) {
        texts.append(element.text)
        for child in element.children { collectTexts(child, into: &texts) }
    }

    /// The elements in document order, each as its depth, name and text, one per line.
    static func outline(_ element: S3XMLElement, depth: Int = 0) -> String {
        var lines = "\(depth) \(element.name) \(element.text.debugDescription)\n"
        for child in element.children { lines += outline(child, depth: depth + 1) }
        return lines
    }

    /// The outline of what Foundation's XMLParser reads and how deep it nests, or nil where it
    /// refuses the document or
    /// where the two readers are not meant to agree: bytes that are not UTF-8, a document type
    /// declaration, an encoding declared other than UTF-8, or a processing instruction without
    /// data, which crashes Foundation's parser on Linux (`<?x?>`: swift-corelibs-foundation's
    /// `_NSXMLParserProcessingInstruction` takes the length of the data's null pointer, SIGSEGV,
    /// whenever the parser has a delegate).
    static func foundationTree(_ bytes: [UInt8]) -> (String, Int)? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        if text.contains("<!DOCTYPE") || hasInstructionWithoutData(bytes) { return nil }
        // The XML declaration, which libxml2 reads only at the very start (after a byte-order mark).
        let start = text.hasPrefix("\u{FEFF}") ? text.dropFirst() : Substring(text)
        if start.hasPrefix("<?xml"), let end = start.range(of: "?>"), let encoding = start[..<end.lowerBound].range(of: "encoding"),
            start[encoding.upperBound..<end.lowerBound].lowercased().range(of: "utf-8") == nil
        {
            return nil
        }
        let parser = XMLParser(data: Data(bytes))
        parser.shouldProcessNamespaces = false
        parser.shouldResolveExternalEntities = false
        let collector = OutlineCollector()
        parser.delegate = collector
        // On Linux, parse() answers true for many documents libxml2 reads only by recovering from
        // an error; the error is still reported.
        guard parser.parse(), parser.parserError == nil, !collector.failed, collector.open.isEmpty, let root = collector.root else {
            return nil
        }
        return (outline(root), collector.deepest)
    }

    /// Whether a `<?target?>` (a processing instruction with nothing after its target) is in the bytes.
    static func hasInstructionWithoutData(_ bytes: [UInt8]) -> Bool {
        var index = 0
        while index + 1 < bytes.count {
            defer { index += 1 }
            guard bytes[index] == UInt8(ascii: "<"), bytes[index + 1] == UInt8(ascii: "?") else { continue }
            var end = index + 2
            while end < bytes.count, ![0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: "?")].contains(bytes[end]) { end += 1 }
            if end + 1 < bytes.count, bytes[end] == UInt8(ascii: "?"), bytes[end + 1] == UInt8(ascii: ">") { return true }
        }
        return false
    }

    final class OutlineCollector: NSObject, XMLParserDelegate {
        var open: [S3XMLElement] = []
        var root: S3XMLElement?
        var deepest = 0
        var failed = false

        func parser(_ parser: XMLParser, parseErrorOccurred parseError: any Error) { failed = true }

        func parser(
            _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            let local = elementName.lastIndex(of: ":").map { String(elementName[elementName.index(after: $0)...]) } ?? elementName
            open.append(S3XMLElement(name: local))
            deepest = max(deepest, open.count)
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
            guard let element = open.popLast() else { return }
            if open.isEmpty {
                if root == nil { root = element }
            } else {
                open[open.count - 1].children.append(element)
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if !open.isEmpty { open[open.count - 1].text += string }
        }

        /// libxml2 2.9 passes a CDATA section's line ends on as they were sent; XML 1.0 (section
        /// 2.11) reads CR LF and a lone CR as LF everywhere, as this reader does.
        func parser(_ parser: XMLParser, foundCDATA block: Data) {
            guard !open.isEmpty else { return }
            let text = String(decoding: block, as: UTF8.self)
            open[open.count - 1].text += text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        }
    }
}
