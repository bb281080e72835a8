import Foundation

/// A tokenizer.json `post_processor`: adds special tokens around an encoding when `add_special_tokens` is true.
/// Only single sequences are supported (no pairs), which is all a generation server needs.
indirect enum PostProcessor {
    /// The `single` template: special-token ids and the sequence ($A) in order.
    case template([TemplatePiece])
    /// ByteLevel only trims offsets; it leaves ids alone.
    case byteLevel
    /// RobertaProcessing / BertProcessing: cls, sequence, sep.
    case clsSep(cls: Int, sep: Int)
    case sequence([PostProcessor])

    enum TemplatePiece {
        case special([Int])
        case sequence
    }

    init(json: JSONObject) throws {
        switch try json.type() {
        case "TemplateProcessing":
            let specials = try json.optionalObject("special_tokens")
            var pieces: [TemplatePiece] = []
            for item in try json.objects("single") {
                if let sp = item.dict["SpecialToken"] as? [String: Any] {
                    let spObj = JSONObject(sp, path: json.path, field: item.name("SpecialToken"))
                    let name = try spObj.string("id")
                    guard let entry = specials?.dict[name] as? [String: Any],
                        let ids = entry["ids"] as? [NSNumber]
                    else {
                        throw TokenizerError.invalidField(
                            path: json.path, field: json.name("special_tokens"), reason: "no ids for \"\(name)\"")
                    }
                    pieces.append(.special(ids.map { $0.intValue }))
                } else if item.dict["Sequence"] is [String: Any] {
                    pieces.append(.sequence)
                } else {
                    throw TokenizerError.invalidField(path: json.path, field: item.field, reason: "expected SpecialToken or Sequence")
                }
            }
            self = .template(pieces)
        case "ByteLevel": self = .byteLevel
        case "RobertaProcessing", "BertProcessing":
            func idOf(_ key: String) throws -> Int {
                guard let pair = json.dict[key] as? [Any], pair.count == 2, let n = pair[1] as? NSNumber else {
                    throw TokenizerError.invalidField(path: json.path, field: json.name(key), reason: "expected [token, id]")
                }
                return n.intValue
            }
            self = .clsSep(cls: try idOf("cls"), sep: try idOf("sep"))
        case "Sequence": self = .sequence(try json.objects("processors").map { try PostProcessor(json: $0) })
        case let t: throw TokenizerError.unsupportedComponent(path: json.path, field: json.name("type"), type: t)
        }
    }

    func process(_ ids: [Int]) -> [Int] {
        switch self {
        case .byteLevel: return ids
        case .template(let pieces):
            var out: [Int] = []
            out.reserveCapacity(ids.count + 4)
            for p in pieces {
                switch p {
                case .special(let s): out.append(contentsOf: s)
                case .sequence: out.append(contentsOf: ids)
                }
            }
            return out
        case .clsSep(let cls, let sep): return [cls] + ids + [sep]
        case .sequence(let list):
            var t = ids
            for p in list { t = p.process(t) }
            return t
        }
    }
}
