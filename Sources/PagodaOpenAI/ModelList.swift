/// `GET /v1/models` answer.
public struct ModelList: Sendable, Codable, Equatable {
    public var object: String = "list"
    public var data: [ModelCard]
    public init(data: [ModelCard]) { self.data = data }
}

/// One served model (vLLM's ModelCard).
public struct ModelCard: Sendable, Codable, Equatable {
    public var id: String
    public var object: String = "model"
    public var created: Int
    public var ownedBy: String
    public var root: String?
    public var parent: String?
    public var maxModelLen: Int?
    public init(id: String, created: Int, ownedBy: String = "pagoda", root: String?, maxModelLen: Int?) {
        self.id = id; self.created = created; self.ownedBy = ownedBy; self.root = root; self.maxModelLen = maxModelLen
    }
    enum CodingKeys: String, CodingKey {
        case id, object, created, root, parent, ownedBy = "owned_by", maxModelLen = "max_model_len"
    }
}
