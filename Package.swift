// swift-tools-version:6.0
// Pagoda: an LLM serving system in Swift. Modules and layers follow docs/DESIGN (shared/DESIGN.md §2);
// dependencies point downward only.
import Foundation
import PackageDescription

// The CPU the numeric code is compiled for. AVX-512 (znver4: AVX-512 with bf16/VNNI) by default, runs on the Zen 5 machines
// Pagoda is developed and benchmarked on; set PAGODA_TARGET_CPU=haswell (AVX2) or `native` to build
// for another server. A binary built for AVX-512 does not start on a CPU without it.
let targetCPU = ProcessInfo.processInfo.environment["PAGODA_TARGET_CPU"] ?? "znver4"

// Numeric targets are optimized even in debug (test) builds: unoptimized Swift runs kernels ~100x slower.
let numericSwift: [SwiftSetting] = [
    .unsafeFlags(["-O", "-target-cpu", targetCPU])
]
let numericC: [CSetting] = [
    .unsafeFlags(["-O3", "-march=\(targetCPU)"])
]

let package = Package(
    name: "Pagoda",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pagoda", targets: ["pagoda"]),
        .executable(name: "pagoda-model-bench", targets: ["pagoda-model-bench"]),
        .library(name: "PagodaEngine", targets: ["PagodaEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.25.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.10.0"),
    ],
    targets: [
        // Layer 0
        // C shims: operating-system calls (no numeric flags) apart from the kernels Swift cannot spell.
        .target(name: "CPagodaSystem"),
        .target(name: "CPagodaKernels", cSettings: numericC),
        .target(
            name: "PagodaKernels", dependencies: ["CPagodaSystem", "CPagodaKernels"],
            swiftSettings: numericSwift),
        // Optimized even in debug: every request is tokenized, and loading a 128k-vocab tokenizer.json at -Onone takes seconds.
        .target(name: "PagodaTokenizer", swiftSettings: [.unsafeFlags(["-O"])]),
        .target(name: "PagodaOpenAI"),
        // Constrained decoding: JSON schema / regex / choice / GBNF → byte grammar, token masks. Optimized even in
        // debug: the mask walk runs over the vocabulary trie.
        .target(name: "PagodaStructured", swiftSettings: [.unsafeFlags(["-O"])]),
        // Layer 1
        .target(
            name: "PagodaDistributed",
            // Crypto: HMAC-SHA256 of the internal connections' handshake (`PeerAuthentication`).
            dependencies: ["CPagodaSystem", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: numericSwift),
        // Layer 2
        .target(
            name: "PagodaModel", dependencies: ["PagodaKernels", "PagodaDistributed"],
            swiftSettings: numericSwift),
        // Layer 3
        .target(
            name: "PagodaEngine",
            dependencies: [
                "CPagodaSystem", "PagodaKernels", "PagodaDistributed", "PagodaModel", "PagodaTokenizer", "PagodaStructured",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Collections", package: "swift-collections"),
            ],
            // The sampler and the batch builder loop over the vocabulary / tokens every step.
            swiftSettings: numericSwift),
        // Layer 4
        .target(
            name: "PagodaServer",
            dependencies: [
                "PagodaDistributed", "PagodaEngine", "PagodaOpenAI", "PagodaTokenizer", "PagodaStructured",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(
            name: "PagodaRouter",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Every parser of untrusted bytes as a fuzz target (scripts/fuzz.sh; corpora replayed by PagodaFuzzingTests).
        .target(
            name: "PagodaFuzzing",
            dependencies: ["PagodaDistributed", "PagodaEngine", "PagodaModel", "PagodaOpenAI", "PagodaRouter", "PagodaTokenizer"]),
        .executableTarget(name: "pagoda-fuzz", dependencies: ["PagodaFuzzing"]),
        .target(
            name: "PagodaBench",
            dependencies: [
                "PagodaTokenizer", "PagodaEngine", "PagodaStructured",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // Layer 5
        .executableTarget(
            name: "pagoda",
            dependencies: [
                "CPagodaSystem", "PagodaDistributed", "PagodaModel", "PagodaEngine", "PagodaServer", "PagodaRouter",
                "PagodaBench", "PagodaTokenizer", "PagodaStructured",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Test helpers: model harnesses, and a scripted engine behind the RPC for the RPC and server tests.
        // Test helpers live beside the tests (they read the test environment, e.g. PAGODA_CONFORMANCE).
        .target(
            name: "PagodaTestSupport", dependencies: ["PagodaKernels", "PagodaDistributed", "PagodaModel"],
            path: "Tests/PagodaTestSupport"),
        .target(name: "PagodaEngineTestSupport", dependencies: ["PagodaEngine"], path: "Tests/PagodaEngineTestSupport"),
        // Raw model forward benchmark (no engine): `swift build -c release --product pagoda-model-bench`.
        .executableTarget(
            name: "pagoda-model-bench", dependencies: ["PagodaModel", "PagodaKernels"], path: "Benchmarks/ModelBench",
            swiftSettings: numericSwift),
        // Tests mirror the modules one to one. scripts/check-imports.py checks that every target declares exactly
        // the modules it imports.
        .testTarget(name: "PagodaKernelsTests", dependencies: ["CPagodaKernels", "PagodaKernels"], swiftSettings: numericSwift),
        .testTarget(name: "PagodaTokenizerTests", dependencies: ["PagodaTokenizer"]),
        .testTarget(name: "PagodaDistributedTests", dependencies: ["PagodaDistributed"]),
        .testTarget(name: "PagodaOpenAITests", dependencies: ["PagodaOpenAI"]),
        .testTarget(name: "PagodaStructuredTests", dependencies: ["PagodaStructured", "PagodaTokenizer"]),
        .testTarget(name: "PagodaModelTests", dependencies: ["PagodaKernels", "PagodaDistributed", "PagodaModel", "PagodaTestSupport"]),
        .testTarget(
            name: "PagodaEngineTests",
            dependencies: [
                "PagodaKernels", "PagodaModel", "PagodaEngine", "PagodaBench", "PagodaTestSupport", "PagodaTokenizer",
                "PagodaEngineTestSupport", "PagodaDistributed",
            ]),
        .testTarget(
            name: "PagodaServerTests",
            dependencies: [
                "PagodaDistributed", "PagodaEngine", "PagodaOpenAI", "PagodaServer", "PagodaEngineTestSupport", "PagodaTokenizer",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "PagodaRouterTests", dependencies: ["PagodaRouter"]),
        .testTarget(name: "PagodaBenchTests", dependencies: ["PagodaBench"]),
        .testTarget(name: "PagodaFuzzingTests", dependencies: ["PagodaFuzzing"]),
    ],
    swiftLanguageModes: [.v5]
)
