/// One engine step's flattened batch of tokens, as the model runner consumes it.
///
/// Tokens of all scheduled requests are concatenated request by request (a prefill chunk is many
/// tokens of one request, a decode is one). Shapes (N = total tokens, R = requests):
///
/// | field             | shape      | meaning                                                          |
/// | ----------------- | ---------- | ---------------------------------------------------------------- |
/// | tokenIds          | [N]        | input token ids                                                  |
/// | positions         | [N]        | absolute position of each token in its sequence (RoPE, masking)  |
/// | slotMapping       | [N]        | KV-cache slot = blockId × blockSize + offset, where K/V is written |
/// | queryStartLoc     | [R + 1]    | request r owns tokens queryStartLoc[r] ..< queryStartLoc[r+1]    |
/// | contextLens       | [R]        | tokens in the KV cache for r after this step (cached + new)      |
/// | blockTables       | R rows     | the physical block ids of request r, in order                    |
/// | logitsIndices     | [S]        | token indices whose logits are wanted (usually each request's last token) |
///
/// Attention for token i of request r covers KV positions 0 ... positions[i] (causal), all read from
/// the paged cache through blockTables[r] after this step's K/V were written.
public struct ForwardBatch: Sendable {
    public var tokenIds: [Int32]
    public var positions: [Int32]
    public var slotMapping: [Int32]
    public var queryStartLoc: [Int32]
    public var contextLens: [Int32]
    public var blockTables: [[Int32]]
    public var logitsIndices: [Int32]

    public init(
        tokenIds: [Int32], positions: [Int32], slotMapping: [Int32], queryStartLoc: [Int32],
        contextLens: [Int32], blockTables: [[Int32]], logitsIndices: [Int32]
    ) {
        self.tokenIds = tokenIds
        self.positions = positions
        self.slotMapping = slotMapping
        self.queryStartLoc = queryStartLoc
        self.contextLens = contextLens
        self.blockTables = blockTables
        self.logitsIndices = logitsIndices
    }

    public var numTokens: Int { tokenIds.count }
    public var numRequests: Int { contextLens.count }
}
