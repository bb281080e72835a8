// A value inside a chat-template render: what a Python object is to jinja2.

/// A value a Jinja template reads, computes or prints. It mirrors the Python objects jinja2 sees when
/// transformers renders a chat template (JSON values, plus tuples, namespaces, callables and Undefined).
///
/// Dicts keep insertion order everywhere (as Python dicts do): `tojson`, `items()` and printing depend on it.
public enum JinjaValue {
    /// jinja2's default `Undefined`: prints as "", is falsy, iterates as empty; most other uses raise.
    /// The payload is the message jinja2 would raise with (e.g. "'x' is undefined").
    case undefined(String)
    /// Python's None (JSON null). Named `null`, not `none`, so it never collides with `Optional.none`.
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([JinjaValue])
    /// A Python tuple: behaves like a list but prints with parentheses (what `dict.items()` yields).
    case tuple([JinjaValue])
    case dict(JinjaDict)
    /// `namespace(...)`: the one mutable object a template may assign attributes on (`set ns.x = ...`).
    case namespace(JinjaNamespace)
    /// A macro, a global function (`raise_exception`, `range`, ...) or a bound method (`"s".strip`).
    case callable(JinjaCallable)
}

/// An insertion-ordered dictionary with string keys (the shape of every JSON object and template dict).
/// - Invariant: `keys` holds each key of `storage` exactly once, in insertion order.
public struct JinjaDict {
    public private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    public init() {}

    public init(_ pairs: [(String, JinjaValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// Setting an existing key keeps its position (as Python does); setting nil removes it.
    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let v = newValue {
                if storage.updateValue(v, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// Key/value pairs in insertion order.
    public var items: [(key: String, value: JinjaValue)] { keys.map { ($0, storage[$0]!) } }
    public var values: [JinjaValue] { keys.map { storage[$0]! } }
}

/// The object `namespace(...)` returns: attributes set inside loops survive the loop's scope.
public final class JinjaNamespace {
    public var attributes: JinjaDict
    public init(_ attributes: JinjaDict = JinjaDict()) { self.attributes = attributes }
}

/// Arguments of a call from a template: positional values, then keyword values in written order.
public struct JinjaArguments {
    public var positional: [JinjaValue]
    public var keyword: [(String, JinjaValue)]

    public init(_ positional: [JinjaValue] = [], keyword: [(String, JinjaValue)] = []) {
        self.positional = positional
        self.keyword = keyword
    }

    /// The argument bound to parameter `name` at `position` (keyword wins), or nil when absent.
    public func value(_ position: Int, _ name: String) -> JinjaValue? {
        if let kw = keyword.first(where: { $0.0 == name }) { return kw.1 }
        return position < positional.count ? positional[position] : nil
    }
}

/// Something a template can call. `body` receives the arguments and the running interpreter
/// (macros render through it).
public final class JinjaCallable {
    public let name: String
    let body: (JinjaArguments, JinjaInterpreter) throws -> JinjaValue

    init(_ name: String, _ body: @escaping (JinjaArguments, JinjaInterpreter) throws -> JinjaValue) {
        self.name = name
        self.body = body
    }
}

// MARK: - Python semantics shared by the interpreter, filters and tests

extension JinjaValue {
    /// Python truthiness (`bool(x)`); Undefined is false.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .null: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .float(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .callable: return true
        }
    }

    public var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    public var isNone: Bool {
        if case .null = self { return true }
        return false
    }

    /// The Python type name used in error messages (`'int' object ...`).
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .null: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        }
    }

    /// Elements of a list or tuple.
    var sequenceElements: [JinjaValue]? {
        switch self {
        case .list(let a), .tuple(let a): return a
        default: return nil
        }
    }

    /// A number as Double (bool counts as int, as in Python), or nil.
    var numericValue: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .float(let d): return d
        default: return nil
        }
    }

    /// An int or bool as Int (Python treats bool as int), or nil.
    var integerValue: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }
}

extension JinjaValue: Equatable {
    /// Python `==`: numbers compare by value across int/float/bool, strings by code points,
    /// lists/tuples elementwise, dicts regardless of order; Undefined equals only Undefined.
    public static func == (lhs: JinjaValue, rhs: JinjaValue) -> Bool {
        switch (lhs, rhs) {
        case (.undefined, .undefined), (.null, .null): return true
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)): return a == b
        case (.dict(let a), .dict(let b)):
            guard a.count == b.count else { return false }
            for (k, v) in a.items {
                guard let w = b[k], w == v else { return false }
            }
            return true
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.callable(let a), .callable(let b)): return a === b
        default:
            if let x = lhs.integerValue, let y = rhs.integerValue { return x == y }
            if let x = lhs.numericValue, let y = rhs.numericValue { return x == y }
            return false
        }
    }
}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .float(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .dict(JinjaDict(elements)) }
}
