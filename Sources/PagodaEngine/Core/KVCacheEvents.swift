/// Changes to an engine's prefix-cache index (vLLM's `BlockStored` / `BlockRemoved` / `AllBlocksCleared`
/// KV events), by the 64-bit `BlockHash.value` of each full block, in the order they happened. Applied in
/// order to a set of hash values they reproduce the set of prefixes the engine holds: the data-parallel
/// front-end keeps one such set per engine to prefer the engine that already caches a request's prefix.
public struct KVCacheEvents: Sendable, Codable, Equatable {
    /// One change: `hash` entered (`stored`) or left the index.
    public struct Change: Sendable, Codable, Equatable {
        public var hash: UInt64
        public var stored: Bool
        public init(hash: UInt64, stored: Bool) { self.hash = hash; self.stored = stored }
    }
    /// The whole index was dropped (prefix-cache reset) before `changes`.
    public var cleared = false
    public var changes: [Change] = []

    public init(cleared: Bool = false, changes: [Change] = []) {
        self.cleared = cleared; self.changes = changes
    }

    public var isEmpty: Bool { changes.isEmpty && !cleared }

    /// Appends `later` (events recorded after these).
    public mutating func append(_ later: KVCacheEvents) {
        if later.cleared { self = later; return }
        changes += later.changes
    }

    /// Applies the events, in order, to `set` (the hash values an engine holds).
    public func apply(to set: inout Set<UInt64>) {
        if cleared { set.removeAll(keepingCapacity: true) }
        for c in changes {
            if c.stored { set.insert(c.hash) } else { set.remove(c.hash) }
        }
    }
}
