import OpenClawIPC

/// `system.execApprovals.get` / `.set` (node-host.md §5.2): the approvals file as the
/// gateway's admin surface sees it, socket token redacted, writes guarded by `baseHash`.
public final class ExecApprovalsHandler: CommandHandler {
    public static let wireCommands = ["system.execApprovals.get", "system.execApprovals.set"]
    let store: ExecApprovalsStore

    public init(store: ExecApprovalsStore) {
        self.store = store
    }

    public func handle(_ request: InvokeRequest, cancellation: InvokeCancellation, completion: @escaping (InvokeOutput) -> Void) {
        let result: Result<JSONValue, ApprovalsError>
        if request.command == "system.execApprovals.get" {
            // Params are ignored, as upstream.
            result = Result { () throws(ApprovalsError) -> JSONValue in try store.getPayload() }
        } else {
            guard let params = InvokeParams.object(request, orAnswer: completion) else { return }
            result = Result { () throws(ApprovalsError) -> JSONValue in try store.set(params: .object(params)) }
        }
        switch result {
        case let .success(payload):
            let text = (try? JSONText.encode(payload)) ?? "{}"
            completion(InvokeOutput(result: .success(request, payloadJSON: text)))
        case let .failure(error):
            let code = error.message.contains("timed out") ? "TIMEOUT" : "INVALID_REQUEST"
            completion(InvokeOutput(result: .failure(request, code: code, message: error.wireMessage)))
        }
    }
}
