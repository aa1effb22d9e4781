/// Why an approval cannot bind to what the request names (an `INVALID_REQUEST` message).
public struct ApprovalDenial: Error, Equatable {
    public var message: String
    init(_ message: String) { self.message = message }
}
