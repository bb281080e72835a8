// Which form of `message.content` a chat template expects, read from its syntax tree.

/// The form a chat template wants message content in (vLLM's `ChatTemplateContentFormat`): one
/// string, or OpenAI's list of parts (`[{"type": "text", "text": ...}]`) that the template iterates.
public enum ChatTemplateContentFormat: String, Sendable, CaseIterable {
    case string, openai
}

extension JinjaTemplate {
    /// The content form this template expects, detected as vLLM's `_detect_content_format` does:
    /// `openai` when some `for` loop iterates the `content` of a message variable — a loop target
    /// over `messages` or over a name assigned from it (`set loop_messages = messages[1:]`) — as
    /// `message['content']` or `message.content`, possibly sliced, filtered or tested; else `string`.
    public var contentFormat: ChatTemplateContentFormat {
        var loops: [JinjaForLoop] = []
        var assigns: [(JinjaTarget, JinjaExpr)] = []
        Self.collect(nodes, loops: &loops, assigns: &assigns)
        var messageLists: Set<String> = ["messages"]
        for case (.name(let lhs), let rhs) in assigns where Self.accesses(rhs, "messages", key: nil) { messageLists.insert(lhs) }
        var messageVars: Set<String> = []
        for loop in loops {
            guard case .name(let target) = loop.target else { continue }
            if messageLists.contains(where: { Self.accesses(loop.iterable, $0, key: nil) }) { messageVars.insert(target) }
        }
        let iterates = loops.contains { loop in messageVars.contains { Self.accesses(loop.iterable, $0, key: "content") } }
        return iterates ? .openai : .string
    }

    /// Every `for` loop and `set` in the template, nested ones included.
    private static func collect(_ nodes: [JinjaNode], loops: inout [JinjaForLoop], assigns: inout [(JinjaTarget, JinjaExpr)]) {
        for node in nodes {
            switch node {
            case .forLoop(let loop, _):
                loops.append(loop)
                collect(loop.body, loops: &loops, assigns: &assigns)
                collect(loop.elseBody, loops: &loops, assigns: &assigns)
            case .set(let target, let value, _):
                assigns.append((target, value))
            case .ifChain(let branches, let elseBody, _):
                for (_, body) in branches { collect(body, loops: &loops, assigns: &assigns) }
                collect(elseBody, loops: &loops, assigns: &assigns)
            case .setBlock(_, let body, _, _), .callBlock(_, _, let body, _), .filterBlock(let body, _, _), .with(_, let body, _):
                collect(body, loops: &loops, assigns: &assigns)
            case .macro(let m, _):
                collect(m.body, loops: &loops, assigns: &assigns)
            case .text, .output, .breakLoop, .continueLoop:
                continue
            }
        }
    }

    /// vLLM's `_is_var_or_elems_access`: `expr` is the variable `name` (key nil) or its item `key`
    /// (`name['key']`, `name.key`), seen through slices, filters and tests.
    private static func accesses(_ expr: JinjaExpr, _ name: String, key: String?) -> Bool {
        switch expr {
        case .filter(let inner?, _, _), .test(let inner, _, _), .slice(let inner, _, _, _):
            return accesses(inner, name, key: key)
        case .name(let n):
            return key == nil && n == name
        case .attribute(.name(let n), let attr):
            return key != nil && n == name && attr == key
        case .item(.name(let n), .literal(let k)):
            return key != nil && n == name && k == .string(key!)
        default:
            return false
        }
    }
}

extension Tokenizer {
    /// The content form of the chat template `applyChatTemplate` would use with these arguments.
    public func chatTemplateContentFormat(templateName: String?, hasTools: Bool) throws -> ChatTemplateContentFormat {
        let source = try ChatTemplateSelection.source(templates: config.chatTemplates, name: templateName, hasTools: hasTools)
        return try ChatTemplateCache.shared.template(for: source).contentFormat
    }
}
