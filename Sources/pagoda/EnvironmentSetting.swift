import Foundation
import PagodaEngine

/// Reads a setting from its flag or, when the flag is absent, from its environment variable — at the
/// command-line edge only, so that no module below reads the environment. An empty variable counts as
/// unset; errors name the flag or the variable the bad value came from.
enum EnvironmentSetting {
    /// A raw value and where it came from (`--flag` or `VARIABLE`).
    struct Value {
        var value: String
        var source: String
    }

    /// The flag's text, else the first non-empty variable of `variables`, else nil.
    static func value(flag: String?, flagName: String, variables: [String], in environment: [String: String]) -> Value? {
        if let flag { return Value(value: flag, source: flagName) }
        for v in variables {
            if let text = environment[v], !text.isEmpty { return Value(value: text, source: v) }
        }
        return nil
    }

    /// The flag's value, else the variable parsed as `T` (an error naming the variable when it does not parse).
    static func parsed<T: LosslessStringConvertible>(flag: T?, variable: String, in environment: [String: String]) throws -> T? {
        if let flag { return flag }
        guard let text = environment[variable], !text.isEmpty else { return nil }
        guard let v = T(text.trimmingCharacters(in: .whitespaces)) else {
            throw EngineConfigError.invalid(variable, "\"\(text)\" is not a valid \(T.self == Int.self ? "integer" : "number")")
        }
        return v
    }
}
