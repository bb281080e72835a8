/// A request body type that names the top-level JSON fields it declares, so decoding can hand back
/// the fields it does not (the server rejects or warns about those instead of dropping them).
public protocol OpenAIRequestBody: Decodable {
    static var declaredFields: Set<String> { get }
}

/// A decoded request body with the top-level fields its type does not declare, as sent.
/// Decoded in one pass: the body from the decoder, then the other keys of the same object.
public struct DecodedRequest<Body: OpenAIRequestBody>: Decodable {
    public var body: Body
    public var undeclaredFields: [String: JSONValue]

    public init(from decoder: Decoder) throws {
        body = try Body(from: decoder)
        let c = try decoder.container(keyedBy: AnyFieldKey.self)
        var other: [String: JSONValue] = [:]
        for key in c.allKeys where !Body.declaredFields.contains(key.stringValue) {
            other[key.stringValue] = try c.decode(JSONValue.self, forKey: key)
        }
        undeclaredFields = other
    }
}

/// Any field name of a JSON object.
struct AnyFieldKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
