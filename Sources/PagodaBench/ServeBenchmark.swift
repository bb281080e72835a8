import AsyncHTTPClient
import Foundation

/// Runs one serving benchmark (vLLM's `benchmark()`): sends the requests on their arrival schedule under the
/// concurrency limit, waits for all of them, and returns every output in request order with the duration.
/// Failed requests stay in the outputs with their error; nothing is dropped.
public struct ServeBenchmark {
    public let config: ServeBenchmarkConfig
    public let client: HTTPClient
    /// Where status lines go (stdout by default); the result block is printed by `ServeReport`.
    public var log: (String) -> Void = { print($0) }

    public init(config: ServeBenchmarkConfig, client: HTTPClient) {
        self.config = config
        self.client = client
    }

    public struct Run {
        public var outputs: [RequestFuncOutput]
        public var duration: Double
    }

    func input(for request: SampleRequest) -> RequestFuncInput {
        RequestFuncInput(
            prompt: request.prompt, apiURL: config.apiURL, promptLen: request.promptLen,
            outputLen: request.expectedOutputLen, model: config.requestModel, ignoreEOS: config.ignoreEOS,
            extraBody: config.extraBody, requestId: request.requestId)
    }

    public func run(_ requests: [SampleRequest]) async throws -> Run {
        guard !requests.isEmpty else { throw ServeBenchError("the dataset produced no requests") }
        let send = ServeRequestFunc(backend: config.backend, client: client, apiKey: config.apiKey)
        let testInput = input(for: requests[0])

        if config.readyCheckTimeoutSeconds > 0 {
            log("Waiting for endpoint to become up in \(Int(config.readyCheckTimeoutSeconds)) seconds")
            let deadline = benchNow() + config.readyCheckTimeoutSeconds
            var last = await send(testInput)
            while !last.success && benchNow() < deadline {
                try await Task.sleep(nanoseconds: 1_000_000_000)
                last = await send(testInput)
            }
            guard last.success else {
                throw ServeBenchError(
                    "Initial test run failed - Please make sure benchmark arguments are correctly specified. Error: \(last.error)")
            }
            log("Initial test run completed.")
        }
        if config.numWarmups > 0 {
            log("Warming up with \(config.numWarmups) requests...")
            let limit = ServeConcurrencyLimit(limit: config.maxConcurrency ?? config.numWarmups)
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<config.numWarmups {
                    group.addTask {
                        await limit.acquire()
                        _ = await send(testInput)
                        await limit.release()
                    }
                }
            }
            log("Warmup run completed.")
        }

        log("Starting main benchmark run...")
        log("Traffic request rate: \(Self.pythonFloat(config.requestRate))")
        log("Burstiness factor: \(Self.pythonFloat(config.burstiness)) (\(config.burstiness == 1 ? "Poisson process" : "Gamma distribution"))")
        log("Maximum request concurrency: \(config.maxConcurrency.map(String.init) ?? "None")")

        var rng = BenchRandom(seed: config.seed)
        let delays = ServeArrivalSchedule.delays(
            count: requests.count, requestRate: config.requestRate, burstiness: config.burstiness, rng: &rng)
        let progress = ServeProgressBar(total: requests.count, enabled: !config.disableProgress)
        let limit = config.maxConcurrency.map { ServeConcurrencyLimit(limit: $0) }
        let inputs = requests.map(input(for:))

        let start = benchNow()
        var outputs = [RequestFuncOutput](repeating: RequestFuncOutput(), count: requests.count)
        await withTaskGroup(of: (Int, RequestFuncOutput).self) { group in
            for (index, requestInput) in inputs.enumerated() {
                let wait = start + delays[index] - benchNow()
                if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                let arrival = benchNow()
                group.addTask {
                    if let limit { await limit.acquire() }
                    var output = await send(requestInput)
                    if let limit { await limit.release() }
                    output.clientQueueTime = output.startTime - arrival
                    progress.update()
                    return (index, output)
                }
            }
            for await (index, output) in group { outputs[index] = output }
        }
        let duration = benchNow() - start
        progress.close()
        return Run(outputs: outputs, duration: duration)
    }

    /// A Double as Python's `str()` prints it (`inf`, `1.0`, `2.5`).
    static func pythonFloat(_ value: Double) -> String {
        value == .infinity ? "inf" : "\(value)"
    }
}

/// A benchmark that cannot run (server unreachable, bad flags): one line for the user.
public struct ServeBenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
