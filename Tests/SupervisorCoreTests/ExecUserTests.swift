import Confinement
import XCTest

/// Issue 14 finding 1: who commands run as.
final class ExecUserTests: XCTestCase {
    let users: [String: UserIdentity] = [
        "root": UserIdentity(name: "root", uid: 0, gid: 0, home: "/root"),
        "toor": UserIdentity(name: "toor", uid: 0, gid: 0, home: "/root"),
        "nobody": UserIdentity(name: "nobody", uid: 65534, gid: 65534, home: "/nonexistent"),
        "openclaw": UserIdentity(name: "openclaw", uid: 999, gid: 995, home: "/var/lib/openclaw-node/home"),
        "alice": UserIdentity(name: "alice", uid: 1000, gid: 1000, home: "/home/alice"),
    ]

    func choose(_ requested: String?, isRoot: Bool = true, without missing: Set<String> = []) -> ExecUser {
        ExecUser.choose(requested: requested, isRoot: isRoot) { missing.contains($0) ? nil : self.users[$0] }
    }

    func testRootRunsCommandsAsTheDedicatedUser() {
        XCTAssertEqual(choose(nil), ExecUser(name: "openclaw"))
    }

    func testWithoutTheDedicatedUserCommandsRunAsNobodyWithAWarning() {
        let choice = choose(nil, without: ["openclaw"])
        XCTAssertEqual(choice.name, "nobody")
        XCTAssertEqual(choice.warning, "there is no user openclaw: commands run as nobody, which other services and, by default, "
                       + "the network and browser workers share (a command could signal them or read the browser's profile)")
        XCTAssertEqual(choice.fix, "create the dedicated user: useradd --system --user-group --home-dir /var/lib/openclaw-node/home "
                       + "--create-home --shell /usr/sbin/nologin openclaw (the .deb and `install --system` do this)")
    }

    func testUidZeroOnlyByExplicitChoiceAndAlwaysWarned() {
        for name in ["root", "toor"] {
            let choice = choose(name)
            XCTAssertEqual(choice.name, name)
            XCTAssertTrue(choice.warning?.hasPrefix("commands run as uid 0 (--exec-user \(name))") ?? false)
        }
        XCTAssertEqual(choose("alice"), ExecUser(name: "alice"))
    }

    func testADedicatedUserWithUidZeroIsNotUsed() {
        var users = self.users
        users["openclaw"] = UserIdentity(name: "openclaw", uid: 0, gid: 0, home: "/root")
        let choice = ExecUser.choose(requested: nil, isRoot: true) { users[$0] }
        XCTAssertEqual(choice.name, "nobody")
        XCTAssertTrue(choice.warning?.hasPrefix("the user openclaw has uid 0 and is not used: commands run as nobody") ?? false)
    }

    func testAnOptedOutUserStepIsWarnedAsUidZero() {
        let choice = ExecUser.choose(requested: nil, isRoot: true, keepsUid: true) { self.users[$0] }
        XCTAssertNil(choice.name)
        XCTAssertTrue(choice.warning?.hasPrefix("commands run as uid 0 (--unconfined user)") ?? false)
        XCTAssertEqual(ExecUser.choose(requested: nil, isRoot: false, keepsUid: true) { self.users[$0] }, ExecUser(name: nil))
    }

    func testNotRootKeepsTheOwnUid() {
        XCTAssertEqual(choose(nil, isRoot: false), ExecUser(name: nil))
        XCTAssertEqual(choose("alice", isRoot: false), ExecUser(name: "alice"))
    }
}
