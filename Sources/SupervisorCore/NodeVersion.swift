/// The version this build reports as `client.version`.
public enum NodeVersion {
    public static let current = "0.1.0"
}
