import Foundation

/// Locates and reads ../shared/conformance (or $PAGODA_CONFORMANCE): tiny models and their references.
public enum ConformanceData {
    /// The conformance folder, or nil (tests then skip and say why).
    public static var root: String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["PAGODA_CONFORMANCE"], fm.fileExists(atPath: env + "/models") {
            return env
        }
        // Repo root = three levels above this file (Sources/PagodaTestSupport/ConformanceData.swift).
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for candidate in [repo.appendingPathComponent("../shared/conformance"), URL(fileURLWithPath: fm.currentDirectoryPath + "/../shared/conformance")] {
            let p = candidate.standardizedFileURL.path
            if fm.fileExists(atPath: p + "/models") { return p }
        }
        return nil
    }

    public static let skipReason =
        "conformance data not found: set PAGODA_CONFORMANCE or place shared/conformance next to the repository"

    /// Names of the model folders under models/.
    public static func modelNames() -> [String] {
        guard let root else { return [] }
        return ((try? FileManager.default.contentsOfDirectory(atPath: root + "/models")) ?? []).sorted()
    }

    public static func modelDirectory(_ name: String) -> String? { root.map { "\($0)/models/\(name)" } }

    /// The repository's own small model (models/tiny-qwen3), present on every clone.
    public static var repoModelDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("models/tiny-qwen3").path
    }
}

/// reference.json of one conformance model.
public struct ModelReference: Decodable {
    public struct Step: Decodable {
        public var token: Int
        public var top10: [[Double]]
        public var margin: Double
        enum CodingKeys: String, CodingKey { case token, top10, margin = "margin_top1_top2" }
    }

    public struct Prompt: Decodable {
        public var name: String
        public var promptIds: [Int]
        public var generatedIds: [Int]
        public var steps: [Step]
        enum CodingKeys: String, CodingKey {
            case name, promptIds = "prompt_ids", generatedIds = "generated_ids", steps
        }
    }

    public var model: String
    public var prompts: [Prompt]

    public static func load(directory: String) throws -> ModelReference {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/reference.json"))
        return try JSONDecoder().decode(ModelReference.self, from: data)
    }
}

/// Reads a 1-D little-endian float32 .npy file.
public enum NpyFile {
    public static func readFloat32(path: String) throws -> [Float] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count > 10, data.prefix(6) == Data([0x93] + Array("NUMPY".utf8)) else {
            throw CocoaError(.fileReadCorruptFile)
        }
        let headerLength = Int(data[8]) | (Int(data[9]) << 8)
        let start = 10 + headerLength
        let count = (data.count - start) / 4
        return data.withUnsafeBytes { raw in
            (0..<count).map { raw.loadUnaligned(fromByteOffset: start + $0 * 4, as: Float.self) }
        }
    }
}
