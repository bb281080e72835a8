import Foundation

/// How Pagoda reaches a Ray cluster and what it reserves there: the helper that speaks to Ray
/// (`python/pagoda_ray.py`, run with `python`), the cluster address, the resources of one bundle (one
/// worker, or one engine core of a data-parallel rank), and how long a placement may wait. Built at the
/// command-line edge; travels inside `ParallelConfig` to the engine cores that place their own workers.
public struct RaySettings: Sendable, Codable, Equatable {
    /// The Python interpreter that has `ray` installed.
    public var python: String = "python3"
    /// `pagoda_ray.py`; nil: found beside the `pagoda` executable's checkout (`RaySettings.locateHelper`).
    public var helperScript: String? = nil
    /// The cluster address; nil: the helper's `RAY_ADDRESS`, else Ray's `address="auto"`.
    public var address: String? = nil
    /// Resources of one bundle (vLLM reserves one device per worker; `{"CPU": 1}` by default).
    public var bundle: [String: Double] = ["CPU": 1]
    /// Seconds a placement group may wait for its resources before the placement is an error.
    public var placementTimeoutSeconds: Double = 60
    /// A placement group already made for this engine (a data-parallel rank's): worker i runs in bundle i,
    /// on `bundleHosts[i]`; nil: the engine makes its own.
    public var placementGroup: String? = nil
    public var bundleHosts: [String]? = nil
    /// The node the engine core of that placement group runs on (its bundle 0): where its workers reach it over
    /// TCP; nil: `bundleHosts[0]`.
    public var engineHost: String? = nil

    public init(
        python: String = "python3", helperScript: String? = nil, address: String? = nil, bundle: [String: Double] = ["CPU": 1],
        placementTimeoutSeconds: Double = 60
    ) {
        self.python = python; self.helperScript = helperScript; self.address = address; self.bundle = bundle
        self.placementTimeoutSeconds = placementTimeoutSeconds
    }

    /// The helper script: `helperScript`, else `python/pagoda_ray.py` in a folder above the running executable
    /// (`.build/debug/pagoda` of a checkout).
    public func resolvedHelper() throws -> String {
        if let helperScript { return helperScript }
        if let found = Self.locateHelper() { return found }
        throw RayError.helper("python/pagoda_ray.py not found above \(Self.executablePath); set PAGODA_RAY_HELPER to its path")
    }

    static var executablePath: String { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path }

    /// `python/pagoda_ray.py` in the executable's folder or up to five folders above it.
    public static func locateHelper() -> String? {
        var dir = URL(fileURLWithPath: executablePath).deletingLastPathComponent()
        for _ in 0..<6 {
            let candidate = dir.appendingPathComponent("python/pagoda_ray.py").path
            if FileManager.default.fileExists(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// The command that starts the helper in `mode` (`session`, or `exec ...`).
    func helperCommand(_ mode: [String]) throws -> [String] {
        [python, "-u", try resolvedHelper()] + (address.map { ["--address", $0] } ?? []) + mode
    }
}

/// vLLM's data-parallel pack strategies (`VLLM_RAY_DP_PACK_STRATEGY`): how the ranks' placement groups
/// are laid over the nodes.
public enum RayPackStrategy: String, Sendable, Codable, CaseIterable {
    /// Every node used holds exactly `--data-parallel-size-local` ranks, each rank on one node.
    case strict
    /// Every node, the head first, holds as many ranks as fit, each rank on one node.
    case fill
    /// A rank may span several nodes (one replica larger than a node).
    case span
}

/// A failure of the Ray side: the helper cannot start or connect, a placement cannot be satisfied, an
/// answer does not come in time.
public enum RayError: Error, CustomStringConvertible, Equatable {
    case helper(String)
    case placement(String)
    case timeout(String)

    public var description: String {
        switch self {
        case .helper(let s): return "Ray: \(s)"
        case .placement(let s): return "Ray placement: \(s)"
        case .timeout(let s): return "Ray: \(s)"
        }
    }
}
