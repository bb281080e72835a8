// Bad templates and bad renders: clear, typed errors with the line, never a crash.

import Foundation
import XCTest

@testable import PagodaTokenizer

final class ChatTemplateErrorTests: XCTestCase {
    private func syntaxError(_ source: String, file: StaticString = #filePath, line: UInt = #line) -> ChatTemplateError? {
        do {
            _ = try JinjaTemplate(source: source)
            XCTFail("expected a syntax error for \(source.debugDescription)", file: file, line: line)
        } catch let e as ChatTemplateError {
            XCTAssertEqual(e.kind, .syntax, "\(e)", file: file, line: line)
            return e
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
        return nil
    }

    private func renderError(
        _ source: String, _ context: [String: JinjaValue] = [:], file: StaticString = #filePath, line: UInt = #line
    ) -> ChatTemplateError? {
        do {
            let out = try JinjaTemplate(source: source).render(context)
            XCTFail("expected a render error, got \(out.debugDescription)", file: file, line: line)
        } catch let e as ChatTemplateError {
            return e
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
        return nil
    }

    func testSyntaxErrorsNameTheLine() {
        let unclosedIf = syntaxError("line one\n{% if x %}\nbody\n")
        XCTAssertTrue(unclosedIf?.message.contains("'endif'") ?? false, "\(String(describing: unclosedIf))")
        XCTAssertEqual(unclosedIf?.line, 3)

        let badExpr = syntaxError("a\nb\n{{ 1 + }}")
        XCTAssertEqual(badExpr?.line, 3)
        XCTAssertTrue(badExpr?.description.hasPrefix("chat template syntax error at line 3: ") ?? false, "\(String(describing: badExpr))")

        XCTAssertTrue(syntaxError("{% frobnicate %}")?.message.contains("unknown tag 'frobnicate'") ?? false)
        XCTAssertTrue(syntaxError("{% for x in y %}{% endif %}")?.message.contains("'endfor'") ?? false)
        XCTAssertTrue(syntaxError("{% endfor %}")?.message.contains("endfor") ?? false)
        XCTAssertTrue(syntaxError("{{ 'abc }}")?.message.contains("unterminated string") ?? false)
        XCTAssertTrue(syntaxError("{{ x ")?.message.contains("missing '}}'") ?? false)
        XCTAssertTrue(syntaxError("{# never closed")?.message.contains("comment") ?? false)
        XCTAssertEqual(syntaxError("\n\n{% break %}")?.line, 3)
        XCTAssertNotNil(syntaxError("{{ (1, 2 }}"))
        XCTAssertNotNil(syntaxError("{{ [1, 2) }}"))
        XCTAssertNotNil(syntaxError("{{ x is }}"))
        XCTAssertNotNil(syntaxError("{% set %}"))
        XCTAssertNotNil(syntaxError("{% macro m(a=1, b) %}{% endmacro %}"))
        XCTAssertNotNil(syntaxError("{% include 'other.jinja' %}"))
        XCTAssertNotNil(syntaxError("{{ a $ b }}"))
        XCTAssertNotNil(syntaxError("{% raw %}never ended"))
    }

    func testRenderErrorsAreTypedAndNameTheLine() {
        let undefinedAttr = renderError("ok\n{{ missing.attr }}")
        XCTAssertEqual(undefinedAttr?.kind, .undefined)
        XCTAssertEqual(undefinedAttr?.message, "'missing' is undefined")
        XCTAssertEqual(undefinedAttr?.line, 2)

        let dictMissing = renderError("{{ d.x.y }}", ["d": ["a": 1]])
        XCTAssertEqual(dictMissing?.message, "'dict object' has no attribute 'x'")

        let addStrInt = renderError("{{ 'a' + 1 }}")
        XCTAssertEqual(addStrInt?.kind, .runtime)
        XCTAssertEqual(addStrInt?.message, "can only concatenate str (not \"int\") to str")

        XCTAssertEqual(renderError("{{ 1 < 'a' }}")?.message, "'<' not supported between instances of 'int' and 'str'")
        XCTAssertEqual(
            renderError("{{ xs.append(1) }}", ["xs": [1]])?.message, "access to attribute 'append' of 'list' object is unsafe.")
        XCTAssertEqual(renderError("{{ 1 | nosuchfilter }}")?.message, "No filter named 'nosuchfilter'.")
        XCTAssertEqual(renderError("{{ 1 is nosuchtest }}")?.message, "No test named 'nosuchtest'.")
        XCTAssertEqual(renderError("{{ u | tojson }}")?.message, "Object of type Undefined is not JSON serializable")
        XCTAssertEqual(renderError("{% set x = 1 %}{% set x.a = 2 %}")?.message, "cannot assign attribute on non-namespace object")
        XCTAssertEqual(renderError("{{ 1 // 0 }}")?.message, "integer division or modulo by zero")
        XCTAssertEqual(renderError("{% for a, b in [[1, 2, 3]] %}{% endfor %}")?.message, "too many values to unpack (expected 2)")
        XCTAssertEqual(renderError("{{ range(1000000)|length }}")?.kind, .runtime)
        XCTAssertEqual(renderError("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}")?.message, "maximum macro recursion depth exceeded")
    }

    func testRaiseExceptionCarriesTheTemplateMessage() {
        let e = renderError(
            "{% macro check(role) %}{% if role != 'user' %}{{ raise_exception('Only user roles: got ' ~ role) }}{% endif %}{% endmacro %}\n{{ check('tool') }}"
        )
        XCTAssertEqual(e?.kind, .raised)
        XCTAssertEqual(e?.message, "Only user roles: got tool")
        XCTAssertEqual(e?.description, "Only user roles: got tool")
    }

    /// Every prefix of every real template (cut at a stride) either parses or fails with a
    /// ChatTemplateError; the ones that parse render or fail cleanly too. A crash fails the whole run.
    func testTruncatedRealTemplatesNeverCrash() throws {
        let dir = conformanceDirectory().appendingPathComponent("chat_templates")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jinja") }
        XCTAssertEqual(files.count, 9)
        let messages: [JinjaValue] = [["role": "system", "content": "s"], ["role": "user", "content": "u"]]
        var parsed = 0
        var rejected = 0
        for file in files {
            let scalars = Array(try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8).unicodeScalars)
            for cut in stride(from: 0, to: scalars.count, by: 97) {
                var prefix = String.UnicodeScalarView()
                prefix.append(contentsOf: scalars[0..<cut])
                do {
                    let t = try JinjaTemplate(source: String(prefix))
                    parsed += 1
                    do {
                        _ = try t.renderChat(messages: messages, addGenerationPrompt: true, specialTokens: ["bos_token": "<s>"])
                    } catch is ChatTemplateError {}
                } catch is ChatTemplateError {
                    rejected += 1
                }
            }
        }
        XCTAssertGreaterThan(rejected, 0)
        XCTAssertGreaterThan(parsed, 0)
    }

    /// Hostile templates (a request may carry its own) fail cleanly even on a 512 KiB thread stack:
    /// deep nesting is a syntax error, runaway macro recursion and huge repetitions are runtime errors.
    func testHostileTemplatesFailCleanlyOnASmallStack() throws {
        final class Results: @unchecked Sendable { var byName: [String: String] = [:] }
        let box = Results()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            var results: [String: String] = [:]
            func outcome(_ source: String, _ context: [String: JinjaValue] = [:]) -> String {
                switch Result(catching: { try JinjaTemplate(source: source).render(context) }) {
                case .success(let text): return "ok:" + text
                case .failure(let e as ChatTemplateError): return "\(e.kind.rawValue):\(e.message)"
                case .failure(let e): return "other:\(e)"
                }
            }
            let n = 300
            results["parens"] = outcome("{{ " + String(repeating: "(", count: n) + "1" + String(repeating: ")", count: n) + " }}")
            results["lists"] = outcome("{{ " + String(repeating: "[", count: n) + String(repeating: "]", count: n) + " }}")
            results["nots"] = outcome("{{ " + String(repeating: "not ", count: n) + "1 }}")
            results["minus"] = outcome("{{ " + String(repeating: "-", count: n) + "1 }}")
            results["ifs"] = outcome(String(repeating: "{% if true %}", count: n) + "x" + String(repeating: "{% endif %}", count: n))
            results["realistic"] = outcome(
                String(repeating: "{% if true %}", count: 12) + "{{ " + String(repeating: "(", count: 20) + "1" + String(repeating: ")", count: 20)
                    + " }}" + String(repeating: "{% endif %}", count: 12))
            results["recursion"] = outcome("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}")
            results["repeat"] = outcome("{{ 'x' * 1000000000 }}")
            results["json"] = (try? JinjaValue(jsonString: String(repeating: "[", count: 200) + String(repeating: "]", count: 200))) != nil ? "ok" : "error"
            results["deepjson"] = (try? JinjaValue(jsonString: String(repeating: "[", count: 100_000))) != nil ? "ok" : "error"
            box.byName = results
            done.signal()
        }
        thread.stackSize = 512 * 1024
        thread.start()
        done.wait()
        let results = box.byName
        for key in ["parens", "lists", "nots", "minus", "ifs"] {
            XCTAssertEqual(results[key], "syntax:template nesting is deeper than 64 levels", key)
        }
        XCTAssertEqual(results["realistic"], "ok:1")
        XCTAssertEqual(results["recursion"], "runtime:maximum macro recursion depth exceeded")
        XCTAssertEqual(results["repeat"]?.hasPrefix("runtime:repetition result is too large"), true)
        XCTAssertEqual(results["json"], "ok")
        XCTAssertEqual(results["deepjson"], "error")
    }

    func testOrderPreservingJSON() throws {
        let v = try JinjaValue(jsonString: #"{"z": 1, "a": [1.0, 2, -3e2, true, null], "m": {"y": "\u00e9\ud83c\udf0d\n", "b": {}}}"#)
        XCTAssertEqual(
            try JinjaTemplate(source: "{{ v | tojson }}|{{ v.keys() | list }}").render(["v": v]),
            #"{"z": 1, "a": [1.0, 2, -300.0, true, null], "m": {"y": "é🌍\n", "b": {}}}|['z', 'a', 'm']"#)
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "[1] x", "{\"a\": 01x}", "\"\\q\""] {
            XCTAssertThrowsError(try JinjaValue(jsonString: bad), bad)
        }
        XCTAssertEqual(v["m"]?["y"]?.stringValue, "é🌍\n")
        XCTAssertEqual(v["a"]?.arrayValue?.count, 5)
        XCTAssertEqual(v["m"]?.dictValue?.keys, ["y", "b"])
        XCTAssertNil(v["a"]?["x"])
        XCTAssertEqual(try v["m"]!.jsonText(), #"{"y": "é🌍\n", "b": {}}"#)
        XCTAssertEqual(try v["a"]!.jsonText(indent: 1), "[\n 1.0,\n 2,\n -300.0,\n true,\n null\n]")
        let foundation = try JinjaValue(foundation: ["k": [1, 2.5, "s", true, NSNull()] as [Any]])
        XCTAssertEqual(foundation, ["k": [1, 2.5, "s", true, .null]])
    }
}
