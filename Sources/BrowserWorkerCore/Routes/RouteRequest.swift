import OpenClawIPC

/// One route call as the handlers see it (`browser.md` §2: lenient body parsing).
struct RouteRequest {
    typealias Object = [String: JSONValue]

    var method: String
    var path: String
    var query: [String: String]
    var body: Object
    var pathParameters: [String: String] = [:]
    var deadline: Deadline

    /// A body field as trimmed text (numbers and booleans stringified); empty = absent.
    func string(_ key: String) -> String? { Self.text(body[key]) }

    /// Lenient text of any JSON value (§2): the reading of `string(_:)`, also for nested objects.
    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case let .string(text)?: let value = text.trimmed(); return value.isEmpty ? nil : value
        case let .number(number)?: return number.javaScriptString
        case let .bool(flag)?: return String(flag)
        default: return nil
        }
    }

    /// The raw string (not trimmed; `type` text may be spaces or empty).
    func rawString(_ key: String) -> String? { body[key]?.stringValue }

    static func bool(_ value: JSONValue?) -> Bool? {
        switch value {
        case let .bool(flag)?: return flag
        case let .number(number)?: return number == 1 ? true : number == 0 ? false : nil
        case let .string(text)?:
            switch text.trimmed().lowercased() {
            case "true", "1", "yes": return true
            case "false", "0", "no": return false
            default: return nil
            }
        default: return nil
        }
    }

    func bool(_ key: String) -> Bool? { Self.bool(body[key]) }
    func queryBool(_ key: String) -> Bool? { query[key].flatMap { Self.bool(.string($0)) } }

    func int(_ key: String) -> Int? {
        switch body[key] {
        case let .number(number)?: return number.isFinite ? number.saturatingInt : nil
        case let .string(text)?: return Int(text.trimmed()) ?? Double(text.trimmed()).flatMap { $0.isFinite ? $0.saturatingInt : nil }
        default: return nil
        }
    }

    func queryInt(_ key: String) -> Int? { query[key].flatMap { Int($0.trimmed()) } }

    /// `targetId` from the body or the query.
    var targetId: String? { string("targetId") ?? query["targetId"].map { $0.trimmed() }.flatMap { $0.isEmpty ? nil : $0 } }

    /// The profile the route acts on: query wins over body (`routes/utils.ts`).
    var profileName: String? {
        if let name = query["profile"]?.trimmed(), !name.isEmpty { return name }
        return string("profile")
    }
}
