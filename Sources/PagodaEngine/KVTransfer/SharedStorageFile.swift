import Foundation

/// One stored KV block of the shared-storage connector: `<hash as 16 hex digits>.kvblock` in the
/// connector's directory. Layout, little-endian: `"PGKV"`, `u32 version (1)`, `u32 numLayers`,
/// `u32 blockFloats`, `u32 numTokens`, the block's token ids as `i32`, then for each layer the block's
/// K floats and its V floats. Written to a temporary name and renamed, so a reader never sees half a file.
enum SharedStorageFile {
    static let magic: [UInt8] = Array("PGKV".utf8)
    static let headerBytes = 20

    static func name(_ hash: UInt64) -> String { String(format: "%016llx.kvblock", hash) }

    /// The size of a file holding one block of `blockSize` tokens and `bytesPerBlock` bytes of KV.
    static func size(blockSize: Int, bytesPerBlock: Int) -> Int { headerBytes + 4 * blockSize + bytesPerBlock }

    /// Writes `block` of every layer of `storage` with its token ids to `path`.
    static func write(_ path: String, block: Int, tokenIds: [Int32], storage: KVBlockStorage) throws {
        let floats = storage.kvBlockFloats
        var data = Data(capacity: headerBytes + 4 * tokenIds.count + 2 * storage.kvNumLayers * floats * 4)
        data.append(contentsOf: magic)
        for v in [UInt32(1), UInt32(storage.kvNumLayers), UInt32(floats), UInt32(tokenIds.count)] {
            withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) }
        }
        tokenIds.withUnsafeBytes { data.append(contentsOf: $0) }
        for layer in 0..<storage.kvNumLayers {
            for value in [false, true] {
                data.append(UnsafeBufferPointer(start: storage.kvBlockPointer(layer: layer, block: block, value: value), count: floats))
            }
        }
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw KVTransferError.storage("cannot write \(tmp)")
        }
        if rename(tmp, path) != 0 {
            unlink(tmp)
            throw KVTransferError.storage("cannot rename \(tmp) to \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Reads `path` into `block` of every layer after checking its layout and token ids.
    static func read(_ path: String, block: Int, tokenIds: [Int32], storage: KVBlockStorage) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw KVTransferError.storage("cannot read \(path)") }
        let floats = storage.kvBlockFloats
        let expected = headerBytes + 4 * tokenIds.count + 2 * storage.kvNumLayers * floats * 4
        guard data.count == expected else {
            throw KVTransferError.storage("\(path) has \(data.count) bytes, expected \(expected)")
        }
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
            guard Array(raw[0..<4]) == magic, u32(4) == 1, u32(8) == storage.kvNumLayers, u32(12) == floats,
                u32(16) == tokenIds.count
            else { throw KVTransferError.storage("\(path) is not a KV block of this model's layout") }
            for (i, t) in tokenIds.enumerated()
            where Int32(littleEndian: raw.loadUnaligned(fromByteOffset: headerBytes + 4 * i, as: Int32.self)) != t {
                throw KVTransferError.storage("\(path) holds other tokens than the block it is named for")
            }
            var off = headerBytes + 4 * tokenIds.count
            for layer in 0..<storage.kvNumLayers {
                for value in [false, true] {
                    memcpy(storage.kvBlockPointer(layer: layer, block: block, value: value), raw.baseAddress! + off, floats * 4)
                    off += floats * 4
                }
            }
        }
    }
}

/// A KV transfer that failed inside a step (the shared-storage connector's synchronous loads and saves).
public enum KVTransferError: Error, CustomStringConvertible {
    case storage(String)
    public var description: String {
        switch self {
        case .storage(let s): return "KV shared storage: \(s)"
        }
    }
}
