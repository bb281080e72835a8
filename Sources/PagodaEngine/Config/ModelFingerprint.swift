import Foundation

/// A short digest of what a model folder serves — its `config.json` and its vocabulary files — so that engine
/// cores on different nodes, whose paths to the model differ, can tell whether they serve the same model
/// (the data-parallel handshake compares it). Weights are not read (too large to hash at start-up); two
/// folders with one config and one tokenizer but other weights look alike.
public enum ModelFingerprint {
    /// Files whose bytes make up the fingerprint, when present in the folder.
    static let files = ["config.json", "tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "tokenizer_config.json"]
    /// Bytes read from a single-file model (GGUF: its metadata, vocabulary included, comes first).
    static let singleFilePrefixBytes = 32 << 20

    /// `fnv1a64:<16 hex digits>` over the folder's config and vocabulary files (or the head of a single-file
    /// model and its size); throws when nothing can be read.
    public static func of(path: String) throws -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw EngineConfigError.invalid("model", "\(path) does not exist")
        }
        var read = 0
        if isDirectory.boolValue {
            for name in files {
                let url = URL(fileURLWithPath: path).appendingPathComponent(name)
                guard let data = try? Data(contentsOf: url) else { continue }
                mix(&hash, Array(name.utf8))
                mix(&hash, data)
                read += 1
            }
        } else if let handle = FileHandle(forReadingAtPath: path) {
            defer { try? handle.close() }
            let head = handle.readData(ofLength: singleFilePrefixBytes)
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            mix(&hash, head)
            mix(&hash, Array(String(size).utf8))
            read = 1
        }
        guard read > 0 else { throw EngineConfigError.invalid("model", "\(path) has no config.json or tokenizer to identify it by") }
        return "fnv1a64:" + String(format: "%016llx", hash)
    }

    private static func mix<C: Collection>(_ hash: inout UInt64, _ bytes: C) where C.Element == UInt8 {
        var h = hash
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        // A separator, so that moving bytes between files changes the digest.
        h ^= 0xff
        h = h &* 0x0000_0100_0000_01b3
        hash = h
    }
}
