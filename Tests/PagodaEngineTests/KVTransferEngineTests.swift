import Foundation
import PagodaDistributed
import PagodaTestSupport
import XCTest

@testable import PagodaEngine

#if canImport(Glibc)
import Glibc
#endif

/// Prefill/decode disaggregation inside one process: a producer engine and a consumer engine with the
/// TCP connector over loopback (real sockets, the repository's tiny-qwen3), and the shared-storage
/// connector across two engines. Every answer must equal a single engine's, the KV must really come over
/// the wire (or from the files), failures must fall back to recompute, and no block may stay held.
final class KVTransferEngineTests: XCTestCase {
    private let prompt: [Int] = (0..<70).map { 100 + ($0 * 37) % 900 }  // 4 full blocks of 16 + 6 tokens
    private let maxTokens = 8

    /// The deployment's secret, shared by the producer and consumer engines of a test.
    private let secret = PeerSecret.random()

    private func engine(_ kv: KVTransferConfig?, secret: PeerSecret? = nil) throws -> EngineCore {
        var config = EngineConfig(
            model: ModelLoadConfig(path: ConformanceData.repoModelDirectory, dtype: .float32, maxModelLen: 256, threads: 1),
            cache: CacheConfig(blockSize: 16, enablePrefixCaching: true, numBlocksOverride: 64),
            scheduler: SchedulerConfig(maxNumSeqs: 8, maxNumBatchedTokens: 512), seed: 0, kvTransfer: kv)
        config.internalSecret = secret ?? self.secret
        return try EngineCore(config: config)
    }

    private func tcp(_ role: KVTransferConfig.Role, timeout: Double = 10) -> KVTransferConfig {
        var c = KVTransferConfig(connector: .tcp, role: role, port: 0)
        c.transferTimeoutSeconds = timeout
        c.connectTimeoutSeconds = 2
        return c
    }

    private func req(_ id: String, maxTokens: Int, params: KVTransferParams? = nil) -> EngineRequest {
        var s = SamplingParams.greedy
        s.maxTokens = maxTokens
        s.ignoreEOS = true
        return EngineRequest(
            requestId: id, promptTokenIds: prompt, sampling: s, eosTokenIds: [], arrivalTime: 0,
            kvTransferParams: params)
    }

    /// Steps until `core` has nothing left (requests or transfers), at most `seconds`; returns every output.
    @discardableResult
    private func drain(_ core: EngineCore, seconds: Double = 30) throws -> [EngineOutput] {
        var outputs: [EngineOutput] = []
        let deadline = Date() + seconds
        while core.hasUnfinishedRequests {
            outputs += try core.step()
            if Date() > deadline { XCTFail("engine still busy after \(seconds) s"); break }
        }
        return outputs
    }

    private func tokens(_ outputs: [EngineOutput], _ id: String) -> [Int] {
        outputs.filter { $0.requestId == id }.flatMap(\.newTokenIds)
    }

    /// The prefill leg on `producer`: one token, the blocks kept, the params to read them.
    private func prefill(_ producer: EngineCore, id: String = "p") throws -> KVTransferParams {
        try producer.addRequest(req(id, maxTokens: 1, params: KVTransferParams(doRemoteDecode: true)))
        var params: KVTransferParams?
        let deadline = Date() + 30
        while params == nil && Date() < deadline {
            for o in try producer.step() where o.finishReason != nil { params = o.kvTransferParams }
        }
        let p = try XCTUnwrap(params, "the producer's last output carries kv_transfer_params")
        XCTAssertEqual(p.doRemotePrefill, true)
        XCTAssertEqual(p.remoteBlockIds?.count, 5)
        XCTAssertEqual(p.remoteNumTokens, prompt.count)
        XCTAssertGreaterThan(p.remotePort ?? 0, 0)
        XCTAssertFalse(producer.kvCacheIsWhole, "the producer holds the blocks for the reader")
        _ = try producer.step()  // hands the hold to the KV server
        XCTAssertEqual(producer.stats.kvTransfer.blocksHeldForRemote, 5)
        return p
    }

    private func single() throws -> [Int] {
        let core = try engine(nil)
        defer { core.shutdown() }
        try core.addRequest(req("s", maxTokens: maxTokens))
        return tokens(try drain(core), "s")
    }

    func testDecodeEngineLoadsTheProducersKVAndAnswersLikeOneEngine() throws {
        let expected = try single()
        XCTAssertEqual(expected.count, maxTokens)
        let producer = try engine(tcp(.producer)), consumer = try engine(tcp(.consumer))
        defer { producer.shutdown(); consumer.shutdown() }
        let params = try prefill(producer)

        try consumer.addRequest(req("d", maxTokens: maxTokens, params: params))
        let out = try drain(consumer)
        XCTAssertEqual(tokens(out, "d"), expected)
        // All prompt tokens but the last came over the wire.
        XCTAssertEqual(out.first { $0.requestId == "d" }?.numCachedTokens, prompt.count - 1)
        let s = consumer.stats.kvTransfer
        XCTAssertEqual(s.transfers, 1)
        XCTAssertEqual(s.recomputes, 0)
        XCTAssertGreaterThan(s.bytes, 0)
        try drain(producer)
        XCTAssertEqual(producer.stats.kvTransfer.sends, 1)
        XCTAssertEqual(producer.stats.kvTransfer.sentBytes, s.bytes)
        XCTAssertTrue(producer.kvCacheIsWhole, "the producer freed the blocks once read")
        XCTAssertTrue(consumer.kvCacheIsWhole)
    }

    func testUnreachableProducerFallsBackToRecompute() throws {
        let expected = try single()
        let consumer = try engine(tcp(.consumer))
        defer { consumer.shutdown() }
        // A port nobody listens on: bind one, then close it.
        let (fd, port) = try KVTransferSocket.listen(host: "127.0.0.1", port: 0)
        close(fd)
        let params = KVTransferParams(
            doRemotePrefill: true, remoteHost: "127.0.0.1", remotePort: port, remoteBlockIds: [0, 1, 2, 3, 4],
            remoteRequestId: "gone", remoteNumTokens: prompt.count)
        try consumer.addRequest(req("d", maxTokens: maxTokens, params: params))
        XCTAssertEqual(tokens(try drain(consumer), "d"), expected)
        XCTAssertEqual(consumer.stats.kvTransfer.recomputes, 1)
        XCTAssertEqual(consumer.stats.kvTransfer.transfers, 0)
        XCTAssertTrue(consumer.kvCacheIsWhole)
    }

    func testBlocksAlreadyReadAreRefusedAndTheSecondReaderRecomputes() throws {
        let expected = try single()
        let producer = try engine(tcp(.producer)), consumer = try engine(tcp(.consumer))
        defer { producer.shutdown(); consumer.shutdown() }
        let params = try prefill(producer)
        try consumer.addRequest(req("d1", maxTokens: maxTokens, params: params))
        XCTAssertEqual(tokens(try drain(consumer), "d1"), expected)
        try drain(producer)
        try consumer.addRequest(req("d2", maxTokens: maxTokens, params: params))
        XCTAssertEqual(tokens(try drain(consumer), "d2"), expected, "a refused read never gives garbage")
        XCTAssertEqual(consumer.stats.kvTransfer.transfers, 1)
        XCTAssertEqual(consumer.stats.kvTransfer.recomputes, 1)
        XCTAssertTrue(producer.kvCacheIsWhole)
        XCTAssertTrue(consumer.kvCacheIsWhole)
    }

    /// A reader without the secret (a raw socket speaking the read protocol) and a consumer with another
    /// secret are refused; the blocks stay held for the real reader, which then reads them.
    func testUnauthenticatedReadersAreRefusedAndTheRealReaderStillReads() throws {
        let expected = try single()
        let producer = try engine(tcp(.producer)), consumer = try engine(tcp(.consumer))
        defer { producer.shutdown(); consumer.shutdown() }
        let params = try prefill(producer)
        let port = try XCTUnwrap(params.remotePort)

        // A raw client that sends a read request straight away: no bytes of KV come back, the connection closes.
        let fd = try KVTransferSocket.connect(host: "127.0.0.1", port: port, deadline: Date() + 2)
        defer { close(fd) }
        let read = KVBlockReadRequest(
            requestId: try XCTUnwrap(params.remoteRequestId), blockIds: try XCTUnwrap(params.remoteBlockIds), numLayers: 1,
            blockSize: 1, headDim: 1, headStart: 0, headCount: 1)
        try KVTransferSocket.sendMessage(fd, read, deadline: Date() + 2)
        XCTAssertThrowsError(try KVTransferSocket.receiveMessage(fd, KVBlockReadReply.self, deadline: Date() + 10)) { error in
            // Closed without an answer (a reset when the request it sent was left unread).
            XCTAssertTrue("\(error)".contains("closed") || "\(error)".contains("reset"), "\(error)")
        }

        // A consumer with another deployment's secret: refused, it recomputes.
        let stranger = try engine(tcp(.consumer), secret: .random())
        defer { stranger.shutdown() }
        try stranger.addRequest(req("x", maxTokens: maxTokens, params: params))
        XCTAssertEqual(tokens(try drain(stranger), "x"), expected)
        XCTAssertEqual(stranger.stats.kvTransfer.recomputes, 1)
        XCTAssertEqual(stranger.stats.kvTransfer.transfers, 0)

        try consumer.addRequest(req("d", maxTokens: maxTokens, params: params))
        XCTAssertEqual(tokens(try drain(consumer), "d"), expected)
        XCTAssertEqual(consumer.stats.kvTransfer.transfers, 1)
        try drain(producer)
        XCTAssertTrue(producer.kvCacheIsWhole)
        XCTAssertTrue(stranger.kvCacheIsWhole)
    }

    func testAHoldNobodyReadsIsFreedAfterTheTransferTimeout() throws {
        let producer = try engine(tcp(.producer, timeout: 0.3))
        defer { producer.shutdown() }
        _ = try prefill(producer)
        try drain(producer, seconds: 10)
        XCTAssertEqual(producer.stats.kvTransfer.sendTimeouts, 1)
        XCTAssertTrue(producer.kvCacheIsWhole)
    }

    func testAStalledProducerTimesOutAndAnAbortWhileLoadingFreesTheBlocks() throws {
        let expected = try single()
        // A producer that accepts and then says nothing.
        let (listener, port) = try KVTransferSocket.listen(host: "127.0.0.1", port: 0)
        defer { close(listener) }
        let consumer = try engine(tcp(.consumer, timeout: 0.5))
        defer { consumer.shutdown() }
        let params = KVTransferParams(
            doRemotePrefill: true, remoteHost: "127.0.0.1", remotePort: port, remoteBlockIds: [0, 1, 2, 3, 4],
            remoteRequestId: "stalled", remoteNumTokens: prompt.count)
        try consumer.addRequest(req("slow", maxTokens: maxTokens, params: params))
        XCTAssertEqual(tokens(try drain(consumer), "slow"), expected)
        XCTAssertEqual(consumer.stats.kvTransfer.recomputes, 1)

        try consumer.addRequest(req("aborted", maxTokens: maxTokens, params: params))
        _ = try consumer.step()
        XCTAssertEqual(consumer.stats.numWaiting, 1, "waiting for its KV")
        consumer.abortRequests(["aborted"])
        try drain(consumer)
        XCTAssertTrue(consumer.kvCacheIsWhole, "blocks of a request aborted mid-load are freed when the load ends")
    }

    func testSharedStorageServesASecondEngineWithoutRecomputing() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pagoda-kv-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let kv = KVTransferConfig(connector: .sharedStorage, role: .both, sharedStoragePath: dir)
        let expected = try single()
        let first = try engine(kv)
        try first.addRequest(req("a", maxTokens: maxTokens))
        XCTAssertEqual(tokens(try drain(first), "a"), expected)
        XCTAssertEqual(first.stats.kvTransfer.savedBlocks, 4, "the 4 full prompt blocks are stored")
        first.shutdown()

        let second = try engine(kv)
        defer { second.shutdown() }
        try second.addRequest(req("b", maxTokens: maxTokens))
        let out = try drain(second)
        XCTAssertEqual(tokens(out, "b"), expected)
        XCTAssertEqual(out.first?.numCachedTokens, 64, "4 blocks came from the files")
        XCTAssertEqual(second.stats.kvTransfer.externalPrefixCacheHits, 64)
        XCTAssertEqual(second.stats.kvTransfer.transfers, 1)
        XCTAssertTrue(second.kvCacheIsWhole)
    }
}
