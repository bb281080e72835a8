import XCTest

@testable import PagodaStructured

/// Compiling JSON schemas, regexes, choices and GBNF into grammars, checked by matching strings
/// byte by byte (the matcher is the grammar's meaning).
final class GrammarCompileTests: XCTestCase {
    /// Whether `text` is a complete string of `spec`'s grammar.
    func accepts(_ spec: StructuredOutputSpec, _ text: String) throws -> Bool {
        let s = StructuredGrammar(grammar: try spec.compileGrammar(), vocabulary: TokenVocabulary(tokenBytes: []))
        let m = s.makeMatcher()
        return m.advance(bytes: Array(text.utf8)) && m.isAccepting
    }

    /// Whether `text` is a prefix of some string of the grammar.
    func prefixOK(_ spec: StructuredOutputSpec, _ text: String) throws -> Bool {
        let s = StructuredGrammar(grammar: try spec.compileGrammar(), vocabulary: TokenVocabulary(tokenBytes: []))
        return s.makeMatcher().advance(bytes: Array(text.utf8))
    }

    static let personSchema = """
        {"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 8},
            "age": {"type": "integer"},
            "role": {"enum": ["admin", "user"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
            "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
                        "required": ["city"], "additionalProperties": false},
            "score": {"type": "number"},
            "ok": {"type": "boolean"}
        }, "required": ["name", "age", "role", "tags", "address"]}
        """

    func testJSONSchemaAcceptsValidDocuments() throws {
        let spec = StructuredOutputSpec.jsonSchema(Self.personSchema)
        XCTAssertTrue(try accepts(spec, #"{"name": "ann", "age": 31, "role": "admin", "tags": ["a"], "address": {"city": "Oslo"}}"#))
        XCTAssertTrue(
            try accepts(
                spec,
                #"{"name": "", "age": -7, "role": "user", "tags": ["a", "b\n"], "address": {"city": "x", "zip": null}, "score": 1.5e3, "ok": true}"#
            ))
        XCTAssertTrue(
            try accepts(
                spec, #"{"name": "é\u00e9", "age": 0, "role": "user", "tags": ["a"], "address": {"city": "x", "zip": "0150"}, "ok": false}"#
            ))
    }

    func testJSONSchemaRejectsInvalidDocuments() throws {
        let spec = StructuredOutputSpec.jsonSchema(Self.personSchema)
        // Missing required "address".
        XCTAssertFalse(try accepts(spec, #"{"name": "ann", "age": 31, "role": "admin", "tags": ["a"]}"#))
        // Enum value not listed.
        XCTAssertFalse(try prefixOK(spec, #"{"name": "ann", "age": 31, "role": "root""#))
        // Too many items, string too long, leading zero, wrong order of required fields.
        XCTAssertFalse(try prefixOK(spec, #"{"name": "ann", "age": 31, "role": "admin", "tags": ["a", "b", "c"]"#))
        XCTAssertFalse(try prefixOK(spec, #"{"name": "annannann""#))
        XCTAssertFalse(try prefixOK(spec, #"{"name": "a", "age": 01"#))
        XCTAssertFalse(try prefixOK(spec, #"{"age": 1"#))
        // Undeclared property.
        XCTAssertFalse(try prefixOK(spec, #"{"name": "a", "age": 1, "role": "user", "tags": ["a"], "address": {"city": "x", "street""#))
        // Empty tags (minItems 1).
        XCTAssertFalse(try prefixOK(spec, #"{"name": "a", "age": 1, "role": "user", "tags": []"#))
    }

    func testOptionalPropertiesAndRefs() throws {
        let schema = """
            {"$defs": {"Node": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}, "required": ["v"]}},
             "type": "object", "properties": {"a": {"type": "integer"}, "b": {"const": "x"}, "head": {"$ref": "#/$defs/Node"}}}
            """
        let spec = StructuredOutputSpec.jsonSchema(schema)
        XCTAssertTrue(try accepts(spec, "{}"))
        XCTAssertTrue(try accepts(spec, #"{"b": "x"}"#))
        XCTAssertTrue(try accepts(spec, #"{"a": 1, "head": {"v": 1, "next": {"v": 2, "next": null}}}"#))
        XCTAssertFalse(try accepts(spec, #"{"b": "y"}"#))
        XCTAssertFalse(try prefixOK(spec, #"{, "#))
    }

    func testUnsupportedSchemaKeywordIsNamed() {
        XCTAssertThrowsError(try StructuredOutputSpec.jsonSchema(#"{"type": "string", "pattern": "a+"}"#).compileGrammar()) { e in
            XCTAssertEqual(e as? StructuredOutputError, .unsupportedSchema(keyword: "pattern", detail: "at #"))
            XCTAssertTrue("\(e)".contains("'pattern'"))
        }
        XCTAssertThrowsError(
            try StructuredOutputSpec.jsonSchema(#"{"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}"#)
                .compileGrammar()
        ) { e in
            XCTAssertTrue("\(e)".contains("'minimum'"), "\(e)")
        }
        XCTAssertThrowsError(try StructuredOutputSpec.jsonSchema("{not json").compileGrammar())
    }

    func testJSONObjectMode() throws {
        XCTAssertTrue(try accepts(.jsonObject, #"{"a": [1, {"b": null}], "c": "d"}"#))
        XCTAssertFalse(try accepts(.jsonObject, "[1]"))
    }

    func testRegex() throws {
        let spec = StructuredOutputSpec.regex(#"(\+1 )?\d{3}-[a-c]+(x|yz)*"#)
        XCTAssertTrue(try accepts(spec, "123-a"))
        XCTAssertTrue(try accepts(spec, "+1 555-abcabyzx"))
        XCTAssertFalse(try accepts(spec, "12-a"))
        XCTAssertFalse(try accepts(spec, "123-d"))
        XCTAssertTrue(try accepts(.regex("[^a]."), "bé"))
        XCTAssertFalse(try accepts(.regex("[^a]."), "ab"))
        XCTAssertThrowsError(try StructuredOutputSpec.regex("(a)\\1").compileGrammar())
        XCTAssertThrowsError(try StructuredOutputSpec.regex("(?=a)").compileGrammar())
    }

    func testChoice() throws {
        let spec = StructuredOutputSpec.choice(["yes", "no", "yes please"])
        XCTAssertTrue(try accepts(spec, "yes"))
        XCTAssertTrue(try accepts(spec, "yes please"))
        XCTAssertFalse(try accepts(spec, "ye"))
        XCTAssertFalse(try accepts(spec, "maybe"))
        XCTAssertThrowsError(try StructuredOutputSpec.choice([]).compileGrammar())
    }

    func testGBNF() throws {
        let g = """
            # arithmetic
            root ::= expr
            expr ::= term (("+" | "-") term)*
            term ::= num | "(" expr ")"
            num  ::= [0-9]+ ("." [0-9]{1,2})?
            """
        XCTAssertTrue(try accepts(.grammar(g), "1+(2.25-3)"))
        XCTAssertFalse(try accepts(.grammar(g), "1+"))
        XCTAssertFalse(try accepts(.grammar(g), "1.234"))
        XCTAssertThrowsError(try StructuredOutputSpec.grammar("root ::= foo").compileGrammar()) { e in
            XCTAssertTrue("\(e)".contains("foo"))
        }
        XCTAssertThrowsError(try StructuredOutputSpec.grammar("root ::= root \"a\" | \"b\"").compileGrammar()) { e in
            XCTAssertTrue("\(e)".contains("left-recursive"))
        }
        XCTAssertThrowsError(try StructuredOutputSpec.grammar("expr ::= \"a\"").compileGrammar())
    }

    func testSpecCrossesJSON() throws {
        for spec in [StructuredOutputSpec.jsonSchema("{}"), .jsonObject, .regex("a"), .choice(["x"]), .grammar("root ::= \"a\"")] {
            let data = try JSONEncoder().encode(spec)
            XCTAssertEqual(try JSONDecoder().decode(StructuredOutputSpec.self, from: data), spec)
        }
    }
}
