/// The wire between the Supervisor and the ExecWorker.
///
/// The ExecWorker never receives a policy question: every `run` is a fully resolved
/// argv, cwd and environment the Supervisor has already authorised.

/// Device and inode of a file, to detect that a path was swapped between check and use.
public struct FileIdentity: Codable, Equatable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}

/// A script operand bound at approval time: re-hashed just before spawn.
public struct OperandBinding: Codable, Equatable, Sendable {
    public var path: String
    public var sha256: String
    public init(path: String, sha256: String) {
        self.path = path
        self.sha256 = sha256
    }
}

/// An authorised command.
public struct RunOrder: Codable, Equatable, Sendable {
    /// Supervisor-chosen id, unique among runs in flight.
    public var id: String
    /// argv; `argv[0]` is an absolute path or a name resolved against `env["PATH"]`.
    public var argv: [String]
    public var cwd: String?
    /// The complete child environment (nothing else is inherited).
    public var env: [String: String]
    /// Kill the whole process group after this many milliseconds.
    public var timeoutMs: Int?
    /// Bytes kept per stream and in total; the head is kept.
    public var maxOutputBytes: Int
    /// When set, the cwd must still have this identity at spawn time.
    public var expectCwd: FileIdentity?
    /// When set, this file must still hash to this value at spawn time.
    public var expectOperand: OperandBinding?

    public init(id: String, argv: [String], cwd: String?, env: [String: String], timeoutMs: Int?,
                maxOutputBytes: Int, expectCwd: FileIdentity? = nil, expectOperand: OperandBinding? = nil) {
        self.id = id
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.timeoutMs = timeoutMs
        self.maxOutputBytes = maxOutputBytes
        self.expectCwd = expectCwd
        self.expectOperand = expectOperand
    }
}

/// How a run ended.
public struct RunOutcome: Codable, Equatable, Sendable {
    /// Why a run could not start although it was authorised.
    public enum Refusal: String, Codable, Sendable {
        /// The cwd is no longer the directory that was approved.
        case cwdChanged
        /// The bound script operand changed.
        case operandChanged
    }

    public var id: String
    /// Absent when killed by a signal or never started.
    public var exitCode: Int32?
    public var signal: Int32?
    public var timedOut: Bool
    public var stdout: String
    public var stderr: String
    /// Some output was dropped because of `maxOutputBytes`.
    public var truncated: Bool
    /// Spawn failure text (the command never ran).
    public var error: String?
    public var refusal: Refusal?
    public var durationMs: Int

    public init(id: String, exitCode: Int32?, signal: Int32?, timedOut: Bool, stdout: String, stderr: String,
                truncated: Bool, error: String?, refusal: Refusal? = nil, durationMs: Int) {
        self.id = id
        self.exitCode = exitCode
        self.signal = signal
        self.timedOut = timedOut
        self.stdout = stdout
        self.stderr = stderr
        self.truncated = truncated
        self.error = error
        self.refusal = refusal
        self.durationMs = durationMs
    }
}

public struct RunCancel: Codable, Equatable, Sendable {
    public var id: String
    public init(id: String) { self.id = id }
}

/// Messages the ExecWorker sends to the Supervisor.
public enum ExecToSupervisor: IPCMessage, Equatable {
    case ready(WorkerHello)
    case runFinished(RunOutcome)

    public enum Kind: String, CaseIterable, Sendable {
        case ready
        case runFinished = "run.finished"
    }

    public var kind: Kind {
        switch self {
        case .ready: return .ready
        case .runFinished: return .runFinished
        }
    }

    public static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self {
        switch kind {
        case .ready: return .ready(try WorkerHello(from: decoder))
        case .runFinished: return .runFinished(try RunOutcome(from: decoder))
        }
    }

    public func encodePayload(to encoder: Encoder) throws {
        switch self {
        case let .ready(payload): try payload.encode(to: encoder)
        case let .runFinished(payload): try payload.encode(to: encoder)
        }
    }
}

/// Messages the Supervisor sends to the ExecWorker.
public enum SupervisorToExec: IPCMessage, Equatable {
    case run(RunOrder)
    case cancel(RunCancel)
    case shutdown(Empty)

    public enum Kind: String, CaseIterable, Sendable {
        case run
        case cancel = "run.cancel"
        case shutdown
    }

    public var kind: Kind {
        switch self {
        case .run: return .run
        case .cancel: return .cancel
        case .shutdown: return .shutdown
        }
    }

    public static func decodePayload(kind: Kind, from decoder: Decoder) throws -> Self {
        switch kind {
        case .run: return .run(try RunOrder(from: decoder))
        case .cancel: return .cancel(try RunCancel(from: decoder))
        case .shutdown: return .shutdown(try Empty(from: decoder))
        }
    }

    public func encodePayload(to encoder: Encoder) throws {
        switch self {
        case let .run(payload): try payload.encode(to: encoder)
        case let .cancel(payload): try payload.encode(to: encoder)
        case let .shutdown(payload): try payload.encode(to: encoder)
        }
    }
}
