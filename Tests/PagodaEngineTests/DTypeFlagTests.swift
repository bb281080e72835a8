import PagodaKernels
import PagodaModel
import PagodaTestSupport
import XCTest
@testable import PagodaEngine

/// `--dtype` reaches the model: bfloat16 selects bf16-activation GEMMs, every other value float32.
final class DTypeFlagTests: XCTestCase {
    func testDTypeSelectsTheGemmPrecisionOfTheLoadedModel() throws {
        for (dtype, expected) in [(ModelDType.auto, GemmPrecision.float32), (.float32, .float32), (.float16, .float32),
                                  (.bfloat16, .bfloat16)] {
            let config = ModelLoadConfig(path: ConformanceData.repoModelDirectory, dtype: dtype, threads: 1)
            let model = try XCTUnwrap(try UniProcExecutor.loadCausalLM(config) as? CausalLM)
            XCTAssertEqual(model.precision, expected, "--dtype \(dtype.rawValue)")
        }
    }
}
