/// A skill bin trust entry (spec §5.5): the bin's name and the path it resolved to on the node.
struct SkillBin: Equatable, Sendable {
    var name: String
    var resolvedPath: String
}

/// The allowlist analysis of one `system.run` argv (`evaluateSystemRunAllowlist`, spec §3.5,
/// §5.3–5.6), including the argv that may run when the allowlist is satisfied.
///
/// Guarantees:
/// - `analysisOk == false` whenever anything could run that was not analysed: a blocked dispatch
///   wrapper, a shell wrapper with unsafe options or an untrusted shell binary, or a payload the
///   parser refuses. Then `allowlistSatisfied` is false, `executionArgv` and
///   `allowAlwaysPatterns` are nil, and `blockedReason` says why.
/// - `allowlistSatisfied` is true only if every segment is satisfied by a usable allowlist
///   pattern on its resolved path, by the safe-bin policy, or by a skill bin.
/// - `executionArgv` (set only when satisfied) runs exactly what was analysed and nothing else:
///   - plain command: the inner argv after dispatch wrappers, with argv[0] pinned to the
///     realpath of the resolved executable (as upstream's planned argv does). Wrappers are not
///     run, because a wrapper binary was never vetted and its own option parsing is the thing
///     that could drift from ours. The allowlist matched the path as found (e.g. `/bin/id`);
///     execution pins its realpath (`/usr/bin/id`), so a symlink swapped after analysis cannot
///     redirect it.
///   - shell payload: the argv from the shell (or busybox) executable on, with that executable
///     pinned to its resolved path, and the payload rebuilt so each segment satisfied only by
///     the safe-bin policy becomes its resolved path plus arguments, every token single-quoted
///     (attack class 3). Other segments keep their original text.
/// - `allowAlwaysPatterns` lists, per segment, the resolved path of the inner executable after
///   unwrapping (deduplicated; unresolved segments contribute nothing). It is nil when analysis
///   failed or a segment's executable is a shell or busybox/toybox, whose path would authorise
///   arbitrary code (attack class 5).
public struct AllowlistEvaluation: Equatable, Sendable {
    /// One analysed command.
    public struct Segment: Equatable, Sendable {
        /// The command as written (payload words after quote removal, or the plain argv).
        public var argv: [String]
        /// `argv` without its dispatch wrappers: the command the wrappers would exec.
        public var effectiveArgv: [String]
        public var wrappers: [DispatchWrapper]
        /// `env NAME=VALUE` assignments; callers must check the keys against the env policy.
        public var envAssignments: [EnvAssignment]
        public var resolvedPath: String?
        public var matchedPattern: String?
        /// The matched entry's `argPattern` (nil: a path-only entry).
        public var matchedArgPattern: String?
        /// The arguments are exactly these words (no shell expansion left): only then can an
        /// argPattern admit them or an allow-always bind them.
        public var argumentsExact: Bool = true
        public var satisfiedBySafeBin: Bool
        public var satisfiedBySkill: Bool
        public var satisfied: Bool
        /// `InlineEval.detect` of this command, for `strictInlineEval`.
        public var inlineEval: String?
    }

    public var analysisOk: Bool
    public var allowlistSatisfied: Bool
    public var segments: [Segment]
    /// Set when argv is a shell wrapper with a payload.
    public var shell: ShellInvocation?
    /// Why analysis failed closed; nil when `analysisOk`.
    public var blockedReason: String?
    public var executionArgv: [String]?
    public var allowAlwaysPatterns: [String]?
    /// What allow-always writes: each segment's path bound to its exact arguments.
    public var allowAlwaysGrants: [AllowlistRule]? = nil

    /// `probe` answers every file-system question the analysis asks (where a word is found,
    /// whether it may run, its realpath); by default the real file system.
    public static func evaluate(
        argv: [String], cwd: String?, pathEnv: String, home: String?, allowlist: [AllowlistRule],
        safeBins: SafeBinPolicy, skillBins: [(name: String, resolvedPath: String)],
        probe: any FileProbe = SystemFileProbe()
    ) -> AllowlistEvaluation {
        let context = Context(
            cwd: cwd, pathEnv: pathEnv, home: home, allowlist: allowlist, safeBins: safeBins,
            skillBins: skillBins.map { SkillBin(name: $0.name, resolvedPath: $0.resolvedPath) }, probe: probe)
        guard !argv.isEmpty else { return .failed("command required") }
        switch ShellWrapper.analyze(argv) {
        case .blocked(let reason): return .failed(reason)
        case .invocation(let shell): return context.evaluateShell(argv, shell)
        case .none: return context.evaluatePlain(argv)
        }
    }

    static func failed(_ reason: String, shell: ShellInvocation? = nil) -> AllowlistEvaluation {
        AllowlistEvaluation(
            analysisOk: false, allowlistSatisfied: false, segments: [], shell: shell, blockedReason: reason,
            executionArgv: nil, allowAlwaysPatterns: nil)
    }
}

private struct Context {
    var cwd: String?
    var pathEnv: String
    var home: String?
    var allowlist: [AllowlistRule]
    var safeBins: SafeBinPolicy
    var skillBins: [SkillBin]
    var probe: any FileProbe

    func evaluatePlain(_ argv: [String]) -> AllowlistEvaluation {
        let inner: [String], wrappers: [DispatchWrapper], env: [EnvAssignment]
        switch DispatchWrappers.unwrap(argv) {
        case .blocked(let reason): return .failed(reason)
        case .plain(let argv, let chain, let assignments): (inner, wrappers, env) = (argv, chain, assignments)
        }
        let segment = analyse(argv: argv, inner: inner, wrappers: wrappers, env: env, trustedExecutableText: true)
        var executionArgv: [String]?
        if segment.satisfied {
            if let resolved = segment.resolvedPath {
                executionArgv = [probe.realpath(resolved) ?? resolved] + inner.dropFirst()
            } else {
                executionArgv = inner  // only the bare "*" pattern satisfies an unresolved command
            }
        }
        return AllowlistEvaluation(
            analysisOk: true, allowlistSatisfied: segment.satisfied, segments: [segment], shell: nil,
            blockedReason: nil, executionArgv: executionArgv, allowAlwaysPatterns: persistablePatterns([segment]),
            allowAlwaysGrants: persistableGrants([segment]))
    }

    func evaluateShell(_ argv: [String], _ shell: ShellInvocation) -> AllowlistEvaluation {
        // The shell binary runs the payload, so it must be one we trust, not merely named "sh".
        guard let shellPath = ExecutableResolver.resolve(argv[shell.executableIndex], cwd: cwd, pathEnv: pathEnv, probe: probe),
              isTrustedLauncher(shellPath)
        else {
            return .failed("shell \(argv[shell.executableIndex]) is not a trusted executable", shell: shell)
        }
        let parsed: [ShellSegment]
        switch ShellPayloadParser.analyze(shell.payload) {
        case .failure(let error): return .failed(error.reason, shell: shell)
        case .success(let segments): parsed = segments
        }
        var segments: [AllowlistEvaluation.Segment] = []
        for shellSegment in parsed {
            let words = shellSegment.argv
            let inner: [String], wrappers: [DispatchWrapper], env: [EnvAssignment]
            switch DispatchWrappers.unwrap(words) {
            case .blocked(let reason): return .failed(reason, shell: shell)
            case .plain(let argv, let chain, let assignments): (inner, wrappers, env) = (argv, chain, assignments)
            }
            // Words the shell may rewrite cannot name the executable or shape a wrapper chain:
            // `timeout {5,/tmp/x} id` or `$X/id` would run something other than what we read.
            let commandIndex = words.count - inner.count
            // The shell itself may run the command word (no wrapper in front, or only `time`).
            if let reason = ShellBuiltins.refusal(shellSegment, commandIndex: commandIndex) { return .failed(reason, shell: shell) }
            let literal = !shellSegment.tokens[...commandIndex].contains(where: \.hasExpansion)
            // Arguments the shell still expands (`$1`, `${IFS}`, `*`) are not what an argPattern or
            // an argv-bound grant read: such a segment meets only path-only entries. (Positional
            // words after the payload reach the command only through such an expansion.)
            let argumentsExpand = shellSegment.tokens.contains(where: \.hasExpansion)
            var segment = analyse(argv: words, inner: inner, wrappers: wrappers, env: env, trustedExecutableText: literal,
                                  argumentsExact: !argumentsExpand)
            // Wrappers inside a payload really run (found on the shell's PATH), so vet them too.
            let wrappersTrusted = wrappers.allSatisfy { wrapper in
                ExecutableResolver.resolve(words[wrapper.index], cwd: cwd, pathEnv: pathEnv, probe: probe).map(isTrustedLauncher) ?? false
            }
            if !wrappersTrusted { segment.satisfied = false }
            segments.append(segment)
        }
        let satisfied = segments.allSatisfy(\.satisfied)
        var executionArgv: [String]?
        if satisfied {
            var replacements: [Int: String] = [:]
            for (index, segment) in segments.enumerated() where segment.needsQuoting {
                replacements[index] = SafeBinPolicy.quoted([segment.resolvedPath!] + segment.effectiveArgv.dropFirst())
            }
            var transport = Array(argv[shell.executableIndex...])
            transport[0] = shellPath
            if !replacements.isEmpty {
                transport[shell.payloadIndex - shell.executableIndex] = ShellPayloadParser.render(parsed, replacements: replacements)
            }
            executionArgv = transport
        }
        return AllowlistEvaluation(
            analysisOk: true, allowlistSatisfied: satisfied, segments: segments, shell: shell, blockedReason: nil,
            executionArgv: executionArgv, allowAlwaysPatterns: persistablePatterns(segments),
            allowAlwaysGrants: persistableGrants(segments))
    }

    /// Resolves and judges one command. `trustedExecutableText` is false when the shell could
    /// rewrite the executable or wrapper words; then only the bare `*` pattern can satisfy it.
    func analyse(argv: [String], inner: [String], wrappers: [DispatchWrapper], env: [EnvAssignment],
                 trustedExecutableText: Bool, argumentsExact: Bool = true) -> AllowlistEvaluation.Segment
    {
        let resolved = trustedExecutableText
            ? inner.first.flatMap { ExecutableResolver.resolve($0, cwd: cwd, pathEnv: pathEnv, probe: probe) }
            : nil
        let rule = matchingRule(resolved, argv: trustedExecutableText && argumentsExact ? inner : nil)
        let pattern = rule?.pattern
        let bySafeBin = safeBins.permits(argv: inner, resolvedPath: resolved)
        let bySkill = resolved.map { path in
            skillBins.contains { $0.resolvedPath == path && $0.name == ExecutableResolver.basename(path) }
        } ?? false
        return AllowlistEvaluation.Segment(
            argv: argv, effectiveArgv: inner, wrappers: wrappers, envAssignments: env, resolvedPath: resolved,
            matchedPattern: pattern, matchedArgPattern: rule?.argPattern, argumentsExact: trustedExecutableText && argumentsExact,
            satisfiedBySafeBin: bySafeBin, satisfiedBySkill: bySkill,
            satisfied: pattern != nil || bySafeBin || bySkill, inlineEval: InlineEval.detect(argv))
    }

    /// upstream's `matchAllowlist`: a bare manual `*` matches even an unresolved command; then
    /// the first entry whose path pattern matches and whose `argPattern` admits `argv` wins over
    /// a path-only manual entry (the fallback). Generated (allow-always) entries count only
    /// with an argv-bound hash: old path-only grants are ignored, as upstream ignores them.
    func matchingRule(_ resolved: String?, argv: [String]?) -> AllowlistRule? {
        if let star = allowlist.first(where: { $0.pattern.trimmingWhitespace() == "*" && $0.argPattern == nil && !$0.generated }) {
            return star
        }
        guard let resolved else { return nil }
        var pathOnly: AllowlistRule?
        for rule in allowlist where AllowlistGlob.isUsable(rule.pattern) && rule.pattern.trimmingWhitespace() != "*" {
            guard AllowlistGlob.matches(pattern: rule.pattern, path: resolved, home: home) else { continue }
            guard let argPattern = rule.argPattern else {
                if !rule.generated, pathOnly == nil { pathOnly = rule }
                continue
            }
            if rule.generated, !argPattern.hasPrefix(ArgPattern.argvPrefix), !argPattern.hasPrefix(ArgPattern.cwdArgvPrefix) { continue }
            if let argv, ArgPattern.matches(argPattern, argv: argv, cwd: cwd) { return rule }
        }
        return pathOnly
    }

    /// A binary that will execute other code for us (the shell, a wrapper inside a payload) must
    /// live in a trusted directory or be allowlisted itself.
    func isTrustedLauncher(_ path: String) -> Bool {
        safeBins.isTrusted(path) || matchingRule(path, argv: nil) != nil
    }

    func persistablePatterns(_ segments: [AllowlistEvaluation.Segment]) -> [String]? {
        persistableGrants(segments).map { grants in grants.reduce(into: []) { if !$0.contains($1.pattern) { $0.append($1.pattern) } } }
    }

    /// What allow-always writes for each segment: its executable's path, bound to the exact
    /// arguments it ran with (`sha256:argv:…`, upstream-2026 §1.5). Nil for shells and
    /// multiplexers, which no pattern can bind.
    func persistableGrants(_ segments: [AllowlistEvaluation.Segment]) -> [AllowlistRule]? {
        var grants: [AllowlistRule] = []
        for segment in segments {
            // Arguments the shell expands cannot be bound: no grant (allow-always then remembers
            // the exact command text instead).
            guard segment.argumentsExact else { return [] }
            guard let path = segment.resolvedPath else { continue }
            let name = ExecutableResolver.basename(path)
            if ShellWrapper.shells.contains(name) || ShellWrapper.multiplexers.contains(name) { return nil }
            let grant = AllowlistRule(pattern: path, argPattern: ArgPattern.argvHash(segment.effectiveArgv), generated: true)
            if !grants.contains(grant) { grants.append(grant) }
        }
        return grants
    }
}

extension AllowlistEvaluation.Segment {
    /// Satisfied only because it is a safe bin: its words must not reach the shell unquoted.
    var needsQuoting: Bool { satisfiedBySafeBin && matchedPattern == nil && !satisfiedBySkill }
}
