import OpenClawIPC

// What a worker may ask of the Supervisor, as a table per role (OpenSSH's `mon_table`): each
// row names a message kind, the phases in which it may arrive, how often, and the handler
// that serves it. A compromised worker can send any bytes; anything that is not a
// well-formed message admitted by its role's menu is a violation: the monitor logs the
// reason, kills that worker and re-spawns it. Content checks (which nonce may be signed,
// which run may execute) are the handlers' work.

/// How often a message kind may arrive.
public enum MenuLimit: Equatable, Sendable {
    /// Once, until the monitor re-arms the row (a new generation, a new connect attempt).
    case once
    /// At most `n` outstanding at once: each admitted message takes a slot until the monitor
    /// gives it back (its answer was sent).
    case inFlight(Int)
    /// Any number of times (the handler bounds the work: batching, a table of known ids).
    case unbounded
}

/// A role's menu: the rows, and how much of each limit is used.
public struct Menu<Message: IPCMessage, Phase: Hashable & RawRepresentable> where Phase.RawValue == String {
    public struct Row {
        public let kind: Message.Kind
        public let phases: Set<Phase>
        public let limit: MenuLimit
        public let handler: (Message) -> Void

        public init(_ kind: Message.Kind, in phases: Set<Phase>, limit: MenuLimit = .unbounded,
                    handler: @escaping (Message) -> Void) {
            self.kind = kind
            self.phases = phases
            self.limit = limit
            self.handler = handler
        }
    }

    private var rows: [Message.Kind: Row] = [:]
    private var used: [Message.Kind: Int] = [:]
    /// Names the worker in violations ("the link", "the exec worker").
    private let subject: String

    public init(subject: String, rows: [Row]) {
        self.subject = subject
        for row in rows {
            precondition(self.rows[row.kind] == nil, "two menu rows for \(row.kind.rawValue)")
            self.rows[row.kind] = row
        }
    }

    /// The menu as data (for tests and docs): kind → (phases, limit).
    public var table: [Message.Kind: (phases: Set<Phase>, limit: MenuLimit)] {
        rows.mapValues { ($0.phases, $0.limit) }
    }

    /// Admits `message` in `phase` and returns its handler, or the violation.
    public mutating func admit(_ message: Message, in phase: Phase) -> Result<(Message) -> Void, MenuViolation> {
        let kind = message.kind
        guard let row = rows[kind], row.phases.contains(phase) else {
            return .failure(MenuViolation("\"\(kind.rawValue)\" is not allowed while \(subject) is \(phase.rawValue)"))
        }
        let count = used[kind, default: 0]
        switch row.limit {
        case .once where count >= 1:
            return .failure(MenuViolation("\"\(kind.rawValue)\" may come once while \(subject) is \(phase.rawValue); it came again"))
        case let .inFlight(limit) where count >= limit:
            return .failure(MenuViolation("more than \(limit) \"\(kind.rawValue)\" outstanding at once"))
        case .unbounded:
            return .success(row.handler)
        default:
            used[kind] = count + 1
            return .success(row.handler)
        }
    }

    /// An outstanding `.inFlight` message of `kind` was answered.
    public mutating func release(_ kind: Message.Kind) {
        if let count = used[kind], count > 0 { used[kind] = count - 1 }
    }

    /// Re-arms `.once` rows (or, with `kinds`, those rows only).
    public mutating func rearm(_ kinds: [Message.Kind]? = nil) {
        for kind in kinds ?? Array(used.keys) where rows[kind]?.limit == .once { used[kind] = 0 }
    }

    /// Forgets every count (a new worker generation: nothing it had outstanding is answered).
    public mutating func reset() { used.removeAll() }

    /// How many of `kind` are outstanding or used.
    public func count(_ kind: Message.Kind) -> Int { used[kind, default: 0] }
}

/// Why a message was refused by its menu.
public struct MenuViolation: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
