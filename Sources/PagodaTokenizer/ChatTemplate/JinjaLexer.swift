// Template source -> tokens, with jinja2's whitespace control as transformers configures it:
// trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, `-`/`+` tag modifiers.

/// One lexical token. Template text outside tags arrives already whitespace-controlled.
enum JinjaTokenKind: Equatable {
    case text(String)
    case variableBegin, variableEnd  // {{ }}
    case blockBegin, blockEnd  // {% %}
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
    case eof
}

struct JinjaToken {
    let kind: JinjaTokenKind
    let line: Int
}

/// Splits a template into tokens the way jinja2's lexer does (same rules, hand-written instead of
/// regexes). Works on Unicode scalars, as Python works on code points.
struct JinjaLexer {
    private let src: [Unicode.Scalar]
    private var pos = 0
    private var line = 1
    /// jinja2's `line_starting`: the previous match ended with a newline (or nothing was read yet).
    /// lstrip_blocks strips a tag's indentation only at the start of a line.
    private var lineStarting = true
    private var tokens: [JinjaToken] = []

    init(_ source: String) {
        // jinja2 normalizes \r\n and \r to \n, then drops one trailing newline (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pending = it.next()
        while let c = pending {
            pending = it.next()
            if c == "\r" {
                scalars.append("\n")
                if pending == "\n" { pending = it.next() }
            } else {
                scalars.append(c)
            }
        }
        if scalars.last == "\n" { scalars.removeLast() }
        src = scalars
    }

    static func tokenize(_ source: String) throws -> [JinjaToken] {
        var lexer = JinjaLexer(source)
        try lexer.run()
        return lexer.tokens
    }

    private func fail(_ message: String) -> ChatTemplateError {
        ChatTemplateError(.syntax, message, line: line)
    }

    private func at(_ i: Int) -> Unicode.Scalar? { i < src.count ? src[i] : nil }

    private func matches(_ s: String, at i: Int) -> Bool {
        var j = i
        for c in s.unicodeScalars {
            guard j < src.count, src[j] == c else { return false }
            j += 1
        }
        return true
    }

    private mutating func emit(_ kind: JinjaTokenKind, line: Int? = nil) {
        tokens.append(JinjaToken(kind: kind, line: line ?? self.line))
    }

    /// Moves `pos` forward to `end`, counting newlines.
    private mutating func advance(to end: Int) {
        while pos < end {
            if src[pos] == "\n" { line += 1 }
            pos += 1
        }
    }

    private mutating func run() throws {
        while pos < src.count {
            // Find the next tag start.
            var start = pos
            var tag: Unicode.Scalar? = nil
            while start + 1 < src.count {
                if src[start] == "{", src[start + 1] == "{" || src[start + 1] == "%" || src[start + 1] == "#" {
                    tag = src[start + 1]
                    break
                }
                start += 1
            }
            guard let tagKind = tag else {
                emitText(pos, src.count)
                advance(to: src.count)
                break
            }
            let modifier = at(start + 2).flatMap { $0 == "-" || $0 == "+" ? $0 : nil }
            var textEnd = start
            if modifier == "-" {
                while textEnd > pos, isPythonWhitespace(src[textEnd - 1]) { textEnd -= 1 }
            } else if modifier != "+" && tagKind != "{" {
                // lstrip_blocks: drop spaces/tabs between the line start and a block or comment tag.
                var lpos = start
                while lpos > pos, src[lpos - 1] != "\n" { lpos -= 1 }
                let atLineStart = lpos > pos ? true : lineStarting
                if atLineStart && src[lpos..<start].allSatisfy({ $0 == " " || $0 == "\t" }) { textEnd = lpos }
            }
            emitText(pos, textEnd)
            advance(to: start)
            let tagLine = line
            pos = start + 2 + (modifier == nil ? 0 : 1)
            lineStarting = false
            switch tagKind {
            case "#": try lexComment(line: tagLine)
            case "%":
                if try lexRawBlock(modifierStart: start) { continue }
                emit(.blockBegin, line: tagLine)
                try lexTagBody(block: true)
            default:
                emit(.variableBegin, line: tagLine)
                try lexTagBody(block: false)
            }
        }
        emit(.eof)
    }

    private mutating func emitText(_ from: Int, _ to: Int) {
        guard to > from else { return }
        var s = String()
        s.unicodeScalars.append(contentsOf: src[from..<to])
        emit(.text(s))
    }

    /// After a `%}` or `#}`: `-` eats all following whitespace, `+` nothing, plain trims one newline.
    private mutating func finishTag(modifier: Unicode.Scalar?) {
        let before = pos
        if modifier == "-" {
            var end = pos
            while end < src.count, isPythonWhitespace(src[end]) { end += 1 }
            advance(to: end)
        } else if modifier != "+", at(pos) == "\n" {
            advance(to: pos + 1)
        }
        lineStarting = pos > before && src[pos - 1] == "\n"
    }

    private mutating func lexComment(line tagLine: Int) throws {
        var end = pos
        while end + 1 < src.count, !(src[end] == "#" && src[end + 1] == "}") { end += 1 }
        guard end + 1 < src.count else { throw ChatTemplateError(.syntax, "missing end of comment tag", line: tagLine) }
        let modifier = end > pos && (src[end - 1] == "-" || src[end - 1] == "+") ? src[end - 1] : nil
        advance(to: end + 2)
        finishTag(modifier: modifier)
    }

    /// `{% raw %}...{% endraw %}`: the body is text, untouched. Returns false when this block is not `raw`.
    private mutating func lexRawBlock(modifierStart: Int) throws -> Bool {
        var i = pos
        while let c = at(i), c == " " || c == "\t" || c == "\n" { i += 1 }
        guard matches("raw", at: i), let after = at(i + 3), !isNameChar(after) else { return false }
        i += 3
        while let c = at(i), c == " " || c == "\t" || c == "\n" { i += 1 }
        var openModifier: Unicode.Scalar? = nil
        if at(i) == "-" || at(i) == "+" {
            openModifier = at(i)
            i += 1
        }
        guard matches("%}", at: i) else { return false }
        advance(to: i + 2)
        finishTag(modifier: openModifier)
        // Find {%[-+]? endraw [-+]?%}
        var j = pos
        while j + 1 < src.count {
            if src[j] == "{", src[j + 1] == "%" {
                var k = j + 2
                let closeLeft = at(k) == "-" || at(k) == "+" ? at(k) : nil
                if closeLeft != nil { k += 1 }
                while let c = at(k), c == " " || c == "\t" || c == "\n" { k += 1 }
                if matches("endraw", at: k) {
                    k += 6
                    while let c = at(k), c == " " || c == "\t" || c == "\n" { k += 1 }
                    var closeRight: Unicode.Scalar? = nil
                    if at(k) == "-" || at(k) == "+" {
                        closeRight = at(k)
                        k += 1
                    }
                    if matches("%}", at: k) {
                        var textEnd = j
                        if closeLeft == "-" {
                            while textEnd > pos, isPythonWhitespace(src[textEnd - 1]) { textEnd -= 1 }
                        }
                        emitText(pos, textEnd)
                        advance(to: k + 2)
                        finishTag(modifier: closeRight)
                        return true
                    }
                }
            }
            j += 1
        }
        throw fail("missing end of raw directive")
    }

    /// Tokens inside `{{ }}` or `{% %}` up to the closing delimiter (only when brackets are balanced,
    /// so `{{ {'a': {'b': 1}} }}` works).
    private mutating func lexTagBody(block: Bool) throws {
        var balance: [Unicode.Scalar] = []
        while true {
            while let c = at(pos), isPythonWhitespace(c) { advance(to: pos + 1) }
            guard let c = at(pos) else {
                throw fail(block ? "unexpected end of template; missing '%}'" : "unexpected end of template; missing '}}'")
            }
            if balance.isEmpty {
                if block {
                    if (c == "-" || c == "+"), matches("%}", at: pos + 1) {
                        emit(.blockEnd)
                        pos += 3
                        finishTag(modifier: c)
                        return
                    }
                    if matches("%}", at: pos) {
                        emit(.blockEnd)
                        pos += 2
                        finishTag(modifier: nil)
                        return
                    }
                } else {
                    if c == "-", matches("}}", at: pos + 1) {
                        emit(.variableEnd)
                        pos += 3
                        finishTag(modifier: "-")
                        return
                    }
                    if matches("}}", at: pos) {
                        emit(.variableEnd)
                        pos += 2
                        lineStarting = false
                        return
                    }
                }
            }
            if isDigit(c) {
                try lexNumber()
            } else if c == "_" || isASCIILetter(c) {
                var end = pos
                while let d = at(end), isNameChar(d) { end += 1 }
                var s = String()
                s.unicodeScalars.append(contentsOf: src[pos..<end])
                emit(.name(s))
                pos = end
            } else if c == "'" || c == "\"" {
                try lexString(quote: c)
            } else {
                let two = at(pos + 1).map { String(c) + String($0) } ?? ""
                if ["//", "**", "==", "!=", "<=", ">="].contains(two) {
                    emit(.op(two))
                    pos += 2
                    continue
                }
                guard "+-/*%~[](){}<>=.:|,;".unicodeScalars.contains(c) else {
                    throw fail("unexpected char '\(Character(c))'")
                }
                switch c {
                case "(", "[", "{": balance.append(c)
                case ")", "]", "}":
                    let open: Unicode.Scalar = c == ")" ? "(" : c == "]" ? "[" : "{"
                    guard balance.last == open else { throw fail("unexpected '\(Character(c))'") }
                    balance.removeLast()
                default: break
                }
                emit(.op(String(c)))
                pos += 1
            }
        }
    }

    /// jinja2's integer (`1_000`) and float (`1.5`, `1e5`, `2.5E-3`) literals.
    private mutating func lexNumber() throws {
        var end = pos
        func digits(_ i: inout Int) {
            while let d = at(i), isDigit(d) || (d == "_" && at(i + 1).map(isDigit) == true) { i += 1 }
        }
        digits(&end)
        var isFloat = false
        if at(end) == ".", let d = at(end + 1), isDigit(d), !(pos > 0 && src[pos - 1] == ".") {
            isFloat = true
            end += 1
            digits(&end)
        }
        if let e = at(end), e == "e" || e == "E" {
            var k = end + 1
            if at(k) == "+" || at(k) == "-" { k += 1 }
            if let d = at(k), isDigit(d) {
                isFloat = true
                end = k
                digits(&end)
            }
        }
        var text = String()
        text.unicodeScalars.append(contentsOf: src[pos..<end].filter { $0 != "_" })
        pos = end
        if isFloat {
            guard let d = Double(text) else { throw fail("invalid number '\(text)'") }
            emit(.float(d))
        } else {
            guard let i = Int(text) else { throw fail("integer literal '\(text)' is too large") }
            emit(.integer(i))
        }
    }

    /// A quoted string, unescaped like Python's `unicode-escape` codec (what jinja2 uses):
    /// unknown escapes keep their backslash.
    private mutating func lexString(quote: Unicode.Scalar) throws {
        let startLine = line
        var i = pos + 1
        var out = String.UnicodeScalarView()
        while true {
            guard let c = at(i) else { throw ChatTemplateError(.syntax, "unterminated string", line: startLine) }
            if c == quote { break }
            if c != "\\" {
                out.append(c)
                i += 1
                continue
            }
            guard let e = at(i + 1) else { throw ChatTemplateError(.syntax, "unterminated string", line: startLine) }
            i += 2
            switch e {
            case "\n": break
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "0"..."7":
                var v = e.value - 0x30
                var n = 1
                while n < 3, let d = at(i), ("0"..."7").contains(d) {
                    v = v * 8 + (d.value - 0x30)
                    i += 1
                    n += 1
                }
                out.append(Unicode.Scalar(v)!)
            case "x", "u", "U":
                let width = e == "x" ? 2 : e == "u" ? 4 : 8
                var hexText = ""
                for k in 0..<width {
                    guard let d = at(i + k), d.properties.isASCIIHexDigit else {
                        throw ChatTemplateError(.syntax, "truncated \\\(e) escape in string", line: startLine)
                    }
                    hexText.unicodeScalars.append(d)
                }
                i += width
                guard let scalar = UInt32(hexText, radix: 16).flatMap(Unicode.Scalar.init) else {
                    throw ChatTemplateError(.syntax, "invalid \\\(e) escape in string", line: startLine)
                }
                out.append(scalar)
            default:
                out.append("\\")
                out.append(e)
            }
        }
        advance(to: i + 1)
        emit(.string(String(out)), line: startLine)
    }
}

private func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 0x30 && c.value <= 0x39 }
private func isASCIILetter(_ c: Unicode.Scalar) -> Bool {
    (c.value >= 0x41 && c.value <= 0x5A) || (c.value >= 0x61 && c.value <= 0x7A)
}
private func isNameChar(_ c: Unicode.Scalar) -> Bool { c == "_" || isDigit(c) || isASCIILetter(c) }

/// Python's `str.isspace` for one character (what `\s`, `strip()` and `split()` use).
func isPythonWhitespace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x09...0x0D, 0x1C...0x1F, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
        return true
    default:
        return false
    }
}
