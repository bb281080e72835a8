import Foundation

/// Writes a `.safetensors` file tensor by tensor without holding the data in memory: the header is
/// computed from the declared tensors first, then each tensor's bytes are streamed by a producer.
public struct SafetensorsWriter {
    public struct Entry {
        public var name: String
        public var dtype: String  // "BF16" | "F32" | "F16"
        public var shape: [Int]
        public var byteCount: Int { shape.reduce(1, *) * (SafetensorsFile.elementSize(dtype) ?? 1) }

        public init(name: String, dtype: String, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
    }

    /// Writes `entries` in order; `produce(entry, write)` must call `write` with exactly the entry's bytes
    /// (in any number of chunks).
    public static func write(
        path: String, entries: [Entry], metadata: [String: String] = ["format": "pt"],
        produce: (Entry, (UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for e in entries {
            header[e.name] = ["dtype": e.dtype, "shape": e.shape, "data_offsets": [offset, offset + e.byteCount]]
            offset += e.byteCount
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (8 + json.count) % 8 != 0 { json.append(0x20) }  // pad with spaces so the data is 8-aligned
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw ModelLoadError.invalidSafetensors(path: path, reason: "cannot create file")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var length = UInt64(json.count).littleEndian
        try handle.write(contentsOf: Data(bytes: &length, count: 8))
        try handle.write(contentsOf: json)
        for e in entries {
            var written = 0
            try produce(e) { chunk in
                written += chunk.count
                try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: chunk.baseAddress!), count: chunk.count, deallocator: .none))
            }
            guard written == e.byteCount else {
                throw ModelLoadError.invalidSafetensors(path: path, reason: "tensor \(e.name): wrote \(written) of \(e.byteCount) bytes")
            }
        }
    }
}
