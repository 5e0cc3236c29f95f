/// The folder a `file:` location names (`--log` and `--lake`).
public enum FileLocation {
    /// A `file:` location that names a host (`file://data/log`).
    public struct HostError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// The folder `text` names when it is a `file:` location, or nil when it is not one.
    ///
    /// `file:<path>` takes the path as it is, relative or absolute. `file:///<path>` and
    /// `file://localhost/<path>` are the URL forms of an absolute path. Any other `file://<host>/…`
    /// is refused: reading `file://data/log` as the relative folder `data/log`, as Playhead did until
    /// 2026-12-05, put a lake where the user did not look, while a URL reader takes `data` for a host.
    public static func folder(_ text: String) throws(HostError) -> String? {
        guard text.hasPrefix("file:") else { return nil }
        let rest = text.dropFirst("file:".count)
        guard rest.hasPrefix("//") else { return String(rest) }
        let authorityAndPath = rest.dropFirst(2)
        let host = authorityAndPath.prefix { $0 != "/" }
        let path = authorityAndPath.dropFirst(host.count)
        if host.isEmpty || host.lowercased() == "localhost" { return String(path) }
        throw HostError(
            description: "'\(text)' names the host '\(host)': a folder is file:\(authorityAndPath) (relative to the "
                + "working directory) or file:///\(authorityAndPath) (absolute)"
        )
    }
}
