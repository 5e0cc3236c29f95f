import Glibc

/// A count of distinct 64-bit hashes that is exact up to ``exactLimit`` values and an estimate
/// beyond: a HyperLogLog sketch of 2^14 one-byte registers (16 KiB, standard error 1.04 / √2^14 =
/// 0.81 %). The rollups keep three per content-hour (sessions, viewers, completions); as sets they
/// held 16–24 bytes per distinct session for the whole hour, so a stream of new sessions grew the
/// lake writer without bound (4 GB in 45 s of 8.9 M one-event sessions, `scripts/bench/memory_load.py`).
/// A set now grows to at most ``exactLimit`` values (about 1.5 MiB) before it becomes a sketch.
///
/// The estimate is deterministic: the same values, in any order, give the same count.
struct DistinctCount {
    /// The most values counted exactly.
    static let exactLimit = 65_536
    static let precision = 14
    static var registerCount: Int { 1 << precision }

    private var exact = Set<UInt64>()
    /// The sketch, once the set passed ``exactLimit``.
    private var registers: [UInt8]?

    /// Whether the count is an estimate.
    var isEstimate: Bool { registers != nil }

    @inline(__always)
    mutating func insert(_ value: UInt64) {
        if registers != nil {
            Self.add(value, to: &registers!)
            return
        }
        exact.insert(value)
        if exact.count > Self.exactLimit { becomeSketch() }
    }

    var count: Int {
        guard let registers else { return exact.count }
        return Self.estimate(registers)
    }

    private mutating func becomeSketch() {
        var registers = [UInt8](repeating: 0, count: Self.registerCount)
        for value in exact { Self.add(value, to: &registers) }
        self.registers = registers
        exact = []
    }

    /// The register of the mixed value's top `precision` bits keeps the largest rank (leading zeros
    /// + 1) of the other bits seen.
    @inline(__always)
    private static func add(_ value: UInt64, to registers: inout [UInt8]) {
        let mixed = mix(value)
        let index = Int(truncatingIfNeeded: mixed >> UInt64(64 - precision))
        // The bits below the index, with a stop bit so that the rank is at most 64 - precision + 1.
        let rest = mixed << UInt64(precision) | (1 << UInt64(precision - 1))
        let rank = UInt8(truncatingIfNeeded: rest.leadingZeroBitCount + 1)
        if rank > registers[index] { registers[index] = rank }
    }

    /// MurmurHash3's 64-bit finaliser: the inputs are hashes already, but the sketch needs every bit
    /// of them well mixed.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x &*= 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x &*= 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }

    /// HyperLogLog's estimate (Flajolet et al. 2007), with linear counting while registers are
    /// still empty and the raw estimate is small; 64-bit hashes need no large-range correction.
    static func estimate(_ registers: [UInt8]) -> Int {
        let m = Double(registers.count)
        var sum = 0.0
        var zeros = 0
        for register in registers {
            sum += 1 / Double(UInt64(1) << UInt64(register))
            if register == 0 { zeros += 1 }
        }
        let alpha = 0.7213 / (1 + 1.079 / m)
        let raw = alpha * m * m / sum
        if raw <= 2.5 * m && zeros > 0 {
            return Int((m * log(m / Double(zeros))).rounded())
        }
        return Int(raw.rounded())
    }
}
