import ArgumentParser
import Crypto
import Glibc
import OpenClawIPC
import SupervisorCore

/// `openclaw-node identity [--json]`: the device id and public key, as upstream's
/// `openclaw node identity`. Read-only: it never creates, repairs or moves an identity, so a
/// gateway's SSH check (`sh -lc 'openclaw node identity --json'`) changes nothing here.
struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Print this node's device id and public key (read-only).",
        discussion: """
        Prints the device id (hex SHA-256 of the public key) and the raw Ed25519 public key \
        (base64url, no padding) from <state dir>/identity/device.json or, before the first \
        run took over the official node host's state, from <state dir>/state/openclaw.sqlite \
        (read through a private copy that is removed at once). It never creates an identity: \
        with none, it exits 1 and says how to make one. Gateways that verify a new \
        node over SSH run `openclaw node identity --json`; the `openclaw` shim this package \
        installs forwards that to this command (docs/operations.md).
        """
    )

    @Flag(help: "Print one line of JSON: {\"deviceId\", \"publicKey\"}.")
    var json = false

    static func upstreamIdentity(stateDir: String) -> DeviceIdentity? {
        let database = UpstreamStateImport.databasePath(stateDir: stateDir)
        guard access(database, R_OK) == 0, let imported = try? UpstreamStateImport.read(databasePath: database).identity,
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: imported.seed) else { return nil }
        return DeviceIdentity(privateKey: key, createdAtMs: imported.createdAtMs)
    }

    func run() throws {
        let paths = StatePaths.resolve()
        var identity: DeviceIdentity?
        do {
            identity = try IdentityFile.load(at: paths.identityFile)
            // Not yet imported from the official node host: the identity `run` will take over.
            if identity == nil { identity = Self.upstreamIdentity(stateDir: paths.stateDir) }
        } catch {
            fputs("cannot read the node device identity: \(error)\n", stderr)
            throw ExitCode(1)
        }
        guard let identity else {
            fputs("no node device identity found (start the node host once with `openclaw-node run` or `openclaw-node install`)\n", stderr)
            throw ExitCode(1)
        }
        if json {
            print((try? JSONText.encode(["deviceId": identity.deviceId, "publicKey": identity.publicKeyBase64Url])) ?? "{}")
        } else {
            print("deviceId:  \(identity.deviceId)")
            print("publicKey: \(identity.publicKeyBase64Url)")
        }
    }
}
