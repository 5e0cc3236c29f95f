import Foundation
import Testing
@testable import Parquet
import PlayheadTestSupport

@Suite("Parquet files read back by pyarrow and DuckDB")
struct ReaderRoundTripTests {
    @Test("one of each kind, flat and list, read back exactly")
    func everyKind() async throws {
        let directory = try TemporaryDirectory(prefix: "parquet")
        var random = RandomData(seed: 1)
        var columns: [TestColumn] = []
        for (i, kind) in Kind.allCases.enumerated() {
            columns.append(random.column("flat\(i)_\(kind.rawValue)", rows: 50, kind: kind, list: false))
            columns.append(random.column("list\(i)_\(kind.rawValue)", rows: 50, kind: kind, list: true))
        }
        let file = TestFile(name: "every-kind", columns: columns, rows: 50)
        let (_, manifest, _) = try file.write(in: directory)
        let problems = try await checkWithReaders([manifest], in: directory)
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }
}
