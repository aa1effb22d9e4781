import Glibc
import OpenClawIPC

/// What the Supervisor asks of a worker's confinement (passed on the worker's command line).
public struct ConfinementOptions: Equatable, Sendable {
    /// The user to become when started as root (nil: the NetWorker's default / the
    /// ExecWorker keeps the Supervisor's user).
    public var user: String?
    /// Steps the operator turned off (`--unconfined`).
    public var optedOut: Set<ConfinementStep>
    /// TCP ports the NetWorker may connect to (the gateway's); empty = any (Landlock net off).
    public var connectPorts: [UInt16]
    /// The loopback port the NetWorker serves Prometheus metrics on: the one port it may bind.
    public var metricsPort: UInt16?

    public init(user: String? = nil, optedOut: Set<ConfinementStep> = [], connectPorts: [UInt16] = [],
                metricsPort: UInt16? = nil) {
        self.user = user
        self.optedOut = optedOut
        self.connectPorts = connectPorts
        self.metricsPort = metricsPort
    }

    /// The worker command-line form: `--user U --unconfined S … --connect-port P …`.
    public var arguments: [String] {
        var arguments: [String] = []
        if let user { arguments += ["--user", user] }
        for step in optedOut.sorted(by: { $0.rawValue < $1.rawValue }) { arguments += ["--unconfined", step.rawValue] }
        for port in connectPorts { arguments += ["--connect-port", String(port)] }
        if let metricsPort { arguments += ["--metrics-port", String(metricsPort)] }
        return arguments
    }

    /// Parses `arguments`; unknown words are left for the caller (returned).
    public static func parse(_ arguments: [String]) -> (ConfinementOptions, rest: [String]) {
        var options = ConfinementOptions()
        var rest: [String] = []
        var index = 0
        while index < arguments.count {
            let word = arguments[index]
            let value = index + 1 < arguments.count ? arguments[index + 1] : nil
            switch (word, value) {
            case let ("--user", value?): options.user = value; index += 2
            case let ("--unconfined", value?):
                if let step = ConfinementStep(rawValue: value) { options.optedOut.insert(step) }
                index += 2
            case let ("--connect-port", value?):
                if let port = UInt16(value) { options.connectPorts.append(port) }
                index += 2
            case let ("--metrics-port", value?):
                options.metricsPort = UInt16(value)
                index += 2
            default: rest.append(word); index += 1
            }
        }
        return (options, rest)
    }
}

/// The start-up sequence of each worker: user, capabilities, no_new_privs, Landlock,
/// seccomp — in that order, because each later step needs the earlier ones (dropping the
/// bounding set needs CAP_SETPCAP before the uid changes; seccomp and Landlock need
/// no_new_privs). Must run before the process creates any thread: every step but the uid
/// change applies to the calling thread only, and threads created later inherit it.
public enum WorkerConfinement {
    public enum Role: String, Sendable { case net, exec }

    /// Applies `role`'s confinement; the first failed step (not opted out) ends the sequence
    /// and is the report's `failure`.
    public static func apply(_ role: Role, _ options: ConfinementOptions) -> ConfinementReport {
        var report = ConfinementReport()
        func step(_ step: ConfinementStep, _ body: () throws(ConfinementFailure) -> (ConfinementReport.State, String?)) -> Bool {
            if options.optedOut.contains(step) {
                report.entries.append(.init(step: step, state: .optedOut))
                return true
            }
            do {
                let (state, detail) = try body()
                report.entries.append(.init(step: step, state: state, detail: detail))
                return true
            } catch {
                report.entries.append(.init(step: step, state: .failed, detail: error.description))
                return false
            }
        }

        let proceed = step(.user) { () throws(ConfinementFailure) in try becomeUser(role, options) }
            && step(.capabilities) { () throws(ConfinementFailure) in
                try Capabilities.dropBoundingSet()
                try Capabilities.clear()
                return (.active, Capabilities.boundingSetIsEmpty
                    ? "all sets empty, bounding set included"
                    : "effective/permitted/inheritable/ambient empty; bounding set kept (no CAP_SETPCAP; no_new_privs makes it unreachable)")
            }
            && step(.noNewPrivs) { () throws(ConfinementFailure) in
                try NoNewPrivileges.set()
                return (.active, nil)
            }
            && step(.landlock) { () throws(ConfinementFailure) in try landlock(role, options) }
            && step(.seccomp) { () throws(ConfinementFailure) in
                try seccomp(role).load()
                return (.active, role == .net ? "no exec, no processes, kernel attack surface denied" : "kernel attack surface denied (EPERM)")
            }
        _ = proceed
        return report
    }

    static func becomeUser(_ role: Role, _ options: ConfinementOptions) throws(ConfinementFailure) -> (ConfinementReport.State, String?) {
        guard UserIdentity.isRoot else {
            if let wanted = options.user, let user = UserIdentity.lookup(wanted), user.uid != geteuid() {
                throw ConfinementFailure(.user, "cannot switch to \(wanted): not started as root")
            }
            return (.notNeeded, "not started as root (uid \(geteuid()))")
        }
        let name = options.user ?? (role == .net ? ConfinementPolicy.defaultNetUser : nil)
        guard let name else { return (.notNeeded, "runs as the Supervisor's user (root)") }
        guard let user = UserIdentity.lookup(name) else { throw ConfinementFailure(.user, "no such user: \(name)") }
        if role == .net, user.uid == 0 { throw ConfinementFailure(.user, "the network worker may not run as root (\(name))") }
        // The bounding set can only shrink while we still hold CAP_SETPCAP, i.e. before the
        // uid change empties the permitted set.
        try Capabilities.dropBoundingSet()
        try user.become()
        return (.active, "\(name) (uid \(user.uid), gid \(user.gid))")
    }

    static func landlock(_ role: Role, _ options: ConfinementOptions) throws(ConfinementFailure) -> (ConfinementReport.State, String?) {
        guard role == .net else { return (.notNeeded, "commands need the filesystem (design §4)") }
        guard let abi = Landlock.abi() else {
            throw ConfinementFailure(.landlock, "Landlock is not available on this kernel", errno: errno)
        }
        let restrictPorts = !options.connectPorts.isEmpty
        let ruleset = try Landlock.Ruleset(abi: abi, handledFiles: .all(abi: abi),
                                           handledNet: restrictPorts ? [.bindTCP, .connectTCP] : [.bindTCP],
                                           scoped: [.abstractUnixSocket, .signal])
        for path in ConfinementPolicy.netReadablePaths { try ruleset.allow(path, .readOnly) }
        for port in Set(options.connectPorts + ConfinementPolicy.netExtraConnectPorts) where restrictPorts {
            try ruleset.allow(port: port, .connectTCP)
        }
        if let port = options.metricsPort { try ruleset.allow(port: port, .bindTCP) }
        try ruleset.restrictSelf()
        var detail = "ABI \(abi): read-only TLS/DNS/library paths, no writes"
        if abi >= 4 {
            detail += restrictPorts ? ", TCP connect to \(options.connectPorts.map(String.init).joined(separator: ",")) and 53 only" : ""
            detail += options.metricsPort.map { ", TCP bind to \($0) (metrics) only" } ?? ", no TCP bind"
        }
        if abi >= 6 { detail += ", no signals or abstract sockets outside" }
        return (.active, detail)
    }

    static func seccomp(_ role: Role) throws(ConfinementFailure) -> SeccompFilter {
        let filter = try SeccompFilter()
        for name in ConfinementPolicy.kernelAttackSurface { try filter.deny(name, .errno(EPERM)) }
        for flag in ConfinementPolicy.namespaceCloneFlags {
            try filter.deny("clone", errno: EPERM, whenArgument: 0, masked: flag, equals: flag)
        }
        // clone3 passes its flags in memory a filter cannot read: report "not implemented" so
        // libc falls back to clone, whose flags the rules above can see.
        try filter.deny("clone3", .errno(ENOSYS))
        if role == .net {
            for name in ConfinementPolicy.netNoProcesses { try filter.deny(name, .errno(EPERM)) }
            try filter.deny("clone", errno: EPERM, whenArgument: 0, masked: ConfinementPolicy.cloneThread, equals: 0)
        }
        return filter
    }
}
