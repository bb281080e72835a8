// Global functions a chat template can call: jinja2's (range, dict, namespace
// joiner, and the ones transformers adds (raise_exception, strftime_now).

import Foundation

enum JinjaGlobals {
    /// The globals of transformers' chat-template environment.
    static func make() -> [String: JinjaValue] {
        var g: [String: JinjaValue] = [:]
        g["raise_exception"] = .callable(
            JinjaCallable("raise_exception") { args, _ in
                throw ChatTemplateError(.raised, args.value(0, "message")?.pythonStr ?? "")
            })
        g["strftime_now"] = .callable(
            JinjaCallable("strftime_now") { args, _ in
                .string(strftimeNow(args.value(0, "format")?.pythonStr ?? ""))
            })
        g["namespace"] = .callable(
            JinjaCallable("namespace") { args, _ in
                var attributes = JinjaDict()
                for p in args.positional {
                    guard case .dict(let d) = p else {
                        throw ChatTemplateError(.runtime, "namespace() positional argument must be a mapping, not \(p.typeName)")
                    }
                    for (k, v) in d.items { attributes[k] = v }
                }
                for (k, v) in args.keyword { attributes[k] = v }
                return .namespace(JinjaNamespace(attributes))
            })
        g["dict"] = .callable(
            JinjaCallable("dict") { args, interp in
                var d = JinjaDict()
                if let first = args.positional.first {
                    if case .dict(let src) = first {
                        d = src
                    } else {
                        for pair in try interp.iterate(first) {
                            let kv = try interp.iterate(pair)
                            guard kv.count == 2 else { throw ChatTemplateError(.runtime, "dictionary update sequence element has length \(kv.count); 2 is required") }
                            d[kv[0].pythonStr] = kv[1]
                        }
                    }
                }
                for (k, v) in args.keyword { d[k] = v }
                return .dict(d)
            })
        g["range"] = .callable(
            JinjaCallable("range") { args, _ in
                let ints = try args.positional.map { v -> Int in
                    guard let i = v.integerValue else { throw ChatTemplateError(.runtime, "'\(v.typeName)' object cannot be interpreted as an integer") }
                    return i
                }
                var (start, stop, step) = (0, 0, 1)
                switch ints.count {
                case 1: stop = ints[0]
                case 2: (start, stop) = (ints[0], ints[1])
                case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
                default: throw ChatTemplateError(.runtime, "range expected 1 to 3 arguments, got \(ints.count)")
                }
                guard step != 0 else { throw ChatTemplateError(.runtime, "range() arg 3 must not be zero") }
                // jinja2's sandbox caps ranges at MAX_RANGE = 100000 items.
                let count = step > 0 ? max(0, (stop - start + step - 1) / step) : max(0, (start - stop - step - 1) / -step)
                guard count <= 100_000 else { throw ChatTemplateError(.runtime, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
                return .list((0..<count).map { .int(start + $0 * step) })
            })
        g["joiner"] = .callable(
            JinjaCallable("joiner") { args, _ in
                // joiner(sep): a callable returning "" the first time and `sep` afterwards.
                let sep = args.value(0, "sep")?.pythonStr ?? ", "
                final class Used { var value = false }
                let used = Used()
                return .callable(
                    JinjaCallable("joiner") { _, _ in
                        if used.value { return .string(sep) }
                        used.value = true
                        return .string("")
                    })
            })
        return g
    }

    /// Python's `datetime.now().strftime(format)` in local time.
    static func strftimeNow(_ format: String) -> String {
        var t = time(nil)
        var tmValue = tm()
        localtime_r(&t, &tmValue)
        var buffer = [Int8](repeating: 0, count: 512)
        let n = strftime(&buffer, buffer.count, format, &tmValue)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
