import PagodaEngine
import Prometheus

/// One engine's expert-parallel series (`--enable-expert-parallel`), from the cumulative
/// `ExpertParallelEngineStats` it publishes: the DP wave protocol (waves, steps, dummy steps, in a wave
/// now, its number, stale wave starts ignored), the all-to-all time and step count of its driver worker (their ratio is the all-to-all time per
/// step), the group's balancedness, and the tokens routed to each expert held by this engine's EP ranks.
final class ExpertParallelMetrics {
    let registry: PrometheusCollectorRegistry
    let labels: [(String, String)]
    let waves: Counter, waveSteps: Counter, dummySteps: Counter, inWave: Gauge, currentWave: Gauge, staleWaveStarts: Counter
    let epSteps: Counter, allToAllSeconds: Counter, countsSeconds: Counter, balancedness: Gauge
    private var expertTokens: [Int: Counter] = [:]
    private var last = ExpertParallelEngineStats()

    init(registry: PrometheusCollectorRegistry, labels: [(String, String)]) {
        self.registry = registry
        self.labels = labels
        func c(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
        }
        func g(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
        }
        waves = c(
            "pagoda:dp_waves_total", "Data-parallel waves this engine finished (DP lock-step of a MoE model under expert parallelism).")
        waveSteps = c("pagoda:dp_wave_steps_total", "Steps this engine ran inside waves.")
        dummySteps = c(
            "pagoda:dp_dummy_steps_total",
            "Wave steps this engine ran without tokens of its own (dummy batches serving the other ranks' tokens).")
        inWave = g("pagoda:dp_in_wave", "1 while this engine is in a wave.")
        currentWave = g("pagoda:dp_current_wave", "The number of the wave this engine is in, or starts next.")
        staleWaveStarts = c(
            "pagoda:dp_stale_wave_starts_total", "Wave starts this engine ignored because their wave had already ended here.")
        epSteps = c("pagoda:ep_steps_total", "Expert-parallel steps of this engine's driver worker, as of its latest expert-load report.")
        allToAllSeconds = c(
            "pagoda:ep_all_to_all_seconds_total",
            "Seconds this engine's driver worker spent in the dispatch and combine all-to-alls, as of its latest report.")
        countsSeconds = c(
            "pagoda:ep_counts_exchange_seconds_total",
            "Of pagoda:ep_all_to_all_seconds_total, the counts exchanges (mostly waiting for the slowest rank to arrive).")
        balancedness = g(
            "pagoda:ep_balancedness", "Mean over max of the tokens routed to each EP rank in the latest report window (1 = even).")
    }

    func record(_ s: ExpertParallelEngineStats) {
        func inc(_ counter: Counter, _ now: Int, _ before: Int) { if now > before { counter.increment(by: Int64(now - before)) } }
        inc(waves, s.waves, last.waves)
        inc(waveSteps, s.waveSteps, last.waveSteps)
        inc(dummySteps, s.dummySteps, last.dummySteps)
        inWave.set(Double(s.inWave ? 1 : 0))
        currentWave.set(Double(s.currentWave))
        inc(staleWaveStarts, s.staleWaveAnnouncements, last.staleWaveAnnouncements)
        if let m = s.model {
            inc(epSteps, m.steps, last.model?.steps ?? 0)
            let dt = m.allToAllSeconds - (last.model?.allToAllSeconds ?? 0)
            if dt > 0 { allToAllSeconds.increment(by: dt) }
            let dc = m.countsExchangeSeconds - (last.model?.countsExchangeSeconds ?? 0)
            if dc > 0 { countsSeconds.increment(by: dc) }
            balancedness.set(m.balancedness)
            for r in s.expertRanks where r < m.groupSize {
                let start = m.rankExpertStarts[r], end = r + 1 < m.groupSize ? m.rankExpertStarts[r + 1] : m.numExperts
                for e in start..<end {
                    let counter =
                        expertTokens[e]
                        ?? registry.makeCounter(
                            descriptor: MetricNameDescriptor(
                                metricName: "pagoda:ep_expert_tokens_total", unitName: "",
                                helpText:
                                    "Tokens routed to this expert (summed over layers), by the EP rank holding it, as of the latest report."
                            ),
                            labels: labels + [("ep_rank", String(r)), ("expert", String(e))])
                    expertTokens[e] = counter
                    inc(counter, m.tokensPerExpert[e], last.model?.tokensPerExpert[e] ?? 0)
                }
            }
        }
        last = s
    }
}
