import Foundation
import PagodaKernels
import PagodaTestSupport
import XCTest

@testable import PagodaModel

/// No config.json field that changes the maths is parsed and ignored: every unsupported value is a load
/// error naming the field (`ModelLoadError.unsupportedConfigValue`), and the values real configs carry
/// (Qwen2's unused `sliding_window`, Mistral's null or long window, llama3 rope, ...) still load.
/// Configs are written here, not taken from ../shared.
final class ModelConfigValidationTests: XCTestCase {
    let pool = ThreadPool(threads: 1)

    /// A small config of `modelType` (MoE fields for mixtral / qwen3_moe).
    func baseConfig(_ modelType: String) -> [String: Any] {
        var c: [String: Any] = [
            "model_type": modelType, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 64, "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0, "max_position_embeddings": 8192, "hidden_act": "silu", "eos_token_id": 2,
        ]
        if modelType == "mixtral" { c["num_local_experts"] = 4 }
        if modelType == "qwen3_moe" { c["num_experts"] = 4 }
        if modelType == "mixtral" || modelType == "qwen3_moe" { c["num_experts_per_tok"] = 2 }
        return c
    }

    /// Decodes and validates `json` as `load` does (rawFields kept).
    func validate(_ json: [String: Any], maxModelLen: Int? = nil) throws {
        let data = try JSONSerialization.data(withJSONObject: json)
        try ModelConfig.decode(data, path: "test/config.json").validate(path: "test/config.json", maxModelLen: maxModelLen)
    }

    /// Asserts that `json` fails with `unsupportedConfigValue` naming `field` (and the message says so).
    func assertRejected(
        _ json: [String: Any], field: String, maxModelLen: Int? = nil, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try validate(json, maxModelLen: maxModelLen), file: file, line: line) { error in
            guard case .unsupportedConfigValue(let path, let f, _, _)? = error as? ModelLoadError else {
                return XCTFail("expected unsupportedConfigValue for \(field), got \(error)", file: file, line: line)
            }
            XCTAssertEqual(f, field, file: file, line: line)
            XCTAssertEqual(path, "test/config.json", file: file, line: line)
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("test/config.json: \(field) = "), text, file: file, line: line)
            XCTAssertFalse(text.contains("\n"), file: file, line: line)
        }
    }

    func assertLoads(_ json: [String: Any], maxModelLen: Int? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNoThrow(try validate(json, maxModelLen: maxModelLen), file: file, line: line)
    }

    func with(_ json: [String: Any], _ edits: [String: Any]) -> [String: Any] {
        json.merging(edits) { _, new in new }
    }

    // MARK: The table of unimplemented fields

    /// Every `neutral` row of `ConfigFieldSupport`, on every architecture: absent, null and each neutral
    /// value load; a value of the same JSON type outside them is `unsupportedConfigValue` naming the
    /// field; a value of another type is an error naming the field too (for the fields `ModelConfig`
    /// decodes with a type, the decoder's).
    func testEveryNeutralFieldRejectsOtherValuesAndAcceptsNeutralOnes() {
        func sameType(_ a: ConfigValue, _ b: ConfigValue) -> Bool {
            switch (a, b) {
            case (.bool, .bool), (.number, .number), (.string, .string), (.object, .object): return true
            default: return false
            }
        }
        for modelType in ModelArchitecture.registry.keys.sorted() {
            let base = baseConfig(modelType)
            assertLoads(base)
            for field in ConfigFieldSupport.fields {
                guard let allowed = ConfigFieldSupport.neutralValues(field, modelType: modelType) else { continue }
                assertLoads(with(base, [field.key: NSNull()]))
                for v in allowed { assertLoads(with(base, [field.key: json(v)])) }
                for bad in [ConfigValue.string("something else"), .number(0.5), .bool(!allowed.contains(.bool(true))), .object([:])]
                where !allowed.contains(bad) {
                    if allowed.isEmpty || allowed.contains(where: { sameType($0, bad) }) {
                        assertRejected(with(base, [field.key: json(bad)]), field: field.key)
                    } else {
                        XCTAssertThrowsError(try validate(with(base, [field.key: json(bad)]))) {
                            XCTAssertTrue("\($0)".contains(field.key), "\($0)")
                        }
                    }
                }
            }
        }
    }

    func json(_ v: ConfigValue) -> Any {
        switch v {
        case .null: return NSNull()
        case .bool(let b): return b
        case .number(let d): return d
        case .string(let s): return s
        case .array(let a): return a.map(json)
        case .object(let o): return o.mapValues(json)
        }
    }

    func testMlpBiasTrueIsRejectedNamingIt() {
        assertRejected(with(baseConfig("llama"), ["mlp_bias": true]), field: "mlp_bias")
        assertLoads(with(baseConfig("llama"), ["mlp_bias": false]))
    }

    func testHiddenActOtherThanSiluIsRejected() {
        for act in ["gelu", "gelu_pytorch_tanh", "relu"] {
            assertRejected(with(baseConfig("qwen2"), ["hidden_act": act]), field: "hidden_act")
        }
        assertLoads(with(baseConfig("qwen2"), ["hidden_act": "swish"]))
    }

    func testQKNormFlagMustMatchTheArchitecture() {
        assertRejected(with(baseConfig("llama"), ["use_qk_norm": true]), field: "use_qk_norm")
        assertLoads(with(baseConfig("qwen3"), ["use_qk_norm": true]))
    }

    func testSoftcappingAndPartialRotaryAreRejected() {
        assertRejected(with(baseConfig("llama"), ["attn_logit_softcapping": 50.0]), field: "attn_logit_softcapping")
        assertRejected(with(baseConfig("mistral"), ["final_logit_softcapping": 30.0]), field: "final_logit_softcapping")
        assertRejected(with(baseConfig("qwen3"), ["partial_rotary_factor": 0.5]), field: "partial_rotary_factor")
        assertLoads(with(baseConfig("qwen3"), ["partial_rotary_factor": 1.0, "final_logit_softcapping": NSNull()]))
    }

    func testQuantizedCheckpointIsRejected() {
        assertRejected(
            with(baseConfig("llama"), ["quantization_config": ["quant_method": "gptq", "bits": 4]]), field: "quantization_config")
    }

    // MARK: RoPE scaling

    func testUnimplementedRopeTypesAreRejectedNamingTheField() {
        for type in ["dynamic", "yarn", "longrope", "su", "mrope", "something"] {
            assertRejected(
                with(baseConfig("llama"), ["rope_scaling": ["rope_type": type, "factor": 4.0]]), field: "rope_scaling.rope_type")
            assertRejected(
                with(baseConfig("qwen3"), ["rope_parameters": ["rope_type": type, "factor": 4.0, "rope_theta": 1e6]]),
                field: "rope_parameters.rope_type")
        }
        // transformers 4.3x's legacy key.
        assertRejected(with(baseConfig("llama"), ["rope_scaling": ["type": "dynamic", "factor": 2.0]]), field: "rope_scaling.type")
        // rope_scaling without a type: transformers 4 fails to build the model.
        assertRejected(with(baseConfig("llama"), ["rope_scaling": ["factor": 2.0]]), field: "rope_scaling.rope_type")
    }

    func testImplementedRopeTypesLoad() {
        let llama3: [String: Any] = [
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        ]
        assertLoads(with(baseConfig("llama"), ["rope_scaling": NSNull()]))
        assertLoads(with(baseConfig("llama"), ["rope_scaling": llama3]))
        assertLoads(with(baseConfig("llama"), ["rope_scaling": ["type": "linear", "factor": 2.0]]))
        assertLoads(with(baseConfig("llama"), ["rope_scaling": ["rope_type": "default"]]))
        assertLoads(with(baseConfig("llama"), ["rope_parameters": ["rope_type": "default", "rope_theta": 1e6]]))
        assertLoads(with(baseConfig("llama"), ["rope_parameters": llama3.merging(["rope_theta": 5e5]) { a, _ in a }]))
    }

    func testRopeParametersPerLayerTypeAndPartialRotaryInsideThemAreRejected() {
        assertRejected(
            with(baseConfig("llama"), ["rope_parameters": ["full_attention": ["rope_type": "default", "rope_theta": 1e6]]]),
            field: "rope_parameters.full_attention")
        assertRejected(
            with(baseConfig("llama"), ["rope_parameters": ["rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5]]),
            field: "rope_parameters.partial_rotary_factor")
    }

    // MARK: Sliding window

    func testMistralWindowShorterThanTheContextIsRejectedAndLongOrNullWindowsLoad() {
        let mistral = baseConfig("mistral")  // max_position_embeddings 8192
        assertRejected(with(mistral, ["sliding_window": 4096]), field: "sliding_window")
        assertLoads(with(mistral, ["sliding_window": NSNull()]))
        assertLoads(with(mistral, ["sliding_window": 8192]))
        assertLoads(with(mistral, ["sliding_window": 32768]))
        assertRejected(with(baseConfig("mixtral"), ["sliding_window": 4096]), field: "sliding_window")
        assertLoads(with(baseConfig("mixtral"), ["sliding_window": NSNull()]))
    }

    /// With the engine's max model length known, a window that covers it is full attention.
    func testWindowIsComparedWithTheMaxModelLength() {
        let mistral = with(baseConfig("mistral"), ["sliding_window": 4096])
        assertLoads(mistral, maxModelLen: 4096)
        assertLoads(mistral, maxModelLen: 100)
        assertRejected(mistral, field: "sliding_window", maxModelLen: 4097)
    }

    func testQwenWindowAppliesOnlyWithUseSlidingWindowFromMaxWindowLayers() {
        for modelType in ["qwen2", "qwen3", "qwen3_moe"] {
            // transformers 4 Qwen2.5 configs: a window written but switched off.
            let off = with(baseConfig(modelType), ["sliding_window": 4096, "use_sliding_window": false, "max_window_layers": 1])
            assertLoads(off)
            assertLoads(with(off, ["use_sliding_window": NSNull()]))
            // Switched on, but every layer is below max_window_layers: no layer slides.
            assertLoads(with(off, ["use_sliding_window": true, "max_window_layers": 2]))
            assertLoads(with(off, ["use_sliding_window": true, "max_window_layers": 28]))
            // Switched on from layer 1 of 2.
            assertRejected(with(off, ["use_sliding_window": true]), field: "sliding_window")
            // Switched on, window at least the context.
            assertLoads(with(off, ["use_sliding_window": true, "sliding_window": 8192]))
        }
    }

    func testLayerTypesDecideWhichLayersSlide() {
        let mistral = with(baseConfig("mistral"), ["sliding_window": 1024])
        assertLoads(with(mistral, ["layer_types": ["full_attention", "full_attention"]]))
        assertRejected(with(mistral, ["layer_types": ["full_attention", "sliding_attention"]]), field: "sliding_window")
        assertRejected(with(mistral, ["layer_types": ["chunked_attention", "full_attention"]]), field: "layer_types[0]")
        // Qwen: layer_types mark a layer sliding but use_sliding_window is false, so the reference drops the window.
        let qwen = with(baseConfig("qwen2"), ["sliding_window": 1024, "layer_types": ["sliding_attention", "full_attention"]])
        assertLoads(with(qwen, ["use_sliding_window": false]))
        assertRejected(with(qwen, ["use_sliding_window": true]), field: "sliding_window")
        // A count that differs from num_hidden_layers matters only where a window applies.
        XCTAssertThrowsError(try validate(with(mistral, ["layer_types": ["full_attention"]])))
        assertLoads(with(baseConfig("mistral"), ["layer_types": ["full_attention"]]))
    }

    // MARK: Through the loader

    /// The same rules through `CausalLM(directory:)` on a written folder: the error names the field and
    /// the file; the unedited folder loads.
    func testLoaderRejectsUnsupportedFieldsOfAWrittenModel() throws {
        let dir = NSTemporaryDirectory() + "pagoda-config-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try RandomModelWriter.write(config: baseConfig("mistral"), to: dir, seed: 3)
        XCTAssertNoThrow(try CausalLM(directory: dir, threadPool: pool))
        let url = URL(fileURLWithPath: dir + "/config.json")
        let original = try Data(contentsOf: url)
        let edits: [([String: Any], String)] = [
            (["mlp_bias": true], "mlp_bias"),
            (["sliding_window": 4096], "sliding_window"),
            (["rope_scaling": ["rope_type": "yarn", "factor": 4.0]], "rope_scaling.rope_type"),
            (["hidden_act": "gelu"], "hidden_act"),
        ]
        for (edit, field) in edits {
            var json = try JSONSerialization.jsonObject(with: original) as! [String: Any]
            json.merge(edit) { _, new in new }
            try JSONSerialization.data(withJSONObject: json).write(to: url)
            XCTAssertThrowsError(try CausalLM(directory: dir, threadPool: pool)) { error in
                XCTAssertTrue("\(error)".hasPrefix(dir + "/config.json: \(field) = "), "\(error)")
            }
        }
        var json = try JSONSerialization.jsonObject(with: original) as! [String: Any]
        json["sliding_window"] = 4096
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        XCTAssertNoThrow(try CausalLM(directory: dir, threadPool: pool, maxModelLen: 4096))
    }

    /// The configs of ../shared and the repository's model (transformers 5 output) still load.
    func testConformanceConfigsStillLoad() throws {
        var dirs = [ConformanceData.repoModelDirectory]
        dirs += ConformanceData.modelNames().compactMap(ConformanceData.modelDirectory)
        for dir in dirs { XCTAssertNoThrow(try ModelConfig.load(directory: dir), dir) }
    }

    func testConfigValueDecodesJSONTypesApart() throws {
        let raw = try JSONDecoder().decode(
            [String: ConfigValue].self, from: Data(#"{"a": 1, "b": true, "c": 1.5, "d": null, "e": "x", "f": [1], "g": {"h": false}}"#.utf8))
        XCTAssertEqual(raw["a"], .number(1))
        XCTAssertEqual(raw["b"], .bool(true))
        XCTAssertEqual(raw["c"], .number(1.5))
        XCTAssertEqual(raw["d"], .null)
        XCTAssertEqual(raw["e"], .string("x"))
        XCTAssertEqual(raw["f"], .array([.number(1)]))
        XCTAssertEqual(raw["g"], .object(["h": .bool(false)]))
        XCTAssertEqual(raw["a"]?.description, "1")
        XCTAssertEqual(raw["c"]?.description, "1.5")
    }
}
