/// An error thrown by the Parquet writer.
///
/// Errors carry a ``Code`` (stable, bounded: safe as a metric label) and a message for people.
public struct ParquetError: Error, Sendable, CustomStringConvertible {
    /// What kind of error this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case invalidSchema = "invalid_schema"
            case valueDoesNotFitSchema = "value_does_not_fit_schema"
            case columnLengthMismatch = "column_length_mismatch"
            case writeAfterClose = "write_after_close"
            case io = "io"
            case compression = "compression"
            case invalidArgument = "invalid_argument"
            case tooLarge = "too_large"
        }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The schema or a column's options are invalid (e.g. an encoding the column's type cannot use).
        public static let invalidSchema = Code(.invalidSchema)
        /// A value doesn't fit its column: wrong type, out of range, a null in a required column,
        /// a fixed-length value of the wrong length, or a list element outside a list.
        public static let valueDoesNotFitSchema = Code(.valueDoesNotFitSchema)
        /// Columns hold different numbers of rows at a row boundary (`endRows`, flush, close).
        public static let columnLengthMismatch = Code(.columnLengthMismatch)
        /// The writer was used after `close()` (or after an earlier error closed it).
        public static let writeAfterClose = Code(.writeAfterClose)
        /// The output failed.
        public static let io = Code(.io)
        /// The compressor failed.
        public static let compression = Code(.compression)
        /// A configuration value or argument is out of range.
        public static let invalidArgument = Code(.invalidArgument)
        /// A row group, page or value is larger than the format allows (2 GiB per page).
        public static let tooLarge = Code(.tooLarge)

        public var description: String { backing.rawValue }
    }

    /// What kind of error this is.
    public var code: Code
    /// What happened, for people.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "ParquetError.\(code): \(message)" }
}
