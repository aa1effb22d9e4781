import OpenClawIPC
import XCTest

@testable import SupervisorCore

final class SystemdUnitTests: XCTestCase {
    func unit(_ scope: SystemdUnit.Scope = .user, arguments: [String] = ["/usr/bin/openclaw-node", "run", "--host", "gw.lan", "--port", "18789"],
              environment: [(key: String, value: String)] = [("OPENCLAW_STATE_DIR", "/srv/node state")]) -> SystemdUnit {
        SystemdUnit(scope: scope, version: "0.1.0", programArguments: arguments, environment: environment,
                    environmentFile: "/srv/state/node.systemd.env")
    }

    func testUserUnitHasTheUpstreamServiceSettings() {
        let text = unit().render()
        for line in ["Description=OpenClaw Node Host (v0.1.0)", "ExecStart=/usr/bin/openclaw-node run --host gw.lan --port 18789",
                     "Restart=always", "RestartSec=5", "TimeoutStopSec=30", "SuccessExitStatus=0 130 143",
                     "Type=notify", "NotifyAccess=main", "TimeoutStartSec=90",
                     "KillMode=mixed", "StartLimitBurst=5", "RestartPreventExitStatus=71 78",
                     "EnvironmentFile=-/srv/state/node.systemd.env", "Environment=\"OPENCLAW_STATE_DIR=/srv/node state\"",
                     "WantedBy=default.target"] {
            XCTAssertTrue(text.contains("\n" + line + "\n"), "missing \(line) in\n\(text)")
        }
        XCTAssertFalse(text.contains("ProtectSystem"))
    }

    func testSystemUnitIsHardened() {
        let text = unit(.system).render()
        for line in ["NoNewPrivileges=yes", "ProtectSystem=full", "PrivateTmp=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
                     "CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_KILL", "WantedBy=multi-user.target"] {
            XCTAssertTrue(text.contains("\n" + line + "\n"), "missing \(line)")
        }
    }

    /// Issue 14 finding 1: /root and the users' homes are out of the unit's reach, except the
    /// home of an exec user that lives there.
    func testSystemUnitHidesHomesExceptTheExecUsersOwn() {
        let text = unit(.system).render()
        XCTAssertTrue(text.contains("\nProtectHome=yes\n"))
        XCTAssertTrue(text.contains("\nStateDirectoryMode=0711\n"))
        XCTAssertFalse(text.contains("BindPaths="))
        var alice = unit(.system)
        alice.execUserHome = "/home/alice"
        let exposed = alice.render()
        XCTAssertTrue(exposed.contains("\nProtectHome=tmpfs\n"))
        XCTAssertTrue(exposed.contains("\nBindPaths=/home/alice\n"))
        var root = unit(.system)
        root.execUserHome = "/root"
        XCTAssertTrue(root.render().contains("\nProtectHome=yes\n"), "root's home is never exposed")
        XCTAssertFalse(root.render().contains("BindPaths="))
        var dedicated = unit(.system)
        dedicated.execUserHome = "/var/lib/openclaw-node/home"
        XCTAssertTrue(dedicated.render().contains("\nProtectHome=yes\n"))
    }

    func testBrowserSandboxRelaxesOnlyTheNamespacesChromiumNeeds() {
        XCTAssertTrue(unit(.system).render().contains("\nRestrictNamespaces=yes\n"))
        XCTAssertFalse(unit(.system).render().contains("SystemCallFilter=chroot"))
        var relaxed = unit(.system)
        relaxed.browserSandbox = true
        let text = relaxed.render()
        XCTAssertTrue(text.contains("\nRestrictNamespaces=user pid net\n"))
        XCTAssertFalse(text.contains("RestrictNamespaces=yes"))
        XCTAssertTrue(text.contains("\nSystemCallFilter=chroot\n"))
        XCTAssertTrue(text.contains("\nCapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_KILL CAP_CHOWN\n"))
        var user = unit(.user)
        user.browserSandbox = true
        XCTAssertFalse(user.render().contains("RestrictNamespaces"))
    }

    func testArgumentsWithSpacesQuotesAndPercentRoundTrip() throws {
        let arguments = ["/opt/my tools/openclaw-node", "run", "--display-name", "lab \"box\" 50% $HOME", "--host", "h"]
        let text = unit(arguments: arguments, environment: [("A", "x y"), ("B", "100%")]).render()
        XCTAssertTrue(text.contains(#"ExecStart="/opt/my tools/openclaw-node" run --display-name "lab \"box\" 50%% $$HOME" --host h"#))
        let parsed = try XCTUnwrap(SystemdUnit.parseCommand(text))
        XCTAssertEqual(parsed.programArguments, arguments)
        XCTAssertEqual(parsed.environment, ["A": "x y", "B": "100%"])
    }

    func testCredentialsFileEscapesValues() {
        XCTAssertEqual(ServiceEnvironmentFile.render([("OPENCLAW_GATEWAY_TOKEN", #"a"b\c$d"#)]),
                       "# Written by openclaw-node install: gateway credentials for the service (keep 0600).\n"
                       + #"OPENCLAW_GATEWAY_TOKEN="a\"b\\c\$d""# + "\n")
    }

    func testStatusExitCodesFollowSystemctlStatus() throws {
        func code(_ text: String) throws -> Int32 {
            ServiceManager.exitCode(of: try JSONText.decode(JSONValue.self, from: text))
        }
        let command = #""command":{"programArguments":["/usr/bin/openclaw-node","run"]}"#
        XCTAssertEqual(try code(#"{"service":{\#(command),"runtime":{"status":"running","missingUnit":false}}}"#), 0)
        XCTAssertEqual(try code(#"{"service":{\#(command),"runtime":{"status":"stopped","missingUnit":false}}}"#), 3)
        XCTAssertEqual(try code(#"{"service":{"command":null,"runtime":{"status":"stopped","missingUnit":true}}}"#), 4)
        // A unit file this user cannot read, of a unit systemd runs: running, not "no such unit".
        XCTAssertEqual(try code(#"{"service":{"command":null,"runtime":{"status":"running","missingUnit":false}}}"#), 0)
        // systemd did not answer: the unit file decides.
        XCTAssertEqual(try code(#"{"service":{"command":null,"runtime":{"status":"unknown"}}}"#), 4)
        XCTAssertEqual(try code(#"{"service":{\#(command),"runtime":{"status":"unknown"}}}"#), 3)
    }
}
