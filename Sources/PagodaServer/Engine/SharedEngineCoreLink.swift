import Foundation
import PagodaDistributed
import PagodaEngine

/// The API-server side of an engine core that several API servers share (`pagoda serve --api-server-count
/// K`): the engine core listens (`pagoda engine-core --rpc-listen`), each API server connects and shakes
/// hands as with an engine core of its own.
public enum SharedEngineCoreLink {
    /// Connects to `address` and reads the engine core's hello (sent once its model is loaded). Every wait is
    /// bounded by `timeout` seconds; the connection proves `secret` to the engine core first; `check` runs between connection attempts and may throw to give up early
    /// (e.g. the engine process exited).
    public static func connect(
        to address: EngineRPCAddress, secret: PeerSecret, timeout: Double, check: () throws -> Void = {}
    ) throws -> EngineCoreRPCClient {
        let deadline = Date().addingTimeInterval(timeout)
        var connection: EngineRPCConnection?
        while connection == nil {
            try check()
            do { connection = try EngineRPCConnection.connect(to: address, secret: secret, timeout: 0.5) } catch {
                if case EngineRPCError.refused = error { throw error }  // a wrong secret does not get better
                if Date() > deadline {
                    throw EngineRPCError.timeout("engine core at \(address) not listening within \(Int(timeout)) s: \(error)")
                }
            }
        }
        let c = connection!
        c.setReceiveTimeout(max(1, deadline.timeIntervalSinceNow))
        let client = try EngineCoreRPCClient(connection: c)
        c.setReceiveTimeout(nil)
        return client
    }
}
