import Glibc
import NodeSupport
import OpenClawIPC

/// A confinement step that could not be applied: which step, which call, which errno.
public struct ConfinementFailure: Error, Equatable, CustomStringConvertible, Sendable {
    public var step: ConfinementStep
    public var call: String
    public var errno: Int32?

    public init(_ step: ConfinementStep, _ call: String, errno: Int32? = nil) {
        self.step = step
        self.call = call
        self.errno = errno
    }

    public var description: String {
        guard let errno else { return call }
        return "\(call): \(SystemError.text(errno)) (errno \(errno))"
    }
}
