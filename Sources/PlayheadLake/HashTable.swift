import CPlayhead

/// A table keyed by 64-bit hashes: open addressing with linear probing, at most half full, and
/// backward-shift deletion (no tombstones). Each slot holds its key and value together, so a lookup
/// is one probe sequence, usually one cache line: the dedup window's table has millions of entries
/// and the rollups' session table hundreds of thousands, so cache misses are the cost that matters.
/// The keys are hashes already, so their low bits pick the slot (no rehashing, unlike `Dictionary`).
struct HashTable<Value> {
    private struct Slot {
        /// 0 marks an empty slot; the key 0 is stored as `zeroKey`.
        var key: UInt64
        var value: Value?
    }

    private var slots: [Slot]
    private var mask: Int
    private(set) var count = 0
    private static var zeroKey: UInt64 { 0x9E37_79B9_7F4A_7C15 }

    init(initialSlots: Int = 1024) {
        let size = max(16, 1 << (Int.bitWidth - (initialSlots - 1).leadingZeroBitCount))
        slots = [Slot](repeating: Slot(key: 0, value: nil), count: size)
        mask = size - 1
    }

    @inline(__always)
    private static func stored(_ key: UInt64) -> UInt64 { key == 0 ? zeroKey : key }

    /// Calls `body` with the value of `key` (nil when absent) to read or change in place; setting
    /// nil removes it.
    @inline(__always)
    mutating func update<T>(_ key: UInt64, _ body: (inout Value?) -> T) -> T {
        let key = Self.stored(key)
        if (count + 1) * 2 > slots.count { grow() }
        let mask = self.mask
        // Found or made in place (no bounds or uniqueness checks per probe, and the value is not
        // copied out and back); `body` must not use this table.
        let (result, change) = slots.withUnsafeMutableBufferPointer { slots -> (T, Int) in
            var index = Int(truncatingIfNeeded: key) & mask
            while slots[index].key != key && slots[index].key != 0 { index = (index + 1) & mask }
            let present = slots[index].key == key
            let result = body(&slots[index].value)
            if slots[index].value != nil {
                if present { return (result, 0) }
                slots[index].key = key
                return (result, 1)
            }
            return (result, present ? -1 - index : 0)
        }
        if change == 1 { count += 1 } else if change < 0 { remove(at: -1 - change) }
        return result
    }

    /// Starts loading the slot where `key` is or would go (a lookup soon after finds it in cache):
    /// every cache line of it (the rollups' slots span three or four).
    @inline(__always)
    func prefetch(_ key: UInt64) {
        let index = Int(truncatingIfNeeded: Self.stored(key)) & mask
        slots.withUnsafeBufferPointer { slots in
            let start = UnsafeRawPointer(slots.baseAddress! + index)
            var line = 0
            while line < MemoryLayout<Slot>.stride {
                playhead_prefetch(start + line)
                line += 64
            }
            if MemoryLayout<Slot>.stride > 64 { playhead_prefetch(start + MemoryLayout<Slot>.stride - 1) }
        }
    }

    /// The value of `key`, or nil.
    func value(_ key: UInt64) -> Value? {
        let key = Self.stored(key)
        var index = Int(truncatingIfNeeded: key) & mask
        while slots[index].key != 0 {
            if slots[index].key == key { return slots[index].value }
            index = (index + 1) & mask
        }
        return nil
    }

    /// Calls `body` with every value, in no particular order.
    func forEach(_ body: (Value) -> Void) {
        for slot in slots where slot.key != 0 {
            if let value = slot.value { body(value) }
        }
    }

    /// Keeps the values for which `keep` (called twice per value: it must be pure) is true, in a
    /// table sized for what is kept. (It was sized for everything before: a table that dropped most
    /// of its sessions stayed as large, and was briefly there twice.)
    mutating func filter(_ keep: (Value) -> Bool) {
        var keptCount = 0
        for slot in slots where slot.key != 0 {
            if let value = slot.value, keep(value) { keptCount += 1 }
        }
        var kept = HashTable(initialSlots: max(16, keptCount * 2))
        for slot in slots where slot.key != 0 {
            if let value = slot.value, keep(value) { kept.insertNew(slot.key, value) }
        }
        self = kept
    }

    mutating func removeAll() {
        self = HashTable()
    }

    /// Backward shift: moves later entries of the probe run into the hole when their home slot is
    /// not between the hole and where they are.
    private mutating func remove(at index: Int) {
        let mask = self.mask
        var hole = index
        var next = (index + 1) & mask
        while slots[next].key != 0 {
            let home = Int(truncatingIfNeeded: slots[next].key) & mask
            if (next - home) & mask >= (next - hole) & mask {
                slots.swapAt(hole, next)
                hole = next
            }
            next = (next + 1) & mask
        }
        slots[hole] = Slot(key: 0, value: nil)
        count -= 1
    }

    /// Adds a key known to be absent (stored form), with room known to be there.
    private mutating func insertNew(_ key: UInt64, _ value: Value) {
        var index = Int(truncatingIfNeeded: key) & mask
        while slots[index].key != 0 { index = (index + 1) & mask }
        slots[index] = Slot(key: key, value: value)
        count += 1
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(key: 0, value: nil), count: old.count * 2)
        mask = slots.count - 1
        count = 0
        for slot in old where slot.key != 0 {
            if let value = slot.value { insertNew(slot.key, value) }
        }
    }
}

/// A count per 64-bit hash.
struct HashCounts {
    private var table: HashTable<UInt32>

    init(initialSlots: Int = 1024) {
        table = HashTable(initialSlots: initialSlots)
    }

    var count: Int { table.count }

    /// Adds one to `key`'s count; returns whether it was 0.
    @inline(__always)
    mutating func increment(_ key: UInt64) -> Bool {
        table.update(key) { count in
            defer { count = (count ?? 0) &+ 1 }
            return count == nil
        }
    }

    /// Takes one from `key`'s count, removing it at 0 (a key that is absent is ignored).
    @inline(__always)
    mutating func decrement(_ key: UInt64) {
        table.update(key) { count in
            if let current = count { count = current > 1 ? current - 1 : nil }
        }
    }

    @inline(__always)
    func prefetch(_ key: UInt64) { table.prefetch(key) }

    /// The count of `key` (0 when absent).
    func count(of key: UInt64) -> UInt32 {
        table.value(key) ?? 0
    }
}
