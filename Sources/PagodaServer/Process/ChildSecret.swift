import Foundation
import PagodaDistributed

/// How a process hands the secret to a child it spawns: the child reads `--internal-secret-file /dev/stdin`,
/// and its stdin is a pipe holding the secret (argv is visible in `ps`; a pipe is not).
public enum ChildSecret {
    /// The flag of `pagoda serve` and `pagoda engine-core` that names the secret's file.
    public static let flag = "--internal-secret-file"
    public static let arguments = [flag, "/dev/stdin"]

    /// A pipe holding `secret`, its write end closed: set it as the child's `standardInput`.
    public static func pipe(_ secret: PeerSecret) -> Pipe {
        let p = Pipe()
        p.fileHandleForWriting.write(Data((secret.text + "\n").utf8))
        try? p.fileHandleForWriting.close()
        return p
    }

    /// `arguments` without any `--internal-secret-file` of the parent's own command line.
    public static func strip(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var skip = false
        for a in arguments {
            if skip { skip = false; continue }
            if a == flag { skip = true; continue }
            if a.hasPrefix(flag + "=") { continue }
            out.append(a)
        }
        return out
    }
}
