import Foundation
import Parquet
import PlayheadLake
import PlayheadLog

// What a command prints when it stops on an error. swift-argument-parser prints a
// `LocalizedError`'s `errorDescription` after "Error: ", and any other error's `description`. The
// descriptions of our error types start with the type and its code (`LogError(io): …`), which is
// what a log line needs to be searched by, but tells an operator at a terminal nothing the
// message does not; so at the command line the message alone is printed:
// `Error: cannot create directory /srv/data: Permission denied`.
// `S3Error` and `RdKafkaError` keep their descriptions: those name the service's own error code
// (`AccessDenied`, `_TRANSPORT`), which is what its documentation is searched by.

extension LogError: LocalizedError {
    public var errorDescription: String? { message }
}

extension LakeError: LocalizedError {
    public var errorDescription: String? { message }
}

extension ParquetError: LocalizedError {
    public var errorDescription: String? { message }
}
