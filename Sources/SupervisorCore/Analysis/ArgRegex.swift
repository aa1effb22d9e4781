/// An `argPattern` regex (ECMAScript syntax, no flags, `test()` semantics: a search) compiled
/// for a linear-time matcher: a Thompson NFA run as a Pike VM, so a match takes time linear in
/// the subject times the program, whatever the pattern. On top of that, upstream's refusal of
/// patterns that backtracking engines blow up on (`unsafe-nested-repetition`: a quantifier on
/// something that already repeats, an unbounded repeat of overlapping alternatives, adjacent
/// unbounded repeats of the same atom) is applied, so an entry behaves as upstream's would.
///
/// As JavaScript without the `u` flag, the subject is read as UTF-16 code units (`.` is one
/// unit, so an emoji is two), never as Unicode scalars.
///
/// Not supported, and so refused as `invalid-regex` (fail closed): backreferences, lookaround,
/// scalars outside the BMP in the pattern, patterns longer than `maxSource` scalars or nested
/// deeper than `maxDepth` groups, and programs larger than `maxProgram` instructions
/// (`a{1000}{1000}`). A quantifier JavaScript refuses (`a{5,2}`, `^*`, `\b+`) or one past
/// `maxCount` makes the whole pattern invalid, never a pattern without it.
public struct ArgRegex: Sendable {
    /// Why a pattern is refused (upstream's `SafeRegexRejectReason` for exec).
    public enum Refusal: String, Error, Sendable, Equatable {
        case unsafeNestedRepetition = "unsafe-nested-repetition"
        case invalidRegex = "invalid-regex"
    }

    static let maxProgram = 4_000
    static let maxCount = 1_000
    static let maxSource = 1_024
    static let maxDepth = 64
    /// Instructions times subject scalars one search may visit: past it the entry does not
    /// match (fail closed), so a match's time has a fixed bound whatever the argv.
    static let maxWork = 8_000_000

    fileprivate let program: [Instruction]

    /// The pattern compiled, or nil when it is refused (`refusal(_:)` says why).
    public init?(_ source: String) {
        guard case let .success(program) = Self.compile(source) else { return nil }
        self.program = program
    }

    /// Why `source` cannot be used (nil: it can).
    public static func refusal(_ source: String) -> Refusal? {
        if case let .failure(refusal) = compile(source) { return refusal }
        return nil
    }

    static func compile(_ source: String) -> Result<[Instruction], Refusal> {
        let scalars = Array(source.unicodeScalars)
        guard scalars.count <= maxSource, !scalars.contains(where: { $0.value > 0xFFFF }) else { return .failure(.invalidRegex) }
        var parser = Parser(scalars)
        guard let node = parser.parseAlternation(), parser.atEnd, !parser.failed else { return .failure(.invalidRegex) }
        if node.isDangerous { return .failure(.unsafeNestedRepetition) }
        var emitter = Emitter()
        guard emitter.emit(node), emitter.program.count < maxProgram else { return .failure(.invalidRegex) }
        emitter.program.append(.match)
        return .success(emitter.program)
    }

    /// `RegExp.prototype.test`: whether the pattern matches anywhere in `subject`.
    public func search(_ subject: String) -> Bool {
        let input = subject.utf16.map(UInt32.init)
        guard program.count * (input.count + 1) <= Self.maxWork else { return false }
        var current = ThreadSet(count: program.count)
        var next = ThreadSet(count: program.count)
        var stack: [Int] = []
        stack.reserveCapacity(program.count)
        for position in 0...input.count {
            // A new thread may start at every position (an unanchored search).
            if add(0, at: position, input, to: &current, stack: &stack) { return true }
            guard position < input.count else { break }
            let scalar = input[position]
            next.clear()
            for pc in current.list {
                if case let .char(set) = program[pc], set.contains(scalar), add(pc + 1, at: position + 1, input, to: &next, stack: &stack) {
                    return true
                }
            }
            swap(&current, &next)
        }
        return false
    }

    /// Follows the epsilon edges from `pc` at `position`; true when a match is reached.
    private func add(_ pc: Int, at position: Int, _ input: [UInt32], to set: inout ThreadSet, stack: inout [Int]) -> Bool {
        stack.removeAll(keepingCapacity: true)
        stack.append(pc)
        while let pc = stack.popLast() {
            guard set.insert(pc) else { continue }
            switch program[pc] {
            case .match: return true
            case .char: break
            case let .jump(target): stack.append(target)
            case let .split(first, second): stack.append(second); stack.append(first)
            case .lineStart: if position == 0 { stack.append(pc + 1) }
            case .lineEnd: if position == input.count { stack.append(pc + 1) }
            case let .wordBoundary(expected):
                let before = position > 0 && CharSet.word.contains(input[position - 1])
                let after = position < input.count && CharSet.word.contains(input[position])
                if (before != after) == expected { stack.append(pc + 1) }
            }
        }
        return false
    }
}

// MARK: Program

enum Instruction: Sendable {
    case char(CharSet)
    case split(Int, Int)
    case jump(Int)
    case lineStart, lineEnd
    case wordBoundary(Bool)
    case match
}

/// The threads at one position (a sparse set: insertion order kept, no duplicates).
struct ThreadSet {
    private var seen: [Bool]
    private(set) var list: [Int] = []

    init(count: Int) { seen = Array(repeating: false, count: count) }

    mutating func insert(_ pc: Int) -> Bool {
        guard !seen[pc] else { return false }
        seen[pc] = true
        list.append(pc)
        return true
    }

    mutating func clear() {
        for pc in list { seen[pc] = false }
        list.removeAll(keepingCapacity: true)
    }
}

/// A set of UTF-16 code units: ranges, classes, negation.
struct CharSet: Sendable {
    var ranges: [ClosedRange<UInt32>] = []
    var negated = false

    func contains(_ unit: UInt32) -> Bool {
        ranges.contains { $0.contains(unit) } != negated
    }

    static let digit = CharSet(ranges: [48...57])
    static let word = CharSet(ranges: [48...57, 65...90, 95...95, 97...122])
    static let space = CharSet(ranges: [9...13, 32...32, 0xA0...0xA0, 0x1680...0x1680, 0x2000...0x200A, 0x2028...0x2029,
                                        0x202F...0x202F, 0x205F...0x205F, 0x3000...0x3000, 0xFEFF...0xFEFF])
    /// `.`: anything but a line terminator.
    static let dot = CharSet(ranges: [10...10, 13...13, 0x2028...0x2029], negated: true)

    var inverted: CharSet { CharSet(ranges: ranges, negated: !negated) }
}

// MARK: Syntax tree

indirect enum Node {
    case empty
    case set(CharSet, literal: UInt32?)
    case concat([Node])
    case alternation([Node])
    case group(Node)
    case repeated(Node, min: Int, max: Int?)
    case lineStart, lineEnd, wordBoundary(Bool)

    var repeats: Bool {
        switch self {
        case .repeated: return true
        case let .group(inner): return inner.repeats
        case let .concat(nodes), let .alternation(nodes): return nodes.contains(where: \.repeats)
        default: return false
        }
    }

    /// upstream's `unsafe-nested-repetition`, in the three shapes it names.
    var isDangerous: Bool {
        switch self {
        case let .repeated(inner, _, max):
            if inner.repeats { return true }  // (a+)+, (.*a){25}
            if max == nil, let alternatives = inner.alternatives, Self.overlap(alternatives) { return true }  // (a|aa)+
            return inner.isDangerous
        case let .group(inner): return inner.isDangerous
        case let .alternation(nodes): return nodes.contains(where: \.isDangerous)
        case let .concat(nodes):
            if nodes.contains(where: \.isDangerous) { return true }
            // a*a*, (a|b)*(b|c)*: adjacent unbounded repeats with overlapping atoms, with only
            // optional atoms between them.
            var previous: Node?
            for node in nodes {
                if case let .repeated(inner, _, nil) = node {
                    if case let .repeated(before, _, nil)? = previous, Self.mayOverlap(before, inner) { return true }
                    previous = node
                } else if case let .repeated(_, 0, _) = node {
                    continue
                } else if case .empty = node {
                    continue
                } else {
                    previous = nil
                }
            }
            return false
        default: return false
        }
    }

    var alternatives: [Node]? {
        switch self {
        case let .group(inner): return inner.alternatives
        case let .alternation(nodes): return nodes
        default: return nil
        }
    }

    /// The literal text of a node made of literals only.
    var literal: [UInt32]? {
        switch self {
        case let .set(_, literal?): return [literal]
        case let .group(inner): return inner.literal
        case let .concat(nodes):
            var text: [UInt32] = []
            for node in nodes {
                guard let part = node.literal else { return nil }
                text += part
            }
            return text
        case .empty: return []
        default: return nil
        }
    }

    /// Alternatives overlap unless their first scalars are disjoint, or they are literals of
    /// which none is a prefix of another.
    static func overlap(_ alternatives: [Node]) -> Bool {
        let firsts = alternatives.compactMap(\.firstSet)
        if firsts.count == alternatives.count, !alternatives.contains(where: \.canBeEmpty) {
            var disjoint = true
            for i in firsts.indices { for j in firsts.indices where i < j && mayShare(firsts[i], firsts[j]) { disjoint = false } }
            if disjoint { return false }
        }
        let literals = alternatives.compactMap(\.literal)
        guard literals.count == alternatives.count, !literals.contains(where: \.isEmpty) else { return true }
        for (i, a) in literals.enumerated() {
            for (j, b) in literals.enumerated() where i != j && a.count <= b.count && Array(b.prefix(a.count)) == a { return true }
        }
        return false
    }

    /// Two repeated atoms may match the same text.
    static func mayOverlap(_ a: Node, _ b: Node) -> Bool {
        guard let first = a.firstSet, let second = b.firstSet else { return true }
        return mayShare(first, second)
    }

    /// Sets sharing a scalar, probed on ASCII and a few others (upstream's probe); a negated
    /// set is assumed to share.
    static func mayShare(_ first: CharSet, _ second: CharSet) -> Bool {
        if first.negated || second.negated { return true }
        let probes = (0...127).compactMap(Unicode.Scalar.init) + ["\u{A0}", "é", "中"].compactMap { $0.unicodeScalars.first }
        return probes.contains { first.contains($0.value) && second.contains($0.value) }
    }

    /// Whether the node can match the empty string.
    var canBeEmpty: Bool {
        switch self {
        case .empty, .lineStart, .lineEnd, .wordBoundary: return true
        case .set: return false
        case let .group(inner): return inner.canBeEmpty
        case let .concat(nodes): return nodes.allSatisfy(\.canBeEmpty)
        case let .alternation(nodes): return nodes.contains(where: \.canBeEmpty)
        case let .repeated(inner, minimum, _): return minimum == 0 || inner.canBeEmpty
        }
    }

    /// What the node's first scalar may be, when that is one set (nil: not known).
    var firstSet: CharSet? {
        switch self {
        case let .set(set, _): return set
        case let .group(inner): return inner.firstSet
        case let .alternation(nodes):
            let sets = nodes.compactMap(\.firstSet)
            guard sets.count == nodes.count, !sets.contains(where: \.negated) else { return nil }
            return CharSet(ranges: sets.flatMap(\.ranges))
        case let .concat(nodes): return nodes.first?.firstSet
        default: return nil
        }
    }
}

// MARK: Parser

struct Parser {
    let source: [Unicode.Scalar]
    var index = 0
    /// Set where JavaScript raises a SyntaxError the recursive descent cannot report by nil alone
    /// (a quantifier that is not a literal brace): the whole pattern is then invalid.
    var failed = false
    var depth = 0

    init(_ source: [Unicode.Scalar]) { self.source = source }

    var atEnd: Bool { index == source.count }
    var peek: Unicode.Scalar? { index < source.count ? source[index] : nil }

    mutating func take(_ scalar: Unicode.Scalar) -> Bool {
        guard peek == scalar else { return false }
        index += 1
        return true
    }

    mutating func parseAlternation() -> Node? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= ArgRegex.maxDepth else { return nil }
        var branches: [Node] = []
        repeat {
            guard let branch = parseConcat() else { return nil }
            branches.append(branch)
        } while take("|")
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    mutating func parseConcat() -> Node? {
        var nodes: [Node] = []
        while let scalar = peek, scalar != "|", scalar != ")" {
            guard var atom = parseAtom() else { return nil }
            while let quantified = parseQuantifier(atom) {
                // A second quantifier directly on a quantifier (`a**`) is a syntax error in JS.
                if case .repeated = atom { return nil }
                atom = quantified
            }
            if failed { return nil }
            nodes.append(atom)
        }
        return nodes.count == 1 ? nodes[0] : (nodes.isEmpty ? .empty : .concat(nodes))
    }

    mutating func parseQuantifier(_ atom: Node) -> Node? {
        guard let scalar = peek else { return nil }
        var bounds: (Int, Int?)
        switch scalar {
        case "*": bounds = (0, nil); index += 1
        case "+": bounds = (1, nil); index += 1
        case "?": bounds = (0, 1); index += 1
        case "{":
            let save = index
            index += 1
            guard let low = number() else { index = save; return nil }
            var high: Int? = low
            if take(",") { high = number() }
            guard take("}") else { index = save; return nil }
            // `{5,2}` is a SyntaxError in JS; past maxCount it is not supported. Either way the
            // braces were a quantifier, so the pattern is invalid (never `a` without it).
            if let high, high < low { failed = true; return nil }
            guard low <= ArgRegex.maxCount, (high ?? 0) <= ArgRegex.maxCount else { failed = true; return nil }
            bounds = (low, high)
        default: return nil
        }
        _ = take("?")  // lazy: the same language, so the same search result
        switch atom {
        case .lineStart, .lineEnd, .wordBoundary: failed = true; return nil  // "Nothing to repeat"
        default: return .repeated(atom, min: bounds.0, max: bounds.1)
        }
    }

    mutating func number() -> Int? {
        var value = 0
        var digits = 0
        while let scalar = peek, ("0"..."9").contains(scalar) {
            value = min(value * 10 + Int(scalar.value - 48), 1_000_000)
            digits += 1
            index += 1
        }
        return digits > 0 ? value : nil
    }

    mutating func parseAtom() -> Node? {
        guard let scalar = peek else { return nil }
        index += 1
        switch scalar {
        case "^": return .lineStart
        case "$": return .lineEnd
        case ".": return .set(.dot, literal: nil)
        case "(":
            if take("?") {
                if take(":") {
                } else if take("<"), peek != "=", peek != "!" {
                    while let name = peek, name != ">" { index += 1 }
                    guard take(">") else { return nil }
                } else {
                    return nil  // lookaround: not supported (never matches)
                }
            }
            guard let inner = parseAlternation(), take(")") else { return nil }
            return .group(inner)
        case "[": return parseClass()
        case "\\": return parseEscape(inClass: false).map { set, literal in .set(set, literal: literal) } ?? parseAssertionEscape()
        case "*", "+", "?", ")", "|": return nil
        default:
            // Any other scalar is itself; JS (without u) reads a lone `{`, `}` or `]` so too.
            return .set(CharSet(ranges: [scalar.value...scalar.value]), literal: scalar.value)
        }
    }

    mutating func parseAssertionEscape() -> Node? {
        // parseEscape did not consume it: \b, \B (anything else was refused there).
        guard let scalar = peek else { return nil }
        index += 1
        switch scalar {
        case "b": return .wordBoundary(true)
        case "B": return .wordBoundary(false)
        default: return nil
        }
    }

    /// An escape after `\`: a set (and its literal scalar when it is one), or nil when it is an
    /// assertion (\b, \B, not consumed) or unsupported (backreferences, \p{…}, \c).
    mutating func parseEscape(inClass: Bool) -> (CharSet, UInt32?)? {
        guard let scalar = peek else { return nil }
        func single(_ value: UInt32) -> (CharSet, UInt32?) { (CharSet(ranges: [value...value]), value) }
        switch scalar {
        case "b" where !inClass, "B" where !inClass: return nil
        case "b": index += 1; return single(8)
        case "d": index += 1; return (.digit, nil)
        case "D": index += 1; return (CharSet.digit.inverted, nil)
        case "w": index += 1; return (.word, nil)
        case "W": index += 1; return (CharSet.word.inverted, nil)
        case "s": index += 1; return (.space, nil)
        case "S": index += 1; return (CharSet.space.inverted, nil)
        case "t": index += 1; return single(9)
        case "n": index += 1; return single(10)
        case "v": index += 1; return single(11)
        case "f": index += 1; return single(12)
        case "r": index += 1; return single(13)
        case "0": index += 1; return single(0)
        case "x":
            index += 1
            guard let value = hex(2) else { return single(UInt32(("x" as Unicode.Scalar).value)) }
            return single(value)
        case "u":
            index += 1
            guard let value = hex(4) else { return single(UInt32(("u" as Unicode.Scalar).value)) }
            return single(value)
        case "1"..."9", "p", "P", "c", "k":
            return nil  // backreferences, properties, controls: not supported
        default:
            index += 1
            return single(scalar.value)  // an identity escape (\. \/ \- …)
        }
    }

    mutating func hex(_ count: Int) -> UInt32? {
        guard index + count <= source.count else { return nil }
        var value: UInt32 = 0
        for scalar in source[index..<(index + count)] {
            guard let digit = Int(String(scalar), radix: 16) else { return nil }
            value = value * 16 + UInt32(digit)
        }
        index += count
        return value
    }

    mutating func parseClass() -> Node? {
        var set = CharSet()
        if take("^") { set.negated = true }
        while let scalar = peek, scalar != "]" {
            guard let low = classAtom() else { return nil }
            if peek == "-", index + 1 < source.count, source[index + 1] != "]" {
                index += 1
                guard let high = classAtom() else { return nil }
                guard let from = low.single, let to = high.single, from <= to else { return nil }
                set.ranges.append(from...to)
            } else {
                set.ranges += low.set.negated ? Self.complement(low.set.ranges) : low.set.ranges
            }
        }
        guard take("]") else { return nil }
        return .set(set, literal: nil)
    }

    struct ClassAtom {
        var set: CharSet
        var single: UInt32?
    }

    mutating func classAtom() -> ClassAtom? {
        guard let scalar = peek else { return nil }
        index += 1
        guard scalar == "\\" else { return ClassAtom(set: CharSet(ranges: [scalar.value...scalar.value]), single: scalar.value) }
        guard let (set, literal) = parseEscape(inClass: true) else { return nil }
        return ClassAtom(set: set, single: literal)
    }

    static func complement(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var result: [ClosedRange<UInt32>] = []
        var next: UInt32 = 0
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if range.lowerBound > next { result.append(next...(range.lowerBound - 1)) }
            next = max(next, range.upperBound &+ 1)
        }
        if next <= 0x10FFFF { result.append(next...0x10FFFF) }
        return result
    }
}

// MARK: Emitter

struct Emitter {
    var program: [Instruction] = []

    /// False when the program would grow past `ArgRegex.maxProgram`.
    mutating func emit(_ node: Node) -> Bool {
        guard program.count < ArgRegex.maxProgram else { return false }
        switch node {
        case .empty: return true
        case let .set(set, _): program.append(.char(set)); return true
        case .lineStart: program.append(.lineStart); return true
        case .lineEnd: program.append(.lineEnd); return true
        case let .wordBoundary(expected): program.append(.wordBoundary(expected)); return true
        case let .group(inner): return emit(inner)
        case let .concat(nodes):
            for node in nodes where !emit(node) { return false }
            return true
        case let .alternation(branches):
            var jumps: [Int] = []
            for (offset, branch) in branches.enumerated() {
                if offset < branches.count - 1 {
                    let split = program.count
                    program.append(.split(split + 1, -1))
                    guard emit(branch) else { return false }
                    jumps.append(program.count)
                    program.append(.jump(-1))
                    program[split] = .split(split + 1, program.count)
                } else {
                    guard emit(branch) else { return false }
                }
            }
            for jump in jumps { program[jump] = .jump(program.count) }
            return true
        case let .repeated(inner, minimum, maximum):
            for _ in 0..<minimum where !emit(inner) { return false }
            if let maximum {
                var splits: [Int] = []
                for _ in minimum..<max(minimum, maximum) {
                    splits.append(program.count)
                    program.append(.split(program.count + 1, -1))
                    guard emit(inner) else { return false }
                }
                for split in splits { program[split] = .split(split + 1, program.count) }
            } else {
                let split = program.count
                program.append(.split(split + 1, -1))
                guard emit(inner) else { return false }
                program.append(.jump(split))
                program[split] = .split(split + 1, program.count)
            }
            return true
        }
    }
}
