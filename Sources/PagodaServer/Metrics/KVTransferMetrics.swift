import PagodaEngine
import Prometheus

/// One engine's KV-transfer series (prefill/decode disaggregation, `--kv-transfer-config`), in vLLM's
/// naming style, from the cumulative `KVTransferStats` the engine publishes: loads that brought a
/// prompt's KV over the wire, their bytes and seconds, fall-backs to recomputing the prefill, reads
/// served by a producer, holds that expired, blocks held for remote readers, and the shared-storage
/// connector's external prefix-cache hits.
final class KVTransferMetrics {
    let transfers: Counter, bytes: Counter, seconds: Counter, recomputes: Counter
    let sends: Counter, sentBytes: Counter, sendTimeouts: Counter, held: Gauge
    let externalQueries: Counter, externalHits: Counter, savedBlocks: Counter
    private var last = KVTransferStats()

    init(registry: PrometheusCollectorRegistry, labels: [(String, String)]) {
        func c(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
        }
        transfers = c("vllm:kv_transfer_requests_total", "Requests whose prompt KV was loaded from a KV connector.")
        bytes = c("vllm:kv_transfer_bytes_total", "Bytes of KV loaded from a KV connector.")
        seconds = c("vllm:kv_transfer_seconds_total", "Seconds spent loading KV from a KV connector.")
        recomputes = c(
            "vllm:kv_transfer_recomputes_total",
            "Requests whose KV did not arrive (producer unreachable, slow, or blocks freed) and were prefilled locally.")
        sends = c("vllm:kv_transfer_sends_total", "KV reads served to remote decode servers.")
        sentBytes = c("vllm:kv_transfer_sent_bytes_total", "Bytes of KV served to remote decode servers.")
        sendTimeouts = c("vllm:kv_transfer_send_timeouts_total", "KV holds freed because no reader came within transfer_timeout_s.")
        held = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "vllm:kv_blocks_held_for_remote", unitName: "", helpText: "KV blocks held for remote decode servers."),
            labels: labels)
        externalQueries = c("vllm:external_prefix_cache_queries_total", "Tokens looked up in the KV connector's storage.")
        externalHits = c("vllm:external_prefix_cache_hits_total", "Tokens found in the KV connector's storage.")
        savedBlocks = c("vllm:kv_transfer_saved_blocks_total", "KV blocks written to the KV connector's storage.")
    }

    /// Applies the engine's cumulative counters (increments by the difference to the last report).
    func record(_ s: KVTransferStats) {
        func d(_ now: Int, _ before: Int) -> Int64 { Int64(now >= before ? now - before : now) }
        func inc(_ counter: Counter, _ now: Int, _ before: Int) { let v = d(now, before); if v > 0 { counter.increment(by: v) } }
        inc(transfers, s.transfers, last.transfers)
        inc(bytes, s.bytes, last.bytes)
        if s.seconds > last.seconds { seconds.increment(by: s.seconds - last.seconds) }
        inc(recomputes, s.recomputes, last.recomputes)
        inc(sends, s.sends, last.sends)
        inc(sentBytes, s.sentBytes, last.sentBytes)
        inc(sendTimeouts, s.sendTimeouts, last.sendTimeouts)
        inc(externalQueries, s.externalPrefixCacheQueries, last.externalPrefixCacheQueries)
        inc(externalHits, s.externalPrefixCacheHits, last.externalPrefixCacheHits)
        inc(savedBlocks, s.savedBlocks, last.savedBlocks)
        held.set(Double(s.blocksHeldForRemote))
        last = s
    }
}
