#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a ``ParquetWriter`` puts the file's bytes, in order. Writes are large (a column chunk, the footer).
public protocol ParquetOutput {
    /// Appends `bytes`; errors surface as ``ParquetError/Code/io``.
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// An in-memory output. A class, so that the bytes can be read after the writer is closed:
///
/// ```swift
/// let buffer = ParquetByteBuffer()
/// let writer = try ParquetWriter(schema: schema, output: buffer)
/// ...
/// try writer.close()
/// upload(buffer.bytes)
/// ```
public final class ParquetByteBuffer: ParquetOutput {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    public init(reservingCapacity capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        self.bytes.append(contentsOf: bytes)
    }

    /// Takes the bytes out, leaving the buffer empty.
    public func takeBytes() -> [UInt8] {
        defer { bytes = [] }
        return bytes
    }
}

/// A file output: creates (or truncates) the file at `path`; closed when the writer closes or the value is released.
/// Call ``synchronize()`` before relying on the bytes being durable.
public final class ParquetFileOutput: ParquetOutput {
    /// The file's path.
    public let path: String
    private var descriptor: Int32

    public init(path: String) throws(ParquetError) {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ParquetError(.io, "can't create '\(path)': \(String(cString: strerror(errno)))")
        }
        descriptor = fd
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard descriptor >= 0 else { throw ParquetError(.io, "'\(path)' is closed") }
        var offset = 0
        while offset < bytes.count {
            #if canImport(Darwin)
            let written = Darwin.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            #else
            let written = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            #endif
            if written < 0 {
                if errno == EINTR { continue }
                throw ParquetError(.io, "writing '\(path)': \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    /// fsyncs the file. Blocking: call it off the cooperative pool and event loops.
    public func synchronize() throws(ParquetError) {
        guard descriptor >= 0 else { return }
        if fsync(descriptor) != 0 {
            throw ParquetError(.io, "fsync '\(path)': \(String(cString: strerror(errno)))")
        }
    }

    /// Closes the file (idempotent).
    public func close() throws(ParquetError) {
        guard descriptor >= 0 else { return }
        let fd = descriptor
        descriptor = -1
        #if canImport(Darwin)
        let result = Darwin.close(fd)
        #else
        let result = Glibc.close(fd)
        #endif
        if result != 0 { throw ParquetError(.io, "closing '\(path)': \(String(cString: strerror(errno)))") }
    }

    deinit {
        if descriptor >= 0 {
            #if canImport(Darwin)
            _ = Darwin.close(descriptor)
            #else
            _ = Glibc.close(descriptor)
            #endif
        }
    }
}

/// Internal growable byte buffer over malloc'ed memory: the encoders' scratch and page buffers.
/// Always has `slack` readable bytes past its capacity, so that hashing and comparing may load whole
/// 8-byte words at the end of a value.
final class ByteSink {
    static let slack = 16

    @exclusivity(unchecked) private(set) var base: UnsafeMutableRawPointer
    @exclusivity(unchecked) private(set) var capacity: Int
    @exclusivity(unchecked) var count: Int = 0

    init(capacity: Int = 4096) {
        self.capacity = max(capacity, 64)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.capacity + Self.slack, alignment: 16)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: self.capacity + Self.slack)
    }

    deinit { base.deallocate() }

    @inline(__always)
    func reserve(_ extra: Int) {
        if count + extra > capacity { grow(count + extra) }
    }

    @inline(never)
    private func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: newCapacity + Self.slack, alignment: 16)
        newBase.copyMemory(from: base, byteCount: count)
        (newBase + count).initializeMemory(as: UInt8.self, repeating: 0, count: newCapacity + Self.slack - count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    func append(_ pointer: UnsafeRawPointer, count n: Int) {
        reserve(n)
        if n > 0 { (base + count).copyMemory(from: pointer, byteCount: n) }
        count += n
    }

    @inline(__always)
    func append(_ buffer: UnsafeRawBufferPointer) {
        if let address = buffer.baseAddress { append(address, count: buffer.count) }
    }

    func append(_ other: ByteSink) { append(UnsafeRawPointer(other.base), count: other.count) }

    @inline(__always)
    func append(byte: UInt8) {
        reserve(1)
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        reserve(MemoryLayout<T>.size)
        (base + count).storeBytes(of: value.littleEndian, as: T.self)
        count += MemoryLayout<T>.size
    }

    @inline(__always)
    func appendVarint(_ value: UInt64) {
        reserve(10)
        var v = value
        while v >= 0x80 {
            base.storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, toByteOffset: count, as: UInt8.self)
            count += 1
            v >>= 7
        }
        base.storeBytes(of: UInt8(v), toByteOffset: count, as: UInt8.self)
        count += 1
    }

    @inline(__always)
    func appendZigZag(_ value: Int64) {
        appendVarint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    func setByte(_ byte: UInt8, at offset: Int) {
        base.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self)
    }

    func setLittleEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        (base + offset).storeBytes(of: value.littleEndian, as: T.self)
    }

    /// Makes room for `n` bytes and returns their address; the caller sets `count` afterwards.
    func unsafeTail(reserving n: Int) -> UnsafeMutableRawPointer {
        reserve(n)
        return base + count
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    func removeAll() { count = 0 }

    /// Frees memory above `limit` bytes of capacity (after an unusually large row group).
    func shrink(ifAbove limit: Int) {
        guard capacity > limit, count <= limit else { return }
        let newBase = UnsafeMutableRawPointer.allocate(byteCount: limit + Self.slack, alignment: 16)
        newBase.initializeMemory(as: UInt8.self, repeating: 0, count: limit + Self.slack)
        newBase.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = newBase
        capacity = limit
    }

    var array: [UInt8] { Array(bytes) }
}

/// Internal growable buffer of plain values (levels, lengths, numbers) over malloc'ed memory: a
/// column's buffered values. A class held in a `let`, so that an append is a capacity check and a
/// store (an `Array` in a class property checks uniqueness and bounds at every append, a few per
/// cent of writing a file value by value).
final class ValueBuffer<Element: BitwiseCopyable> {
    @exclusivity(unchecked) private var base: UnsafeMutablePointer<Element>
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private(set) var count = 0

    init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    var isEmpty: Bool { count == 0 }

    subscript(index: Int) -> Element {
        precondition(index >= 0 && index < count, "index out of range")
        return base[index]
    }

    @inline(__always)
    func append(_ value: Element) {
        if count == capacity { grow(count + 1) }
        (base + count).initialize(to: value)
        count += 1
    }

    func append(contentsOf values: UnsafeBufferPointer<Element>) {
        guard let source = values.baseAddress, !values.isEmpty else { return }
        reserveCapacity(count + values.count)
        (base + count).initialize(from: source, count: values.count)
        count += values.count
    }

    func append(contentsOf values: [Element]) {
        values.withUnsafeBufferPointer { append(contentsOf: $0) }
    }

    func append(repeating value: Element, count n: Int) {
        guard n > 0 else { return }
        reserveCapacity(count + n)
        (base + count).initialize(repeating: value, count: n)
        count += n
    }

    func reserveCapacity(_ minimum: Int) {
        if minimum > capacity { grow(minimum) }
    }

    func removeAll(keepingCapacity: Bool = true) {
        count = 0
    }

    @inline(never)
    private func grow(_ needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        newBase.moveInitialize(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: count * MemoryLayout<Element>.stride))
    }
}
