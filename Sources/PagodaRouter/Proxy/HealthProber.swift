import AsyncHTTPClient
import Logging
import NIOCore

/// Probes every backend's `GET /health` each interval and feeds the results to the balancer,
/// logging each change of a backend's health.
struct HealthProber: Sendable {
    let client: HTTPClient
    let shared: SharedBalancer
    let interval: Double
    let timeout: Double
    let logger: Logger

    /// Runs until the task is cancelled.
    func run() async {
        while !Task.isCancelled {
            await probeAll()
            try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
        }
    }

    func probeAll() async {
        await withTaskGroup(of: Void.self) { group in
            for (index, backend) in shared.addresses.enumerated() {
                group.addTask {
                    let error = await probe(backend)
                    if Task.isCancelled { return }
                    let change = shared.withLock { $0.probeResult(backend: index, error: error) }
                    switch change {
                    case .unhealthy?: logger.error("backend \(backend) is unhealthy: \(error ?? "")")
                    case .healthy?: logger.notice("backend \(backend) is healthy again")
                    case nil: break
                    }
                }
            }
        }
    }

    /// nil when healthy, else why not.
    private func probe(_ backend: BackendAddress) async -> String? {
        var request = HTTPClientRequest(url: backend.baseURL + "/health")
        request.method = .GET
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout * 1000)))
            _ = try? await response.body.collect(upTo: 1 << 20)
            return response.status.code == 200 ? nil : "GET /health answered HTTP \(response.status.code)"
        } catch {
            return "GET /health failed: \(error)"
        }
    }
}
