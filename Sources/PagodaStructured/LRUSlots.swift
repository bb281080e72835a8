/// Slot bookkeeping for a bounded cache that drops its least recently used entry when full: keys map
/// to slot numbers 0..<capacity, and the payloads live in the owner's arrays, indexed by slot, so an
/// eviction reuses a slot's storage in place instead of dropping the whole cache.
struct LRUSlots<Key: Hashable> {
    let capacity: Int
    private var slotOf: [Key: Int] = [:]
    private var keys: [Key] = []
    private var lastUse: [UInt64] = []
    private var clock: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        slotOf.reserveCapacity(self.capacity)
    }

    /// Number of slots in use.
    var count: Int { keys.count }

    /// The slot of `key` if it is cached (marking it used).
    mutating func lookup(_ key: Key) -> Int? {
        guard let s = slotOf[key] else { return nil }
        clock += 1
        lastUse[s] = clock
        return s
    }

    /// A slot for `key`, which must not be cached: a fresh one (`isNew`, numbered `count - 1`: the
    /// owner appends its payload) while below capacity, else the least recently used slot, whose old
    /// key is forgotten (the owner overwrites its payload).
    mutating func insert(_ key: Key) -> (slot: Int, isNew: Bool) {
        clock += 1
        if keys.count < capacity {
            keys.append(key)
            lastUse.append(clock)
            slotOf[key] = keys.count - 1
            return (keys.count - 1, true)
        }
        var victim = 0
        for s in 1..<keys.count where lastUse[s] < lastUse[victim] { victim = s }
        slotOf[keys[victim]] = nil
        keys[victim] = key
        lastUse[victim] = clock
        slotOf[key] = victim
        return (victim, false)
    }
}
