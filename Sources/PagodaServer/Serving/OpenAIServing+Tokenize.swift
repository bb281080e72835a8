import Foundation
import PagodaOpenAI

/// `/tokenize`, `/detokenize`, `/v1/models` and `/load` (vLLM's `OpenAIServingTokenization`,
/// `OpenAIServingModels` and the `/load` route).
extension OpenAIServing {
    public func tokenize(_ body: Data) throws -> Data {
        try checkEngineStarted()
        let decoded = try OpenAIJSON.decodeRequestFields(TokenizeRequest.self, from: body)
        let request = decoded.body
        try checkModel(request.model)
        try checkUndeclaredFields(decoded.undeclaredFields, known: false)
        let ids: [Int]
        if let messages = request.messages {
            guard request.prompt == nil else { throw OpenAIError.badRequest("give either prompt or messages, not both", param: "messages") }
            ids = try renderChatPrompt(
                messages: ToolMessages.forTemplate(messages), tools: request.tools,
                addGenerationPrompt: request.addGenerationPrompt ?? true,
                continueFinalMessage: request.continueFinalMessage ?? false,
                kwargs: request.chatTemplateKwargs ?? [:], template: request.chatTemplate,
                addSpecialTokens: request.addSpecialTokens ?? false)
        } else if let prompt = request.prompt {
            ids = tokenizer.encode(prompt, addSpecialTokens: request.addSpecialTokens ?? true)
        } else {
            throw OpenAIError.badRequest("missing required field 'prompt' (or 'messages')", param: "prompt")
        }
        let strs = (request.returnTokenStrs ?? false) ? ids.map { tokenizer.tokenText($0) } : nil
        return try OpenAIJSON.encode(TokenizeResponse(tokens: ids, maxModelLen: maxModelLen, tokenStrs: strs))
    }

    public func detokenize(_ body: Data) throws -> Data {
        let decoded = try OpenAIJSON.decodeRequestFields(DetokenizeRequest.self, from: body)
        let request = decoded.body
        try checkModel(request.model)
        try checkUndeclaredFields(decoded.undeclaredFields, known: false)
        try checkTokenIds(request.tokens, param: "tokens")
        return try OpenAIJSON.encode(DetokenizeResponse(prompt: tokenizer.decode(request.tokens, skipSpecialTokens: false)))
    }

    public func models() throws -> Data {
        try checkEngineStarted()
        let created = Self.now()
        let cards = config.servedModelNames.map {
            ModelCard(id: $0, created: created, root: config.modelPath, maxModelLen: maxModelLen)
        }
        return try OpenAIJSON.encode(ModelList(data: cards))
    }

    public func load() throws -> Data {
        let s = engine.stats
        var load = LoadResponse(
            serverLoad: engine.numOpenRequests, numRequestsRunning: s.numRunning, numRequestsWaiting: s.numWaiting,
            kvCacheUsagePerc: s.kvCacheUsage, dataParallelRank: config.dataParallelRank, dataParallelSize: config.dataParallelSize)
        let engines = engine.engines
        if engines.count > 1 {
            load.engines = engines.map {
                EngineLoad(
                    rank: $0.rank, up: $0.down == nil, pid: $0.pid, numBlocks: $0.numBlocks, numRequestsRunning: $0.stats.numRunning,
                    numRequestsWaiting: $0.stats.numWaiting, kvCacheUsagePerc: $0.stats.kvCacheUsage,
                    prefixCacheQueries: $0.stats.prefixCacheQueries, prefixCacheHits: $0.stats.prefixCacheHits)
            }
        }
        return try OpenAIJSON.encode(load)
    }

    public func version() throws -> Data {
        try OpenAIJSON.encode(["version": config.version])
    }
}
