import ArgumentParser
import Foundation
import PagodaBench

/// `pagoda bench serve`: the serving benchmark against an OpenAI-compatible server, with vLLM's `bench serve`
/// flags, printed block and result JSON, plus `--concurrency-sweep`.
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serving benchmark against an OpenAI-compatible server (vLLM's bench serve).")

    // Server and API
    @Option(help: "openai (/v1/completions) or openai-chat (/v1/chat/completions).")
    var backend: String = "openai"
    @Option(help: "Label (prefix) of the result file name; defaults to --backend.")
    var label: String?
    @Option(name: .customLong("base-url"), help: "Server base URL, instead of --host/--port.")
    var baseURL: String?
    @Option(help: "Server host.") var host: String = "127.0.0.1"
    @Option(help: "Server port.") var port: Int = 8000
    @Option(help: "API endpoint (default: /v1/completions, or /v1/chat/completions for openai-chat).")
    var endpoint: String?
    @Option(help: "Model id; a local model folder also gives the tokenizer. Default: the server's first model.")
    var model: String?
    @Option(name: .customLong("served-model-name"), help: "Model name sent in requests, when it differs from --model.")
    var servedModelName: String?
    @Option(help: "Tokenizer folder (tokenizer.json); defaults to --model when that is a folder.")
    var tokenizer: String?

    // Dataset
    @Option(name: .customLong("dataset-name"), help: "random, sharegpt or prefix_repetition.")
    var datasetName: String = "random"
    @Option(name: .customLong("dataset-path"), help: "ShareGPT JSON file (for --dataset-name sharegpt).")
    var datasetPath: String?
    @Option(name: .customLong("num-prompts"), help: "Number of prompts to send.") var numPrompts: Int = 1000
    @Option(help: "Random seed (dataset and arrival times).") var seed: Int = 0
    @Option(name: .customLong("input-len"), help: "Same as --random-input-len.") var inputLen: Int?
    @Option(name: .customLong("output-len"), help: "Output length for every dataset.") var outputLen: Int?
    @Option(name: .customLong("random-input-len"), help: "Input tokens per request (random dataset).")
    var randomInputLen: Int = 1024
    @Option(name: .customLong("random-output-len"), help: "Output tokens per request (random dataset).")
    var randomOutputLen: Int = 128
    @Option(name: .customLong("random-range-ratio"), help: "Lengths drawn from [len*(1-r), len*(1+r)], r in [0, 1).")
    var randomRangeRatio: Double = 0
    @Option(name: .customLong("random-prefix-len"), help: "Shared random prefix tokens before each random prompt.")
    var randomPrefixLen: Int = 0
    @Option(name: .customLong("sharegpt-output-len"), help: "Output length for every ShareGPT request.")
    var sharegptOutputLen: Int?
    @Option(name: .customLong("prefix-repetition-prefix-len"), help: "Prefix tokens (prefix_repetition dataset).")
    var prefixRepetitionPrefixLen: Int = 256
    @Option(name: .customLong("prefix-repetition-suffix-len"), help: "Suffix tokens (prefix_repetition dataset).")
    var prefixRepetitionSuffixLen: Int = 256
    @Option(name: .customLong("prefix-repetition-num-prefixes"), help: "Distinct prefixes (prefix_repetition dataset).")
    var prefixRepetitionNumPrefixes: Int = 10
    @Option(name: .customLong("prefix-repetition-output-len"), help: "Output tokens (prefix_repetition dataset).")
    var prefixRepetitionOutputLen: Int = 128

    // Traffic
    @Option(name: .customLong("max-concurrency"), help: "Most requests in flight at once.") var maxConcurrency: Int?
    @Option(name: .customLong("request-rate"), help: "Requests per second (inf: all at once; else Poisson/gamma arrivals).")
    var requestRate: String = "inf"
    @Option(help: "Gamma shape of arrival gaps: 1 is Poisson, <1 burstier, >1 more even.") var burstiness: Double = 1
    @Option(name: .customLong("num-warmups"), help: "Warm-up requests before the run.") var numWarmups: Int = 0
    @Option(name: .customLong("ready-check-timeout-sec"), help: "Wait up to this long for a first successful request (0: skip).")
    var readyCheckTimeoutSec: Int = 0
    @Flag(name: .customLong("ignore-eos"), help: "Ask the server to ignore EOS (random datasets always do).")
    var ignoreEOS = false
    @Option(name: .customLong("request-id-prefix"), help: "Prefix of the x-request-id of each request (default bench-<random>-).")
    var requestIdPrefix: String?

    // Sampling
    @Option(help: "Sampling temperature sent with each request.") var temperature: Double?
    @Option(name: .customLong("top-p")) var topP: Double?
    @Option(name: .customLong("top-k")) var topK: Int?
    @Option(name: .customLong("min-p")) var minP: Double?
    @Option(name: .customLong("extra-body"), help: "JSON object of extra request body fields.") var extraBody: String?

    // Results
    @Option(name: .customLong("percentile-metrics"), help: "Comma list of ttft,tpot,itl,e2el (default ttft,tpot,itl).")
    var percentileMetrics: String?
    @Option(name: .customLong("metric-percentiles"), help: "Comma list of percentiles (default 99).")
    var metricPercentiles: String = "99"
    @Option(name: .customLong("goodput"), parsing: .upToNextOption, help: "SLOs as KEY:MS pairs (ttft, tpot, e2el).")
    var goodput: [String] = []
    @Flag(name: .customLong("save-result"), help: "Save the result JSON.") var saveResult = false
    @Flag(name: .customLong("save-detailed"), help: "Accepted for vLLM compatibility: per-request lists are always saved.")
    var saveDetailed = false
    @Option(name: .customLong("result-dir"), help: "Directory for the result JSON.") var resultDir: String?
    @Option(name: .customLong("result-filename"), help: "File name for the result JSON.") var resultFilename: String?
    @Flag(name: .customLong("disable-tqdm"), help: "No progress bar.") var disableTqdm = false

    // Beyond vLLM
    @Option(name: .customLong("concurrency-sweep"), help: "Comma list of concurrency levels, run one after another (e.g. 1,8,16).")
    var concurrencySweep: String?
    @Option(name: .customLong("prompts-per-concurrency"), help: "Prompts per sweep level.") var promptsPerConcurrency: Int?
    @Option(name: .customLong("prompts-multiplier"), help: "Prompts per sweep level = level x this.") var promptsMultiplier: Int?

    func options() throws -> ServeOptions {
        var o = ServeOptions()
        o.apiKey = ProcessInfo.processInfo.environment["OPENAI_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        guard let backend = ServeBackend(rawValue: backend) else {
            throw ServeBenchError("--backend must be openai or openai-chat, got '\(backend)'")
        }
        o.backend = backend
        guard let dataset = DatasetName(flag: datasetName) else {
            throw ServeBenchError("--dataset-name must be random, sharegpt or prefix_repetition, got '\(datasetName)'")
        }
        o.datasetName = dataset
        guard let rate = requestRate == "inf" ? Double.infinity : Double(requestRate) else {
            throw ServeBenchError("--request-rate must be a number or inf, got '\(requestRate)'")
        }
        guard rate > 0 else { throw ServeBenchError("--request-rate must be positive or inf, got '\(requestRate)'") }
        guard burstiness > 0 && burstiness.isFinite else {
            throw ServeBenchError("--burstiness must be a positive number, got \(burstiness)")
        }
        o.requestRate = rate
        o.label = label
        o.baseURL = baseURL
        o.host = host
        o.port = port
        o.endpoint = endpoint
        o.model = model
        o.servedModelName = servedModelName
        o.tokenizer = tokenizer
        o.datasetPath = datasetPath
        o.numPrompts = numPrompts
        o.seed = seed
        o.randomInputLen = inputLen ?? randomInputLen
        o.randomOutputLen = outputLen ?? randomOutputLen
        o.randomRangeRatio = randomRangeRatio
        o.randomPrefixLen = randomPrefixLen
        o.sharegptOutputLen = outputLen ?? sharegptOutputLen
        o.prefixRepetitionPrefixLen = prefixRepetitionPrefixLen
        o.prefixRepetitionSuffixLen = prefixRepetitionSuffixLen
        o.prefixRepetitionNumPrefixes = prefixRepetitionNumPrefixes
        o.prefixRepetitionOutputLen = outputLen ?? prefixRepetitionOutputLen
        o.maxConcurrency = maxConcurrency
        o.burstiness = burstiness
        o.ignoreEOS = ignoreEOS
        o.percentileMetrics = percentileMetrics
        o.metricPercentiles = metricPercentiles
        o.goodput = goodput
        o.saveResult = saveResult
        o.resultDir = resultDir
        o.resultFilename = resultFilename
        o.disableTqdm = disableTqdm
        o.numWarmups = numWarmups
        o.readyCheckTimeoutSec = readyCheckTimeoutSec
        o.requestIdPrefix = requestIdPrefix ?? "bench-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))-"
        var body: [String: Any] = [:]
        if let temperature { body["temperature"] = temperature }
        if let topP { body["top_p"] = topP }
        if let topK { body["top_k"] = topK }
        if let minP { body["min_p"] = minP }
        if let extraBody {
            guard let object = try? JSONSerialization.jsonObject(with: Data(extraBody.utf8)) as? [String: Any] else {
                throw ServeBenchError("--extra-body must be a JSON object")
            }
            body.merge(object) { _, new in new }
        }
        o.extraBody = body
        if let concurrencySweep {
            let levels = concurrencySweep.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !levels.isEmpty, levels.allSatisfy({ $0 != nil }) else {
                throw ServeBenchError("--concurrency-sweep must be a comma list of integers, got '\(concurrencySweep)'")
            }
            o.concurrencySweep = levels.map { $0! }
        }
        o.promptsPerConcurrency = promptsPerConcurrency
        o.promptsMultiplier = promptsMultiplier
        return o
    }

    func run() async throws {
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            let main = ServeMain(options: try options(), loadTokenizer: BenchTokenizerLoader.load)
            try await main.run()
        } catch let error as ServeBenchError {
            let line = error.description.replacingOccurrences(of: "\n", with: " ")
            FileHandle.standardError.write(Data("error: \(line)\n".utf8))
            throw ExitCode.failure
        }
    }
}
