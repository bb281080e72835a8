import PagodaKernels
import PagodaModel
import PagodaTestSupport
import XCTest
@testable import PagodaEngine

/// `--dtype` reaches the model: auto and bfloat16 select bf16-activation GEMMs, float32 and float16 float32.
final class DTypeFlagTests: XCTestCase {
    func testDTypeSelectsTheGemmPrecisionOfTheLoadedModel() throws {
        for (dtype, expected) in [(ModelDType.auto, GemmPrecision.bfloat16), (.float32, .float32), (.float16, .float32),
                                  (.bfloat16, .bfloat16)] {
            let config = ModelLoadConfig(path: ConformanceData.repoModelDirectory, dtype: dtype, threads: 1)
            let model = try XCTUnwrap(try UniProcExecutor.loadCausalLM(config) as? CausalLM)
            XCTAssertEqual(model.precision, expected, "--dtype \(dtype.rawValue)")
        }
    }
}
