import Confinement
import Logging
import NIOCore
import NodeSupport
import OpenClawIPC

/// How the Supervisor runs the McpWorker.
public struct McpWorkerSettings: Sendable {
    public var launch: WorkerLaunch
    public var confinement: ConfinementOptions
    public var settings: McpSettings
    public var clientVersion: String

    public init(launch: WorkerLaunch = .ownBinary(as: .mcp), confinement: ConfinementOptions, settings: McpSettings, clientVersion: String) {
        self.launch = launch
        self.confinement = confinement
        self.settings = settings
        self.clientVersion = clientVersion
    }
}

public enum McpPhase: String, Sendable, CaseIterable {
    case awaitingReady
    case ready
    case stopping
}

/// What `mcp.tools.call.v1` and the publication need of the MCP role.
public protocol McpRunner: AnyObject {
    /// The published catalogue.
    var descriptors: [McpCatalog.Descriptor] { get }
    func isConnected(_ server: String) -> Bool
    /// Calls `tool` on `server`; the result is the server's `tools/call` result.
    func call(server: String, tool: String, arguments: JSONValue, timeoutMs: Int, cancellation: InvokeCancellation,
              completion: @escaping (Result<JSONValue, WireError>) -> Void)
    /// Told whenever `descriptors` changes.
    var onCatalogChanged: () -> Void { get set }
}

/// The McpWorker's monitor: started with the node when the config names MCP servers. It
/// keeps each server's callable tools as the worker reports them (the filter, upstream's
/// dedup and task rule applied here), builds the catalogue, and runs the calls.
final class McpMonitor: WorkerMonitor<McpToSupervisor, SupervisorToMcp, McpPhase>, McpRunner {
    let settings: McpWorkerSettings
    private let calls: PendingCalls<String, McpCallResult>
    private var serverTools: [String: [McpTool]] = [:]
    private var connected: Set<String> = []
    private(set) var descriptors: [McpCatalog.Descriptor] = []
    var onCatalogChanged: () -> Void = {}
    private var lastBounded: String?
    /// Reports are folded into one rebuild (and one publication) per 250 ms: a server that
    /// toggles its list in a loop costs a bounded amount of work.
    private var rebuildTask: Scheduled<Void>?
    static let rebuildDelay = TimeAmount.milliseconds(250)
    /// Calls at once; more are refused.
    static let limit = 64

    init(settings: McpWorkerSettings, environment: [String: String], context: MonitorContext) {
        self.settings = settings
        calls = PendingCalls(loop: context.loop)
        super.init(role: .mcp, launch: settings.launch, confinement: settings.confinement, environment: environment,
                   initialPhase: .awaitingReady, context: context)
        let names = Set(settings.settings.servers.map(\.name))
        menu = Menu(subject: "the mcp worker", rows: [
            .init(.ready, in: [.awaitingReady], limit: .once) { [unowned self] in
                if case let .ready(hello) = $0 { ready(hello) }
            },
            // A configured server's state and tools; a server it was not given is a violation.
            .init(.tools, in: [.ready]) { [unowned self] in
                guard case let .tools(update) = $0 else { return }
                guard names.contains(update.server), update.tools.count <= McpServerTools.maxTools else {
                    return slot.refuse("tools of an unknown server or too many tools")
                }
                tools(update)
            },
            // Each answers a call in flight (a late answer to a cancelled or expired call is dropped).
            .init(.result, in: [.ready]) { [unowned self] in
                if case let .result(result) = $0 { _ = calls.complete(result.id, with: .success(result)) }
            },
        ])
    }

    override var spawnedPhase: McpPhase { .awaitingReady }

    func start() { slot.spawn() }

    private func ready(_ hello: WorkerHello) {
        guard accept(hello) else { return }
        phaseChanged(to: .ready)
        slot.send(.configure(McpConfiguration(servers: settings.settings.servers, clientVersion: settings.clientVersion)))
    }

    private func tools(_ update: McpServerTools) {
        if update.connected { connected.insert(update.server) } else { connected.remove(update.server) }
        let filter = settings.settings.filters[update.server] ?? McpToolFilter()
        serverTools[update.server] = update.connected ? McpCatalog.callable(update.tools, filter: filter) : []
        scheduleRebuild()
    }

    private func scheduleRebuild() {
        guard rebuildTask == nil else { return }
        rebuildTask = context.loop.scheduleTask(in: Self.rebuildDelay) { [weak self] in
            self?.rebuildTask = nil
            self?.rebuild()
        }
    }

    private func rebuild() {
        let listed = serverTools.keys.sorted().flatMap { server in (serverTools[server] ?? []).map { (server: server, tool: $0) } }
        let (next, count) = McpCatalog.descriptors(listed)
        if next.count < count {
            let line = "node host MCP catalog bounded: published \(next.count) of \(count) tools"
            if line != lastBounded { context.logger.warning("\(line)") }
            lastBounded = line
        } else {
            lastBounded = nil
        }
        guard next != descriptors else { return }
        descriptors = next
        onCatalogChanged()
    }

    func isConnected(_ server: String) -> Bool { phase == .ready && connected.contains(server) }

    func call(server: String, tool: String, arguments: JSONValue, timeoutMs: Int, cancellation: InvokeCancellation,
              completion: @escaping (Result<JSONValue, WireError>) -> Void) {
        guard calls.count < Self.limit else {
            return completion(.failure(WireError(code: "MCP_SERVER_UNAVAILABLE", message: "too many MCP tool calls in flight")))
        }
        let id = RandomID.uuid()
        // The worker times the call out itself; this deadline is the backstop.
        calls.add(id, deadline: .milliseconds(Int64(timeoutMs) + 2_000), expired: {
            WireError(code: "MCP_TOOL_TIMEOUT", message: "MCP error -32001: Request timed out")
        }) { outcome in
            switch outcome {
            case let .failure(error): completion(.failure(error))
            case let .success(result):
                if let error = result.error { completion(.failure(Self.checked(error))) } else { completion(.success(result.result ?? .object([:]))) }
            }
        }
        cancellation.onCancel { [weak self] in
            guard let self, self.calls.contains(id) else { return }
            self.slot.send(.cancel(McpCallId(id: id)))
            _ = self.calls.complete(id, with: .failure(WireError(code: "MCP_TOOL_ERROR", message: "cancelled")))
        }
        slot.send(.call(McpCall(id: id, server: server, tool: tool, arguments: arguments, timeoutMs: timeoutMs)))
    }

    /// A call's error as the worker reported it, made fit for the gateway here: one of upstream's
    /// codes (anything else is `MCP_TOOL_ERROR`), the text redacted and cut as upstream's
    /// `formatMcpError` (it may quote what a server said).
    static func checked(_ error: WireError) -> WireError {
        let codes: Set<String> = ["MCP_SERVER_UNAVAILABLE", "MCP_TOOL_UNAVAILABLE", "MCP_TOOL_TIMEOUT", "MCP_TOOL_ERROR"]
        return WireError(code: codes.contains(error.code) ? error.code : "MCP_TOOL_ERROR", message: SecretRedaction.mcpError(error.message))
    }

    /// The worker is gone: every server's tools are withdrawn, every call fails.
    override func workerDown(reason: String) {
        phaseChanged(to: context.stopping ? .stopping : .awaitingReady)
        connected = []
        serverTools = [:]
        calls.failAll(WireError(code: "MCP_SERVER_UNAVAILABLE", message: "node host MCP is unavailable"))
        rebuild()
    }

    /// Its servers are re-parented to us by the time the worker is reaped: they go.
    override func workerExited() {
        context.reaper.sweepOrphans(log: "killed an MCP server left by the mcp worker") { _ in true }
    }

    func shutdown() {
        calls.failAll(WireError(code: "MCP_SERVER_UNAVAILABLE", message: "node host MCP is unavailable"))
        stop(goodbye: .shutdown(Empty()), stoppingPhase: .stopping)
    }
}
