/// Renders the balancer's state as Prometheus text exposition (format 0.0.4) for `GET /metrics`.
///
/// Rendered from a snapshot at scrape time rather than kept in a metrics registry: every figure is
/// already a field of `LoadBalancer`, so the scrape and the routing decisions can never disagree.
public enum ProxyMetrics {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `role`: a `role` label on every series (`pagoda disagg-proxy` renders its prefill and decode balancers).
    public static func render(_ balancer: LoadBalancer, role: String? = nil) -> String {
        var out = ""
        let roleLabel = role.map { "role=\"\($0)\"," } ?? ""
        func family(_ name: String, _ type: String, _ help: String, _ value: (LoadBalancer.Backend) -> String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (rank, backend) in balancer.backends.enumerated() {
                out += "\(name){\(roleLabel)backend=\"\(escape(backend.address.description))\",index=\"\(rank)\"} \(value(backend))\n"
            }
        }
        let single = role.map { "{role=\"\($0)\"}" } ?? ""
        family("pagoda_proxy_backend_in_flight_requests", "gauge", "Requests in flight to the backend.") {
            String($0.inFlightRequests)
        }
        family("pagoda_proxy_backend_in_flight_cost", "gauge",
               "Cost (prompt tokens + weighted max_tokens) of the requests in flight to the backend.") {
            number($0.inFlightCost)
        }
        family("pagoda_proxy_backend_requests_routed_total", "counter", "Request attempts routed to the backend.") {
            String($0.routed)
        }
        family("pagoda_proxy_backend_routed_cost_total", "counter", "Cost routed to the backend in total.") {
            number($0.routedCost)
        }
        family("pagoda_proxy_backend_failures_total", "counter",
               "Request attempts that failed at the backend (unreachable, lost connection, 5xx).") {
            String($0.failures)
        }
        family("pagoda_proxy_backend_healthy", "gauge", "1 when the backend gets new requests, 0 when it is unhealthy.") {
            $0.health.isHealthy ? "1" : "0"
        }
        out += "# HELP pagoda_proxy_requests_retried_total Attempts retried on another backend.\n"
        out += "# TYPE pagoda_proxy_requests_retried_total counter\npagoda_proxy_requests_retried_total\(single) \(balancer.retries)\n"
        out += "# HELP pagoda_proxy_requests_rejected_total Requests refused because no healthy backend was left.\n"
        out += "# TYPE pagoda_proxy_requests_rejected_total counter\npagoda_proxy_requests_rejected_total\(single) \(balancer.rejected)\n"
        out += "# HELP pagoda_proxy_cache_affinity_hits_total Requests placed by prompt-prefix affinity (cache-aware).\n"
        out += "# TYPE pagoda_proxy_cache_affinity_hits_total counter\npagoda_proxy_cache_affinity_hits_total\(single) \(balancer.affinityHits)\n"
        return out
    }

    private static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    private static func escape(_ label: String) -> String {
        label.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}

import Foundation
