import Foundation

/// Rotary position embedding, GPT-NeoX style as HF Llama/Qwen apply it (`rotate_half`): dimension i
/// pairs with i + d/2.
///
/// Frequencies follow transformers' `_compute_default_rope_parameters` (and `_compute_llama3_parameters`
/// for Llama 3 scaling); angles are float32 products position × invFreq and cos/sin are taken of that
/// float32 angle, as HF does.
public struct RotaryEmbedding: Sendable {
    /// How the inverse frequencies are rescaled for long context.
    public enum Scaling: Sendable, Equatable {
        case none
        /// Divide every frequency by `factor` (rope_type "linear").
        case linear(factor: Double)
        /// Llama 3: low frequencies divided by `factor`, high kept, a smooth blend between.
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Double)
    }

    public let headDim: Int
    /// [headDim / 2]
    public let invFreq: [Float]

    /// `frequencyFactors` ([headDim / 2], positive): each frequency is divided by its factor after `scaling`, as
    /// ggml applies a GGUF file's `rope_freqs.weight` (how llama.cpp's converter stores Llama 3 scaling).
    public init(headDim: Int, theta: Double, scaling: Scaling = .none, frequencyFactors: [Float]? = nil) {
        self.headDim = headDim
        let half = headDim / 2
        var inv = [Float](repeating: 0, count: half)
        for i in 0..<half {
            let exponent = Float(2 * i) / Float(headDim)
            // float32 like torch: base ** (arange/dim) then 1.0 / that.
            inv[i] = 1 / Float(pow(Double(Float(theta)), Double(exponent)))
        }
        switch scaling {
        case .none: break
        case .linear(let factor):
            for i in 0..<half { inv[i] = Float(Double(inv[i]) / factor) }
        case .llama3(let factor, let low, let high, let original):
            let lowWavelen = original / low
            let highWavelen = original / high
            for i in 0..<half {
                let f = Double(inv[i])
                let wavelen = 2 * Double.pi / f
                var scaled = wavelen > lowWavelen ? f / factor : f
                if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
                    let smooth = (original / wavelen - low) / (high - low)
                    scaled = (1 - smooth) * scaled / factor + smooth * scaled
                }
                inv[i] = Float(scaled)
            }
        }
        if let factors = frequencyFactors {
            precondition(factors.count == half, "\(factors.count) RoPE frequency factors for \(half) frequencies")
            for i in 0..<half { inv[i] /= factors[i] }
        }
        invFreq = inv
    }

    /// Fills cos/sin tables [count, headDim/2] for the given positions.
    public func tables(
        positions: UnsafePointer<Int32>, count: Int, cos cosOut: UnsafeMutablePointer<Float>,
        sin sinOut: UnsafeMutablePointer<Float>
    ) {
        let half = headDim / 2
        invFreq.withUnsafeBufferPointer { inv in
            for t in 0..<count {
                let p = Float(positions[t])
                for i in 0..<half {
                    let angle = p * inv[i]
                    cosOut[t * half + i] = Float(Foundation.cos(Double(angle)))
                    sinOut[t * half + i] = Float(Foundation.sin(Double(angle)))
                }
            }
        }
    }

    /// Rotates `heads` heads of every token in place. x: [count, ld] with the heads at x[t*ld + h*headDim].
    public func apply(
        _ x: UnsafeMutablePointer<Float>, count: Int, ld: Int, heads: Int, cos: UnsafePointer<Float>,
        sin: UnsafePointer<Float>
    ) {
        let half = headDim / 2
        for t in 0..<count {
            let c = cos + t * half, s = sin + t * half
            for h in 0..<heads {
                let v = x + t * ld + h * headDim
                for i in 0..<half {
                    let x1 = v[i], x2 = v[i + half]
                    v[i] = x1 * c[i] - x2 * s[i]
                    v[i + half] = x2 * c[i] + x1 * s[i]
                }
            }
        }
    }
}
