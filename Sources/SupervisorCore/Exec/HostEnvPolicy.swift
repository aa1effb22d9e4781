import OpenClawIPC

/// The rules of upstream's host environment policy (`host-env-security-policy.js`), derived
/// from the data in `HostEnvSecurityPolicyData.swift`:
/// - an override (`params.env`, `env NAME=VALUE cmd`) is refused when its key is in the
///   everywhere or the override-only list, or starts with a blocked or override prefix;
/// - an inherited variable is stripped when it is in the everywhere list, or in the
///   override-only list and not in the allowed-inherited one, or starts with a blocked prefix.
/// Keys compare upper-cased.
public struct HostEnvPolicy: Sendable {
    public let blockedEverywhere: Set<String>
    public let blockedOverrideOnly: Set<String>
    public let allowedInheritedOverrideOnly: Set<String>
    public let blockedPrefixes: [String]
    public let blockedOverridePrefixes: [String]
    /// everywhere ∪ (override-only − allowed inherited): 209 keys today.
    public let blockedInherited: Set<String>

    /// The policy of this build (the data file is part of it: a bad file is a build error a
    /// unit test catches, so this never falls back to an empty policy).
    public static let upstream = HostEnvPolicy(json: hostEnvSecurityPolicyJSON)!

    init?(json: String) {
        guard let value = try? JSONText.decode(JSONValue.self, from: json) else { return nil }
        func list(_ key: String) -> [String]? { value[key]?.arrayValue?.compactMap { $0.stringValue?.uppercased() } }
        guard let everywhere = list("blockedEverywhereKeys"), let overrideOnly = list("blockedOverrideOnlyKeys"),
              let allowed = list("allowedInheritedOverrideOnlyKeys"), let prefixes = list("blockedPrefixes"),
              let overridePrefixes = list("blockedOverridePrefixes") else { return nil }
        blockedEverywhere = Set(everywhere)
        blockedOverrideOnly = Set(overrideOnly)
        allowedInheritedOverrideOnly = Set(allowed)
        blockedPrefixes = prefixes
        blockedOverridePrefixes = overridePrefixes
        blockedInherited = blockedEverywhere.union(blockedOverrideOnly.subtracting(allowedInheritedOverrideOnly))
    }

    /// upstream's `isDangerousHostEnvVarName` or `isDangerousHostEnvOverrideVarName` (with its
    /// `CARGO_TARGET_<triple>_LINKER|RUNNER` rule).
    public func refusesOverride(_ upper: String) -> Bool {
        blockedEverywhere.contains(upper) || blockedOverrideOnly.contains(upper)
            || blockedPrefixes.contains { upper.hasPrefix($0) } || blockedOverridePrefixes.contains { upper.hasPrefix($0) }
            || Self.isCargoTargetTool(upper)
    }

    /// upstream's `isDangerousHostInheritedEnvVarName`.
    public func stripsInherited(_ upper: String) -> Bool {
        blockedInherited.contains(upper) || blockedPrefixes.contains { upper.hasPrefix($0) }
    }

    /// `CARGO_TARGET_[A-Z0-9_]+_(LINKER|RUNNER)`.
    static func isCargoTargetTool(_ upper: String) -> Bool {
        guard upper.hasPrefix("CARGO_TARGET_") else { return false }
        for suffix in ["_LINKER", "_RUNNER"] where upper.hasSuffix(suffix) {
            let middle = upper.dropFirst("CARGO_TARGET_".count).dropLast(suffix.count)
            return !middle.isEmpty && middle.utf8.allSatisfy { ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
        }
        return false
    }
}
