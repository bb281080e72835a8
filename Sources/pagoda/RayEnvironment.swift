import ArgumentParser
import Foundation
import PagodaEngine

/// The Ray settings of `--distributed-executor-backend ray` and `--data-parallel-backend ray`, read from the
/// environment here, at the command-line edge (no flag of vLLM's carries them): `PAGODA_RAY_HELPER` (the
/// helper script), `PAGODA_RAY_PYTHON`, `PAGODA_RAY_ADDRESS` (else the helper's `RAY_ADDRESS`, else auto),
/// `PAGODA_RAY_BUNDLE_RESOURCES` (one bundle as JSON, e.g. `{"CPU": 1}` or a custom device resource),
/// `PAGODA_RAY_PLACEMENT_TIMEOUT_S`, and the pack strategy `PAGODA_RAY_DP_PACK_STRATEGY`, else vLLM's
/// `VLLM_RAY_DP_PACK_STRATEGY`.
enum RayEnvironment {
    static func settings(_ environment: [String: String]) throws -> RaySettings {
        var s = RaySettings()
        func text(_ name: String) -> String? {
            guard let v = environment[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        if let v = text("PAGODA_RAY_HELPER") {
            guard FileManager.default.fileExists(atPath: v) else {
                throw ValidationError("invalid PAGODA_RAY_HELPER \"\(v)\": no such file")
            }
            s.helperScript = v
        } else {
            guard let found = RaySettings.locateHelper() else {
                throw ValidationError(
                    "the Ray backend needs python/pagoda_ray.py: none found above the pagoda executable; set PAGODA_RAY_HELPER")
            }
            s.helperScript = found
        }
        if let v = text("PAGODA_RAY_PYTHON") { s.python = v }
        if let v = text("PAGODA_RAY_ADDRESS") { s.address = v }
        if let v = text("PAGODA_RAY_BUNDLE_RESOURCES") {
            guard let bundle = try? JSONDecoder().decode([String: Double].self, from: Data(v.utf8)), !bundle.isEmpty,
                bundle.values.allSatisfy({ $0 >= 0 && $0.isFinite }), bundle.values.contains(where: { $0 > 0 })
            else {
                throw ValidationError(
                    "invalid PAGODA_RAY_BUNDLE_RESOURCES \"\(v)\": must be a JSON object of resource amounts, e.g. {\"CPU\": 1}")
            }
            s.bundle = bundle
        }
        if let v = text("PAGODA_RAY_PLACEMENT_TIMEOUT_S") {
            guard let t = Double(v), t > 0, t.isFinite else {
                throw ValidationError("invalid PAGODA_RAY_PLACEMENT_TIMEOUT_S \"\(v)\": must be a positive number of seconds")
            }
            s.placementTimeoutSeconds = t
        }
        return s
    }

    /// `PAGODA_RAY_DP_PACK_STRATEGY`, else `VLLM_RAY_DP_PACK_STRATEGY`, else strict.
    static func packStrategy(_ environment: [String: String]) throws -> RayPackStrategy {
        guard
            let v = EnvironmentSetting.value(
                flag: nil, flagName: "", variables: ["PAGODA_RAY_DP_PACK_STRATEGY", "VLLM_RAY_DP_PACK_STRATEGY"], in: environment)
        else { return .strict }
        guard let s = RayPackStrategy(rawValue: v.value.trimmingCharacters(in: .whitespaces).lowercased()) else {
            throw ValidationError(
                "invalid \(v.source) \"\(v.value)\": must be one of \(RayPackStrategy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return s
    }
}
