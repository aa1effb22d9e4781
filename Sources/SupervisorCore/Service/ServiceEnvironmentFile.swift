/// The owner-only (0600) `node.systemd.env` in the state dir: the only place the service's
/// gateway credentials are written (the unit file names it in `EnvironmentFile=`).
public enum ServiceEnvironmentFile {
    public static let name = "node.systemd.env"
    /// Variables that are secrets: never written into the unit file.
    public static let secretKeys = ["OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD",
                                    CloudflareAccess.clientIdVariable, CloudflareAccess.clientSecretVariable]

    public static func path(stateDir: String) -> String { "\(stateDir)/\(name)" }

    /// `KEY="value"` lines, values escaped for systemd's EnvironmentFile parser.
    public static func render(_ values: [(key: String, value: String)]) -> String {
        var text = "# Written by openclaw-node install: gateway credentials for the service (keep 0600).\n"
        for (key, value) in values {
            let escaped = value.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("$", with: "\\$")
            text += "\(key)=\"\(escaped)\"\n"
        }
        return text
    }

    /// Writes the file atomically (0600, directory 0700), or removes it when there is nothing
    /// secret to keep, so a rotated-out token does not linger.
    public static func write(_ values: [(key: String, value: String)], stateDir: String) throws(SecureFile.Failure) {
        let target = path(stateDir: stateDir)
        guard !values.isEmpty else {
            SecureFile.remove(target)
            return
        }
        try SecureFile.ensureDirectory(stateDir)
        try SecureFile.write(target, Array(render(values).utf8), mode: 0o600)
    }
}
