/// The messages every invoke sends (gateway invoke, run order, run outcome, event, result),
/// read and written as `JSONValue` members instead of through `Codable`: Foundation's
/// `JSONEncoder`/`JSONDecoder` were a quarter of the Supervisor's CPU per `system.run`.
///
/// The wire form is the one `Codable` writes (same member names, nil optionals left out), so
/// either side may use either path. Reading is strict the way `Codable` is: a missing member,
/// a wrong type or a non-integral number answers nil, and `IPCCodec` then decodes through
/// `Codable`, which rejects the payload with its precise reason.

/// Typed reads of a parsed object. Optional members: absent or `null` is `.some(nil)`, a
/// wrong type is nil.
struct DirectMembers {
    let object: [String: JSONValue]

    init(_ object: [String: JSONValue]) { self.object = object }

    func string(_ key: String) -> String? { object[key]?.stringValue }

    func bool(_ key: String) -> Bool? { object[key]?.boolValue }

    func integer<T: FixedWidthInteger>(_ key: String, as: T.Type = T.self) -> T? {
        object[key].flatMap(Self.integer)
    }

    func optionalString(_ key: String) -> String?? { optional(key) { $0.stringValue } }

    func optionalInteger<T: FixedWidthInteger>(_ key: String, as: T.Type = T.self) -> T?? { optional(key, Self.integer) }

    func optional<T>(_ key: String, _ read: (JSONValue) -> T?) -> T?? {
        switch object[key] {
        case nil, .null?: return .some(nil)
        case let value?: return read(value).map { .some($0) }
        }
    }

    func isAbsent(_ key: String) -> Bool {
        switch object[key] {
        case nil, .null?: return true
        default: return false
        }
    }

    static func integer<T: FixedWidthInteger>(_ value: JSONValue) -> T? {
        // Doubles are exact up to 2^53; beyond that `Codable` decides.
        guard case let .number(number) = value, number.rounded() == number, abs(number) <= 9_007_199_254_740_992 else { return nil }
        return T(exactly: number)
    }
}

/// Members of an object to write, leaving nil optionals out as `Codable` does.
struct DirectPayload {
    var members: [String: JSONValue] = [:]

    subscript(key: String) -> String? {
        get { members[key]?.stringValue }
        set { if let newValue { members[key] = .string(newValue) } }
    }

    mutating func set<T: BinaryInteger>(_ key: String, _ value: T?) {
        if let value { members[key] = .number(Double(value)) }
    }

    mutating func set(_ key: String, _ value: Bool) { members[key] = .bool(value) }
}

extension InvokeRequest {
    var directMembers: [String: JSONValue] {
        var payload = DirectPayload()
        payload["id"] = id
        payload["nodeId"] = nodeId
        payload["command"] = command
        payload["paramsJSON"] = paramsJSON
        payload.set("timeoutMs", timeoutMs)
        payload["idempotencyKey"] = idempotencyKey
        payload.set("serial", serial)
        return payload.members
    }

    init?(direct object: [String: JSONValue]) {
        let members = DirectMembers(object)
        guard let id = members.string("id"), let nodeId = members.string("nodeId"), let command = members.string("command"),
              let paramsJSON = members.optionalString("paramsJSON"), let timeoutMs = members.optionalInteger("timeoutMs", as: Int.self),
              let idempotencyKey = members.optionalString("idempotencyKey"),
              let serial = members.optionalInteger("serial", as: Int.self) else { return nil }
        self.init(id: id, nodeId: nodeId, command: command, paramsJSON: paramsJSON, timeoutMs: timeoutMs, idempotencyKey: idempotencyKey)
        self.serial = serial
    }
}

extension InvokeResult {
    var directMembers: [String: JSONValue] {
        var payload = DirectPayload()
        payload["id"] = id
        payload["nodeId"] = nodeId
        payload.set("ok", ok)
        payload["payloadJSON"] = payloadJSON
        if payloadStructured == true { payload.set("payloadStructured", true) }
        payload.set("serial", serial)
        if let error { payload.members["error"] = .object(["code": .string(error.code), "message": .string(error.message)]) }
        return payload.members
    }

    init?(direct object: [String: JSONValue]) {
        let members = DirectMembers(object)
        guard let id = members.string("id"), let nodeId = members.string("nodeId"), let ok = members.bool("ok"),
              let payloadJSON = members.optionalString("payloadJSON") else { return nil }
        var error: WireError?
        if !members.isAbsent("error") {
            guard case let .object(fields)? = object["error"], let code = fields["code"]?.stringValue,
                  let message = fields["message"]?.stringValue else { return nil }
            error = WireError(code: code, message: message)
        }
        guard let serial = members.optionalInteger("serial", as: Int.self) else { return nil }
        self.init(id: id, nodeId: nodeId, ok: ok, payloadJSON: payloadJSON, error: error)
        self.serial = serial
        if !members.isAbsent("payloadStructured") {
            guard let structured = members.bool("payloadStructured") else { return nil }
            payloadStructured = structured
        }
    }
}

extension NodeEvent {
    var directMembers: [String: JSONValue] { ["event": .string(event), "payloadJSON": .string(payloadJSON)] }

    init?(direct object: [String: JSONValue]) {
        let members = DirectMembers(object)
        guard let event = members.string("event"), let payloadJSON = members.string("payloadJSON") else { return nil }
        self.init(event: event, payloadJSON: payloadJSON)
    }
}

extension RunOrder {
    /// nil when the order binds a cwd identity: inode numbers may pass 2^53 (`Codable` then).
    var directMembers: [String: JSONValue]? {
        guard expectCwd == nil else { return nil }
        var payload = DirectPayload()
        payload["id"] = id
        payload.members["argv"] = .array(argv.map(JSONValue.string))
        payload["cwd"] = cwd
        payload.members["env"] = .object(env.mapValues(JSONValue.string))
        payload.set("timeoutMs", timeoutMs)
        payload.set("maxOutputBytes", maxOutputBytes)
        if let expectOperand {
            payload.members["expectOperand"] = .object(["path": .string(expectOperand.path), "sha256": .string(expectOperand.sha256)])
        }
        return payload.members
    }

    init?(direct object: [String: JSONValue]) {
        let members = DirectMembers(object)
        guard members.isAbsent("expectCwd"), let id = members.string("id"), case let .array(argvValues)? = object["argv"],
              case let .object(envValues)? = object["env"], let cwd = members.optionalString("cwd"),
              let timeoutMs = members.optionalInteger("timeoutMs", as: Int.self),
              let maxOutputBytes = members.integer("maxOutputBytes", as: Int.self) else { return nil }
        var argv: [String] = []
        argv.reserveCapacity(argvValues.count)
        for value in argvValues {
            guard case let .string(text) = value else { return nil }
            argv.append(text)
        }
        var env: [String: String] = [:]
        env.reserveCapacity(envValues.count)
        for (key, value) in envValues {
            guard case let .string(text) = value else { return nil }
            env[key] = text
        }
        var operand: OperandBinding?
        if !members.isAbsent("expectOperand") {
            guard case let .object(fields)? = object["expectOperand"], let path = fields["path"]?.stringValue,
                  let sha256 = fields["sha256"]?.stringValue else { return nil }
            operand = OperandBinding(path: path, sha256: sha256)
        }
        self.init(id: id, argv: argv, cwd: cwd, env: env, timeoutMs: timeoutMs, maxOutputBytes: maxOutputBytes,
                  expectCwd: nil, expectOperand: operand)
    }
}

extension RunOutcome {
    var directMembers: [String: JSONValue] {
        var payload = DirectPayload()
        payload["id"] = id
        payload.set("exitCode", exitCode)
        payload.set("signal", signal)
        payload.set("timedOut", timedOut)
        payload["stdout"] = stdout
        payload["stderr"] = stderr
        payload.set("truncated", truncated)
        payload["error"] = error
        payload["refusal"] = refusal?.rawValue
        payload.set("durationMs", durationMs)
        return payload.members
    }

    init?(direct object: [String: JSONValue]) {
        let members = DirectMembers(object)
        guard let id = members.string("id"), let exitCode = members.optionalInteger("exitCode", as: Int32.self),
              let signal = members.optionalInteger("signal", as: Int32.self), let timedOut = members.bool("timedOut"),
              let stdout = members.string("stdout"), let stderr = members.string("stderr"),
              let truncated = members.bool("truncated"), let error = members.optionalString("error"),
              let refusal = members.optional("refusal", { $0.stringValue.flatMap(Refusal.init(rawValue:)) }),
              let durationMs = members.integer("durationMs", as: Int.self) else { return nil }
        self.init(id: id, exitCode: exitCode, signal: signal, timedOut: timedOut, stdout: stdout, stderr: stderr,
                  truncated: truncated, error: error, refusal: refusal, durationMs: durationMs)
    }
}

// MARK: The messages that carry them

extension NetToSupervisor {
    public var directPayload: [String: JSONValue]? {
        if case let .invoke(request) = self { return request.directMembers }
        return nil
    }

    public static func decodeDirect(kind: Kind, members: [String: JSONValue]) -> Self? {
        guard kind == .invoke else { return nil }
        return InvokeRequest(direct: members).map(Self.invoke)
    }
}

extension SupervisorToNet {
    public var directPayload: [String: JSONValue]? {
        switch self {
        case let .invokeResult(result): return result.directMembers
        case let .nodeEvent(event): return event.directMembers
        default: return nil
        }
    }

    public static func decodeDirect(kind: Kind, members: [String: JSONValue]) -> Self? {
        switch kind {
        case .invokeResult: return InvokeResult(direct: members).map(Self.invokeResult)
        case .nodeEvent: return NodeEvent(direct: members).map(Self.nodeEvent)
        default: return nil
        }
    }
}

extension SupervisorToExec {
    public var directPayload: [String: JSONValue]? {
        if case let .run(order) = self { return order.directMembers }
        return nil
    }

    public static func decodeDirect(kind: Kind, members: [String: JSONValue]) -> Self? {
        guard kind == .run else { return nil }
        return RunOrder(direct: members).map(Self.run)
    }
}

extension ExecToSupervisor {
    public var directPayload: [String: JSONValue]? {
        if case let .runFinished(outcome) = self { return outcome.directMembers }
        return nil
    }

    public static func decodeDirect(kind: Kind, members: [String: JSONValue]) -> Self? {
        guard kind == .runFinished else { return nil }
        return RunOutcome(direct: members).map(Self.runFinished)
    }
}
