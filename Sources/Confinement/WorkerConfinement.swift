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
    /// Directories the BrowserWorker (and its Chromium) may write beneath.
    public var writablePaths: [String]
    /// Files or directories the BrowserWorker may execute (the Chromium binary's directory).
    public var executablePaths: [String]
    /// The files worker's one request, which sets its Landlock rules (nil: none, so nothing
    /// beneath any path is allowed), and the folder those rules are about (the uploads' root).
    public var filesMode: FilesMode?
    public var filesRoot: String?

    public init(user: String? = nil, optedOut: Set<ConfinementStep> = [], connectPorts: [UInt16] = [],
                metricsPort: UInt16? = nil, writablePaths: [String] = [], executablePaths: [String] = [],
                filesMode: FilesMode? = nil, filesRoot: String? = nil) {
        self.filesMode = filesMode
        self.filesRoot = filesRoot
        self.user = user
        self.optedOut = optedOut
        self.connectPorts = connectPorts
        self.metricsPort = metricsPort
        self.writablePaths = writablePaths
        self.executablePaths = executablePaths
    }

    /// The worker command-line form: `--user U --unconfined S … --connect-port P …`.
    public var arguments: [String] {
        var arguments: [String] = []
        if let user { arguments += ["--user", user] }
        for step in optedOut.sorted(by: { $0.rawValue < $1.rawValue }) { arguments += ["--unconfined", step.rawValue] }
        for port in connectPorts { arguments += ["--connect-port", String(port)] }
        if let metricsPort { arguments += ["--metrics-port", String(metricsPort)] }
        for path in writablePaths { arguments += ["--write-path", path] }
        for path in executablePaths { arguments += ["--exec-path", path] }
        if let filesMode { arguments += ["--files-mode", filesMode.rawValue] }
        if let filesRoot { arguments += ["--files-root", filesRoot] }
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
            case let ("--write-path", value?): options.writablePaths.append(value); index += 2
            case let ("--exec-path", value?): options.executablePaths.append(value); index += 2
            case let ("--files-mode", value?): options.filesMode = FilesMode(rawValue: value); index += 2
            case let ("--files-root", value?): options.filesRoot = value; index += 2
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
    /// Applies `role`'s confinement; the first failed step (not opted out) ends the sequence
    /// and is the report's `failure`.
    public static func apply(_ role: WorkerRole, _ options: ConfinementOptions) -> ConfinementReport {
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
                switch role {
                case .net: return (.active, "no exec, no processes, kernel attack surface denied")
                case .exec: return (.active, "kernel attack surface denied (EPERM)")
                case .browser: return (.active, "kernel attack surface denied except the namespaces Chromium's sandbox needs")
                case .files: return (.active, "no exec, no processes, kernel attack surface denied")
                case .mcp: return (.active, "kernel attack surface denied (EPERM), inherited by every MCP server")
                }
            }
        _ = proceed
        return report
    }

    static func becomeUser(_ role: WorkerRole, _ options: ConfinementOptions) throws(ConfinementFailure) -> (ConfinementReport.State, String?) {
        guard UserIdentity.isRoot else {
            if let wanted = options.user, let user = UserIdentity.lookup(wanted), user.uid != geteuid() {
                throw ConfinementFailure(.user, "cannot switch to \(wanted): not started as root")
            }
            return (.notNeeded, "not started as root (uid \(geteuid()))")
        }
        // The Supervisor always names the exec user (`ExecUser.choose`); a worker started
        // without one still never keeps root by default.
        let name = options.user ?? ConfinementPolicy.defaultNetUser
        guard let user = UserIdentity.lookup(name) else { throw ConfinementFailure(.user, "no such user: \(name)") }
        // The files worker and the McpWorker are the exec user's hands (a listing, an upload,
        // an MCP server, as commands would see them): root only where commands are.
        if role != .exec, role != .files, role != .mcp, user.uid == 0 {
            throw ConfinementFailure(.user, "the \(role.rawValue) worker may not run as root (\(name))")
        }
        // The bounding set can only shrink while we still hold CAP_SETPCAP, i.e. before the
        // uid change empties the permitted set.
        try Capabilities.dropBoundingSet()
        try user.become()
        return (.active, "\(name) (uid \(user.uid), gid \(user.gid))")
    }

    static func landlock(_ role: WorkerRole, _ options: ConfinementOptions) throws(ConfinementFailure) -> (ConfinementReport.State, String?) {
        guard role != .exec else { return (.notNeeded, "commands need the filesystem (design §4)") }
        // With stdio servers the McpWorker starts programs that need the filesystem, as
        // commands do; with HTTP servers only it gets the NetWorker's rules for their ports.
        if role == .mcp, options.connectPorts.isEmpty { return (.notNeeded, "MCP stdio servers need the filesystem, as commands do") }
        guard let abi = Landlock.abi() else {
            throw ConfinementFailure(.landlock, "Landlock is not available on this kernel", errno: errno)
        }
        if role == .browser { return try browserLandlock(abi: abi, options) }
        if role == .files { return try filesLandlock(abi: abi, options) }
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

    /// Chromium (and everything it starts) reads the system, writes only its data and temp
    /// dirs, and executes only its own binary's directory. TCP stays open: it browses the web.
    static func browserLandlock(abi: Int, _ options: ConfinementOptions) throws(ConfinementFailure) -> (ConfinementReport.State, String?) {
        let ruleset = try Landlock.Ruleset(abi: abi, handledFiles: .all(abi: abi), handledNet: [],
                                           scoped: [.abstractUnixSocket, .signal])
        for path in ConfinementPolicy.browserReadablePaths { try ruleset.allow(path, .readOnly) }
        try ruleset.allow(ConfinementPolicy.browserProcWritable, [.readFile, .readDir, .writeFile])
        let writable: Landlock.FileAccess = Landlock.FileAccess.all(abi: abi).subtracting([.execute, .makeChar, .makeBlock])
        for path in ConfinementPolicy.browserWritablePaths + options.writablePaths { try ruleset.allow(path, writable) }
        for path in options.executablePaths + ConfinementPolicy.dynamicLoaders {
            try ruleset.allow(path, [.execute, .readFile, .readDir])
        }
        try ruleset.restrictSelf()
        let executables = options.executablePaths.isEmpty ? "nothing" : options.executablePaths.joined(separator: ",")
        return (.active, "ABI \(abi): executes \(executables) only; writes \(options.writablePaths.joined(separator: ",")) and /dev/shm only")
    }

    /// The files worker's one request: read directories (a listing), or create, read or remove
    /// beneath the uploads' root (staging, clean-up); no TCP at all, nothing executed.
    static func filesLandlock(abi: Int, _ options: ConfinementOptions) throws(ConfinementFailure) -> (ConfinementReport.State, String?) {
        let ruleset = try Landlock.Ruleset(abi: abi, handledFiles: .all(abi: abi), handledNet: [.bindTCP, .connectTCP],
                                           scoped: [.abstractUnixSocket, .signal])
        guard let mode = options.filesMode else {
            try ruleset.restrictSelf()
            return (.active, "ABI \(abi): no file access (no request named)")
        }
        let root = mode == .list ? "/" : (options.filesRoot ?? "/nonexistent")
        guard try ruleset.allow(root, ConfinementPolicy.filesAccess(mode)) else {
            throw ConfinementFailure(.landlock, "\(root) does not exist")
        }
        try ruleset.restrictSelf()
        return (.active, "ABI \(abi): \(ConfinementPolicy.filesAccessText(mode)) beneath \(root) only, no TCP")
    }

    /// A second Landlock layer a staging files worker adds once its folder exists: only new
    /// files in that folder (layers intersect, so the first layer's wider rights are gone).
    public static func restrictToStaging(_ directory: String) throws(ConfinementFailure) {
        guard let abi = Landlock.abi() else { throw ConfinementFailure(.landlock, "Landlock is not available on this kernel", errno: errno) }
        let ruleset = try Landlock.Ruleset(abi: abi, handledFiles: .all(abi: abi), handledNet: [], scoped: [])
        guard try ruleset.allow(directory, [.makeReg, .writeFile]) else { throw ConfinementFailure(.landlock, "\(directory) does not exist") }
        try ruleset.restrictSelf()
    }

    static func seccomp(_ role: WorkerRole) throws(ConfinementFailure) -> SeccompFilter {
        let filter = try SeccompFilter()
        // Chromium's own sandbox is built from user, PID and network namespaces and a chroot.
        let browserNeeds = role == .browser ? Set(ConfinementPolicy.browserSandboxCalls) : []
        for name in ConfinementPolicy.kernelAttackSurface where !browserNeeds.contains(name) {
            try filter.deny(name, .errno(EPERM))
        }
        for flag in ConfinementPolicy.namespaceCloneFlags where role != .browser {
            try filter.deny("clone", errno: EPERM, whenArgument: 0, masked: flag, equals: flag)
        }
        // clone3 passes its flags in memory a filter cannot read: report "not implemented" so
        // libc falls back to clone, whose flags the rules above can see.
        try filter.deny("clone3", .errno(ENOSYS))
        if role == .net || role == .files {
            for name in ConfinementPolicy.netNoProcesses { try filter.deny(name, .errno(EPERM)) }
            try filter.deny("clone", errno: EPERM, whenArgument: 0, masked: ConfinementPolicy.cloneThread, equals: 0)
        }
        return filter
    }
}
