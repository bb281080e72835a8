import AsyncHTTPClient
import Foundation
import NIOCore

/// `pagoda bench serve` end to end: reach the server, load the tokenizer, build the dataset, run (once, or once
/// per `--concurrency-sweep` level), print vLLM's result block (or the sweep table) and save the JSON.
public struct ServeMain {
    public var options: ServeOptions
    /// Opens a tokenizer folder (PagodaTokenizer's `Tokenizer` in the CLI).
    public var loadTokenizer: (String) throws -> BenchTokenizer
    public var log: (String) -> Void = { print($0) }

    public init(options: ServeOptions, loadTokenizer: @escaping (String) throws -> BenchTokenizer) {
        self.options = options
        self.loadTokenizer = loadTokenizer
    }

    /// Runs the benchmark. Returns the saved (or unsaved) result JSON; throws `ServeBenchError` for anything that
    /// stops it from running. A run where every request failed is reported in full, then thrown as an error.
    @discardableResult
    public func run() async throws -> ServeJSON {
        var options = self.options
        try options.validate()
        // As vLLM: the random dataset asks for exactly its output lengths.
        if options.datasetName == .random { options.ignoreEOS = true }
        let baseURL = options.resolvedBaseURL
        let apiURL = baseURL + options.resolvedEndpoint

        var configuration = HTTPClient.Configuration()
        let connections = max(8, options.concurrencySweep.max() ?? options.maxConcurrency ?? options.numPrompts)
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: min(connections, 4096))
        configuration.timeout = .init(connect: .seconds(10))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let result = try await run(options: options, baseURL: baseURL, apiURL: apiURL, client: client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func run(options: ServeOptions, baseURL: String, apiURL: String, client: HTTPClient) async throws -> ServeJSON {
        // Reach the server first, so a server that is down is one clear line, not N failed requests.
        let served = try await Self.probe(baseURL: baseURL, apiKey: options.apiKey)
        var modelId: String
        var modelName = options.servedModelName
        if let model = options.model {
            modelId = model
        } else {
            guard let first = served.first else {
                throw ServeBenchError("no --model given and \(baseURL)/v1/models lists no model")
            }
            log("Model not specified, fetching first model from server...")
            log("First model name: \(first.id), first model id: \(first.root ?? first.id)")
            modelId = first.root ?? first.id
            modelName = first.id
        }
        let tokenizerId = options.tokenizer ?? modelId
        guard Self.isTokenizerFolder(tokenizerId) else {
            throw ServeBenchError(
                "--tokenizer: '\(tokenizerId)' is not a local folder with tokenizer.json nor a GGUF file (give --tokenizer DIR, or --model as the model folder or .gguf file)"
            )
        }
        let tokenizer: BenchTokenizer
        do {
            tokenizer = try loadTokenizer(tokenizerId)
        } catch {
            throw ServeBenchError("--tokenizer \(tokenizerId): \(error)")
        }

        var config = ServeBenchmarkConfig(apiURL: apiURL, baseURL: baseURL, modelId: modelId)
        config.backend = options.backend
        config.apiKey = options.apiKey
        config.modelName = modelName
        config.requestRate = options.requestRate
        config.burstiness = options.burstiness
        config.maxConcurrency = options.maxConcurrency
        config.ignoreEOS = options.ignoreEOS
        config.disableProgress = options.disableTqdm
        config.numWarmups = options.numWarmups
        config.readyCheckTimeoutSeconds = Double(options.readyCheckTimeoutSec)
        config.selectedPercentileMetrics = try options.parsedPercentileMetrics()
        config.selectedPercentiles = try options.parsedMetricPercentiles()
        config.goodput = try options.parsedGoodput()
        config.extraBody = options.extraBody
        config.seed = UInt64(bitPattern: Int64(options.seed))

        let header = ServeJSON.object([
            ("date", .string(Self.timestamp())),
            ("endpoint_type", .string(options.backend.rawValue)),
            ("backend", .string(options.backend.rawValue)),
            ("label", options.label.map(ServeJSON.string) ?? .null),
            ("model_id", .string(modelId)),
            ("tokenizer_id", .string(tokenizerId)),
        ])
        let rateJSON: ServeJSON = options.requestRate == .infinity ? .string("inf") : .double(options.requestRate)

        if options.concurrencySweep.isEmpty {
            let requests = try sample(options: options, tokenizer: tokenizer, count: options.numPrompts)
            var benchmark = ServeBenchmark(config: config, client: client)
            benchmark.log = log
            let run = try await benchmark.run(requests)
            let metrics = BenchmarkMetrics.calculate(
                outputs: run.outputs, duration: run.duration, tokenizer: tokenizer,
                percentiles: config.selectedPercentiles, goodput: config.goodput)
            let report = ServeReport(config: config, run: run, metrics: metrics)
            report.failureLines().forEach(log)
            report.lines().forEach(log)
            var json = header
            json.set("num_prompts", .int(options.numPrompts))
            json.set("request_rate", rateJSON)
            json.set("burstiness", .double(options.burstiness))
            json.set("max_concurrency", .optional(options.maxConcurrency))
            if case .object(let pairs) = report.result() { for (key, value) in pairs { json.set(key, value) } }
            if options.saveResult {
                let concurrency = options.maxConcurrency.map { "-concurrency\($0)" } ?? ""
                try save(
                    json, options: options, modelId: modelId,
                    defaultName: "\(ServeBenchmark.pythonFloat(options.requestRate))qps\(concurrency)")
            }
            if metrics.completed == 0 {
                throw ServeBenchError(
                    "all \(run.outputs.count) requests failed; first error: \(run.outputs.first?.error ?? "")")
            }
            return json
        }

        // Concurrency sweep: one run per level, same dataset recipe and seed, one table and one JSON.
        var rows: [ServeSweepTable.Row] = []
        var results: [ServeJSON] = []
        for level in options.concurrencySweep {
            let count = options.promptsPerConcurrency ?? options.promptsMultiplier.map { $0 * level } ?? options.numPrompts
            log("=== Concurrency \(level): \(count) prompts ===")
            var levelOptions = options
            levelOptions.requestIdPrefix += "c\(level)-"
            let requests = try sample(options: levelOptions, tokenizer: tokenizer, count: count)
            var levelConfig = config
            levelConfig.maxConcurrency = level
            var benchmark = ServeBenchmark(config: levelConfig, client: client)
            benchmark.log = log
            let run = try await benchmark.run(requests)
            let metrics = BenchmarkMetrics.calculate(
                outputs: run.outputs, duration: run.duration, tokenizer: tokenizer,
                percentiles: config.selectedPercentiles, goodput: config.goodput)
            let report = ServeReport(config: levelConfig, run: run, metrics: metrics)
            report.failureLines().forEach(log)
            var json = ServeJSON.object([
                ("num_prompts", .int(count)), ("request_rate", rateJSON), ("burstiness", .double(options.burstiness)),
                ("max_concurrency", .int(level)),
            ])
            if case .object(let pairs) = report.result() { for (key, value) in pairs { json.set(key, value) } }
            results.append(json)
            log(
                "Concurrency \(level): \(metrics.completed) completed, \(metrics.failed) failed in "
                    + String(
                        format: "%.2f s, %.2f req/s, %.2f output tok/s", run.duration, metrics.requestThroughput, metrics.outputThroughput))
            rows.append(ServeSweepTable.Row(concurrency: level, prompts: count, run: run, metrics: metrics))
        }
        ServeSweepTable(rows: rows, percentiles: config.selectedPercentiles).lines().forEach(log)
        var json = header
        json.set("request_rate", rateJSON)
        json.set("burstiness", .double(options.burstiness))
        json.set("concurrency_sweep", .array(options.concurrencySweep.map(ServeJSON.int)))
        json.set("results", .array(results))
        if options.saveResult {
            let levels = options.concurrencySweep.map(String.init).joined(separator: "_")
            try save(
                json, options: options, modelId: modelId,
                defaultName: "\(ServeBenchmark.pythonFloat(options.requestRate))qps-sweep\(levels)")
        }
        if rows.allSatisfy({ $0.metrics.completed == 0 }) {
            throw ServeBenchError("all requests failed at every concurrency level")
        }
        return json
    }

    func sample(options: ServeOptions, tokenizer: BenchTokenizer, count: Int) throws -> [SampleRequest] {
        let seed = UInt64(bitPattern: Int64(options.seed))
        do {
            switch options.datasetName {
            case .random:
                return try RandomDataset(
                    inputLen: options.randomInputLen, outputLen: options.randomOutputLen,
                    rangeRatio: options.randomRangeRatio, prefixLen: options.randomPrefixLen, seed: seed
                ).sample(tokenizer: tokenizer, numRequests: count, requestIdPrefix: options.requestIdPrefix)
            case .sharegpt:
                return try ShareGPTDataset(path: options.datasetPath ?? "", outputLen: options.sharegptOutputLen, seed: seed)
                    .sample(tokenizer: tokenizer, numRequests: count, requestIdPrefix: options.requestIdPrefix)
            case .prefixRepetition:
                return try PrefixRepetitionDataset(
                    prefixLen: options.prefixRepetitionPrefixLen, suffixLen: options.prefixRepetitionSuffixLen,
                    numPrefixes: options.prefixRepetitionNumPrefixes, outputLen: options.prefixRepetitionOutputLen,
                    seed: seed
                ).sample(tokenizer: tokenizer, numRequests: count, requestIdPrefix: options.requestIdPrefix)
            }
        } catch let error as DatasetError {
            throw ServeBenchError(error.description)
        }
    }

    /// Writes `json` to `--result-dir`/`--result-filename` (default `{label}-{rate}qps...-{model}-{date}.json`).
    func save(_ json: ServeJSON, options: ServeOptions, modelId: String, defaultName: String) throws {
        let baseModel = modelId.split(separator: "/").last.map(String.init) ?? modelId
        let label = options.label ?? options.backend.rawValue
        var name = options.resultFilename ?? "\(label)-\(defaultName)-\(baseModel)-\(Self.timestamp()).json"
        if let dir = options.resultDir {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw ServeBenchError("--result-dir \(dir): cannot create it (\(error.localizedDescription))")
            }
            name = (dir as NSString).appendingPathComponent(name)
        }
        guard FileManager.default.createFile(atPath: name, contents: Data(json.serialized().utf8)) else {
            throw ServeBenchError("cannot write the result file \(name)")
        }
        log("Results saved to \(name)")
    }

    /// A short reason for a failed connection ("connection refused", "connect timeout", ...).
    static func connectionProblem(_ error: Error) -> String {
        let text = String(describing: error)
        for (needle, reason) in [
            ("Connection refused", "connection refused"), ("connectTimeout", "connect timeout"),
            ("No route to host", "no route to host"), ("Name or service not known", "unknown host"),
            ("Network is unreachable", "network is unreachable"),
        ] where text.contains(needle) {
            return reason
        }
        return text.replacingOccurrences(of: "\n", with: " ")
    }

    static func timestamp() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return formatter.string(from: Date())
    }

    /// A folder with `tokenizer.json`, a `.gguf` file, or a folder holding one (its `tokenizer.*` metadata).
    static func isTokenizerFolder(_ path: String) -> Bool {
        let fm = FileManager.default
        if fm.fileExists(atPath: (path as NSString).appendingPathComponent("tokenizer.json")) { return true }
        if path.hasSuffix(".gguf") { return fm.fileExists(atPath: path) }
        return ((try? fm.contentsOfDirectory(atPath: path)) ?? []).contains { $0.hasSuffix(".gguf") }
    }

    struct ServedModel {
        var id: String
        var root: String?
    }

    /// GET `/v1/models` once, without the pool's connection retries, so a server that is down fails at once.
    static func probe(baseURL: String, apiKey: String?) async throws -> [ServedModel] {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(5))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let models = try await fetchModels(baseURL: baseURL, apiKey: apiKey, client: client)
            try await client.shutdown()
            return models
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// GET `/v1/models`. A connection failure is the one-line "server unreachable" error; a server that answers
    /// but has no such route gives an empty list.
    static func fetchModels(baseURL: String, apiKey: String?, client: HTTPClient) async throws -> [ServedModel] {
        let url = baseURL + "/v1/models"
        let response: HTTPClientResponse
        var body = ByteBuffer()
        do {
            var request = HTTPClientRequest(url: url)
            if let key = apiKey {
                request.headers.add(name: "Authorization", value: "Bearer \(key)")
            }
            response = try await client.execute(request, timeout: .seconds(30))
            body = try await response.body.collect(upTo: 16 << 20)
        } catch {
            throw ServeBenchError("cannot reach the server at \(baseURL): \(Self.connectionProblem(error))")
        }
        guard response.status == .ok,
            let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
            let data = object["data"] as? [[String: Any]]
        else { return [] }
        return data.compactMap { entry in
            (entry["id"] as? String).map { ServedModel(id: $0, root: entry["root"] as? String) }
        }
    }
}
