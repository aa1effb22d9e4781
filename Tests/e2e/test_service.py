"""Issue 6: `openclaw-node install|status|start|stop|restart|uninstall` against a real systemd."""
import json
import os
import signal
import time

import pytest

from conftest import binary, free_port, gateway_args
from systemd_env import security_exposure, systemd_system, systemd_user, verify_unit  # noqa: F401

TOKEN = "svc-token-5f0c9e1d"


def cli(manager, state_dir, *args, token=TOKEN, extra_env=None):
    env = {"OPENCLAW_STATE_DIR": str(state_dir), "USER": "root"}
    if token:
        env["OPENCLAW_GATEWAY_TOKEN"] = token
    env.update(extra_env or {})
    return manager.run([binary("openclaw-node"), *args], env=env, timeout=60)


def cli_json(manager, state_dir, *args, **kwargs):
    result = cli(manager, state_dir, *args, "--json", **kwargs)
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON ({result.returncode}): {result.stdout}\n{result.stderr}")


def files_under(*roots):
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                yield os.path.join(directory, name)


def install_against(m, state, gw, *flags, **kwargs):
    """`install` of the user service against the test gateway `gw`; (exit code, JSON result)."""
    return cli_json(m, state, "install", "--host", "127.0.0.1", "--port", str(gw.port), *flags, **kwargs)


def installed_against(m, state, gw, *flags):
    """`install` that must succeed; its JSON result."""
    code, installed = install_against(m, state, gw, *flags)
    assert code == 0 and installed["ok"] is True, installed
    return installed


def test_user_service_lifecycle(systemd_user, make_gateway, tmp_path):
    m = systemd_user
    gw = make_gateway(token=TOKEN)
    state = tmp_path / "state"
    unit = m.unit_dir / "openclaw-node.service"

    installed = installed_against(m, state, gw, "--display-name", "svc-node")
    assert installed["action"] == "install" and installed["result"] == "installed"
    assert installed["service"] == {"label": "systemd", "loaded": True, "loadedText": "enabled", "notLoadedText": "disabled"}
    assert any("loginctl enable-linger root" in w for w in installed.get("warnings", []))
    assert m.show("openclaw-node.service", "UnitFileState") == "enabled"
    assert m.wait_for(lambda: m.show("openclaw-node.service", "ActiveState") == "active", what="active")

    # The token is in the 0600 environment file only: not in the unit, not in the unit dirs.
    env_file = state / "node.systemd.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    assert TOKEN in env_file.read_text()
    for path in files_under(m.unit_dir.parent, m.config_home):
        with open(path, "rb") as handle:
            assert TOKEN.encode() not in handle.read(), path
    assert verify_unit(unit, user=True).returncode == 0

    # Pairing pending: status shows the requestId from the running node.
    request_id = gw.wait_for_pending_request(timeout=30)
    def pending():
        _, status = cli_json(m, state, "status")
        node = status.get("node") or {}
        return status if node.get("pendingRequestId") == request_id else None
    status = m.wait_for(pending, timeout=20, what="status with the pending requestId")
    service = status["service"]
    assert service["loaded"] is True
    assert service["command"]["programArguments"][:2] == [os.path.realpath(binary("openclaw-node")), "run"]
    assert service["command"]["sourcePath"] == str(unit)
    assert service["command"]["environment"]["OPENCLAW_STATE_DIR"] == str(state)
    assert TOKEN not in json.dumps(status)
    assert service["runtime"]["status"] == "running" and service["runtime"]["pid"] == m.main_pid("openclaw-node.service")
    assert status["node"]["paired"] is False and status["node"]["connected"] is False

    gw.approve(request_id)
    def connected():
        _, status = cli_json(m, state, "status")
        return status if (status.get("node") or {}).get("connected") else None
    status = m.wait_for(connected, timeout=40, what="status connected")
    assert status["node"]["paired"] is True and status["node"]["pendingRequestId"] is None
    assert status["node"]["runsInFlight"] == 0

    # Already installed without --force; --force rewrites and restarts.
    code, again = install_against(m, state, gw)
    assert code == 0 and again["result"] == "already-installed" and again["message"] == "Node service already enabled."
    assert again["hints"] == ["openclaw-node install --force"]
    first_pid = m.main_pid("openclaw-node.service")
    code, forced = cli_json(m, state, "install", "--force", "--host", "127.0.0.1", "--port", str(gw.port), "--display-name", "svc-2")
    assert code == 0 and forced["result"] == "installed"
    assert "--display-name svc-2" in unit.read_text()
    assert m.wait_for(lambda: m.main_pid("openclaw-node.service") not in (0, first_pid), what="new pid after --force")

    # restart gives a new main pid; kill -9 of the Supervisor is restarted by systemd.
    before = m.main_pid("openclaw-node.service")
    code, restarted = cli_json(m, state, "restart")
    assert code == 0 and restarted["result"] == "restarted"
    after = m.wait_for(lambda: (p := m.main_pid("openclaw-node.service")) not in (0, before) and p, what="restart")
    # Marked before the kill: the restarted node may say hello before its new pid is seen here.
    mark = gw.mark()
    m.run(["kill", "-9", str(after)], check=True)
    revived = m.wait_for(lambda: (p := m.main_pid("openclaw-node.service")) not in (0, after) and p, timeout=20,
                         what="systemd restart after kill -9")
    assert revived
    gw.wait_for_hello(timeout=30, since=mark)

    code, stopped = cli_json(m, state, "stop")
    assert code == 0 and stopped["result"] == "stopped"
    assert m.show("openclaw-node.service", "ActiveState") in ("inactive", "failed")
    # No process of the unit is left.
    assert not [cmd for _, cmd in m.processes().values() if "openclaw-node" in cmd]

    code, removed = cli_json(m, state, "uninstall")
    assert code == 0 and removed["result"] == "uninstalled"
    assert not unit.exists() and not env_file.exists()
    assert not [p for p in files_under(m.unit_dir.parent) if "openclaw-node" in p]
    assert m.show("openclaw-node.service", "LoadState") == "not-found"


def test_stop_of_a_missing_service_is_a_no_op_and_start_fails(systemd_user, tmp_path):
    m = systemd_user
    state = tmp_path / "state"
    code, stopped = cli_json(m, state, "stop")
    assert code == 0 and stopped["ok"] is True and stopped["result"] == "not-loaded"
    for action in ("start", "restart"):
        code, result = cli_json(m, state, action)
        assert code == 1 and result["ok"] is False and result["result"] == "not-loaded"
        assert result["error"] == "Node service disabled."
        assert result["hints"] == ["openclaw-node install", "openclaw-node start", "systemctl --user start openclaw-node.service"]


def test_insecure_private_ws_and_paths_are_persisted(systemd_user, tmp_path):
    m = systemd_user
    state = tmp_path / "state"
    config = tmp_path / "openclaw.json"
    config.write_text("{}")
    result = cli(m, state, "install", "--print-unit", "--host", "10.1.2.3", token=None,
                 extra_env={"OPENCLAW_ALLOW_INSECURE_PRIVATE_WS": "1", "OPENCLAW_CONFIG_PATH": str(config)})
    assert result.returncode == 0
    assert "Environment=OPENCLAW_ALLOW_INSECURE_PRIVATE_WS=1\n" in result.stdout
    assert f"Environment=OPENCLAW_CONFIG_PATH={config}\n" in result.stdout
    assert f"Environment=OPENCLAW_STATE_DIR={state}\n" in result.stdout


def install_system_service(m, gw, *flags):
    """Installs the node as the system service of `m` in the packaged layout (one binary) and
    waits for its hello. Returns (program, unit path)."""
    # The unit has PrivateTmp=, so a checkout under /tmp is invisible to it: install the
    # binary under /var/lib inside the namespace (its /var is an overlay, the host's is untouched).
    program = "/var/lib/openclaw-e2e/bin/openclaw-node"
    m.run(["install", "-D", "-m", "0755", binary("openclaw-node"), program], check=True)
    result = m.run([program, "install", "--system", "--json", *flags, "--host", "127.0.0.1", "--port", str(gw.port)],
                   env={"OPENCLAW_GATEWAY_TOKEN": TOKEN}, timeout=60)
    installed = json.loads(result.stdout)
    assert installed["ok"] is True and installed["result"] == "installed", result.stdout + result.stderr
    unit = m.unit_dir / "openclaw-node.service"
    assert TOKEN not in unit.read_text()
    try:
        gw.wait_for_hello(timeout=30)
    except Exception:
        raise AssertionError(m.journal("openclaw-node.service"))
    return program, unit


def test_system_service_runs_hardened_and_connects(systemd_system, make_gateway, tmp_path):
    m = systemd_system
    gw = make_gateway(auto_approve=True, token=TOKEN)
    program, unit = install_system_service(m, gw)
    # Inside the namespace, where the binary it names exists.
    verified = m.analyze("verify", "--man=no", "--recursive-errors=no", "/etc/systemd/system/openclaw-node.service")
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    score, report = security_exposure(unit)
    assert score <= 2.5, report
    # The hardened unit still lets the workers confine themselves.
    m.wait_journal("openclaw-node.service", r'msg="net worker ready".*seccomp=active.*user=active')
    status = json.loads(m.run([program, "status", "--system", "--json"], timeout=30).stdout)
    assert status["service"]["runtime"]["status"] == "running"
    assert status["node"]["connected"] is True
    result = m.run([program, "uninstall", "--system", "--json"], timeout=60)
    assert json.loads(result.stdout)["result"] == "uninstalled"
    assert not unit.exists()


def test_system_service_commands_run_as_the_dedicated_user_and_cannot_write_roots_files(systemd_system, make_gateway):
    """Issue 14 finding 1: under the installed system unit a command is not root."""
    m = systemd_system
    gw = make_gateway(auto_approve=True, token=TOKEN)
    program, unit = install_system_service(m, gw)
    text = unit.read_text()
    assert "ProtectHome=yes\n" in text and "StateDirectoryMode=0711\n" in text
    passwd = m.run(["getent", "passwd", "openclaw"], check=True).stdout.strip().split(":")
    assert passwd[5:] == ["/var/lib/openclaw-node/home", "/usr/sbin/nologin"]
    # A root-owned file the unit's sandbox alone would let uid 0 write (/var/lib is writable
    # under ProtectSystem=full): only the exec user keeps a command from it.
    root_file = "/var/lib/openclaw-e2e/roots-file"
    m.run(["sh", "-c", f"echo roots > {root_file} && chmod 0644 {root_file}"], check=True)
    script = ('id -un; echo "$HOME"; touch "$HOME/ok" && echo home-ok; '
              f'echo x >> {root_file} 2>/dev/null && echo ROOTFILE-WRITTEN; '
              'mkdir -p /var/spool/cron/crontabs 2>/dev/null; echo x >> /var/spool/cron/crontabs/root 2>/dev/null && echo CRON-WRITTEN; '
              'echo x >> /var/lib/openclaw-node/node.json 2>/dev/null && echo STATE-WRITTEN; '
              'mkdir -p /root/.ssh 2>/dev/null; echo x >> /root/.ssh/authorized_keys 2>/dev/null && echo ROOT-SSH-WRITTEN; '
              'echo x >> /etc/passwd 2>/dev/null && echo PASSWD-WRITTEN; true')
    prepared = gw.invoke("system.run.prepare", {"command": ["/bin/sh", "-c", script]}, timeout_ms=30_000)
    plan = json.loads(prepared["payloadJSON"])["plan"]
    result = gw.invoke("system.run", {"command": plan["argv"], "approved": True, "systemRunPlan": plan}, timeout_ms=30_000)
    assert result["ok"] is True, (result, m.journal("openclaw-node.service"))
    output = json.loads(result["payloadJSON"])
    lines = output["stdout"].split("\n")
    assert lines[:3] == ["openclaw", "/var/lib/openclaw-node/home", "home-ok"], output
    assert not [line for line in lines if line.endswith("-WRITTEN")], lines
    assert m.run(["cat", root_file], check=True).stdout == "roots\n"
    m.wait_journal("openclaw-node.service", r'msg="exec worker ready".*user=active')
    result = m.run([program, "uninstall", "--system", "--json"], timeout=60)
    assert json.loads(result.stdout)["result"] == "uninstalled"


def test_system_service_with_browser_sandbox_serves_browser_proxy(systemd_system, make_gateway, tmp_path):
    m = systemd_system
    gw = make_gateway(auto_approve=True, token=TOKEN)
    program, unit = install_system_service(m, gw, "--browser-sandbox")
    assert "RestrictNamespaces=user pid net\n" in unit.read_text()
    score, report = security_exposure(unit)
    assert score <= 3.3, report
    opened = gw.invoke("browser.proxy", {"method": "POST", "path": "/tabs/open", "body": {"url": "about:blank"}}, timeout_ms=60_000)
    assert opened["ok"] is True, (opened, m.journal("openclaw-node.service"))
    target = json.loads(opened["payloadJSON"])["result"]["targetId"]
    snap = gw.invoke("browser.proxy", {"path": "/snapshot", "query": {"targetId": target}}, timeout_ms=60_000)
    assert snap["ok"] is True and json.loads(snap["payloadJSON"])["result"]["format"] == "ai", snap
    m.wait_journal("openclaw-node.service", r'msg="browser worker ready".*landlock=active.*seccomp=active.*user=active')
    result = m.run([program, "uninstall", "--system", "--json"], timeout=60)
    assert json.loads(result.stdout)["result"] == "uninstalled"


def test_install_passes_run_options_through(systemd_user, tmp_path):
    result = cli(systemd_user, tmp_path / "state", "install", "--print-unit", "--port", "1", "--metrics-port", "9464",
                 "--log-format", "json", "--max-concurrent-runs", "4", "--unconfined", "exec:landlock", token=None)
    assert result.returncode == 0, result.stderr
    exec_start = next(line for line in result.stdout.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith("run --host 127.0.0.1 --port 1 --unconfined exec:landlock --log-format json "
                               "--max-concurrent-runs 4 --metrics-port 9464")


def test_install_without_a_token_reports_the_failure_and_rolls_back(systemd_user, make_gateway, tmp_path):
    m = systemd_user
    gw = make_gateway(token=TOKEN)
    state = tmp_path / "state"
    unit = m.unit_dir / "openclaw-node.service"
    code, installed = install_against(m, state, gw, token=None)
    assert code == 1 and installed["ok"] is False, installed
    assert installed["error"] == ("the node did not start: unauthorized: gateway token missing "
                                  "(provide gateway auth token) (AUTH_TOKEN_MISSING)"), installed
    assert installed["message"] == "Node service not installed: the unit and its credentials file were removed again."
    assert not unit.exists() and not (state / "node.systemd.env").exists()
    assert m.show("openclaw-node.service", "LoadState") == "not-found"
    assert not [cmd for _, cmd in m.processes().values() if "openclaw-node" in cmd]
    # No unit: status exits 4 (as systemctl status), and keeps the reason the node last stopped.
    code, status = cli_json(m, state, "status")
    assert code == 4 and status["service"]["command"] is None, status
    assert status["lastFailure"]["code"] == "AUTH_TOKEN_MISSING" and status["lastFailure"]["exitCode"] == 1


def test_status_exit_codes_and_ok_for_running_and_failed(systemd_user, make_gateway, tmp_path):
    m = systemd_user
    gw = make_gateway(token=TOKEN, auto_approve=True)
    state = tmp_path / "state"
    installed = installed_against(m, state, gw)
    # install waited for READY=1 and reports the node's live state.
    assert installed["message"].startswith(f"Node service installed and started ({m.unit_dir / 'openclaw-node.service'}); "), installed
    code, status = cli_json(m, state, "status")
    assert code == 0 and status["ok"] is True and status["service"]["runtime"]["status"] == "running", status
    # A wrong token: restart reports the refusal, systemd gives up after its start limit, and
    # status says failed with ok false, exit 3, and the reason.
    env_file = state / "node.systemd.env"
    env_file.write_text(env_file.read_text().replace(TOKEN, "wrong-token"))
    code, restarted = cli_json(m, state, "restart")
    assert code == 1 and restarted["ok"] is False
    assert restarted["error"] == ("the node did not start: unauthorized: gateway token mismatch "
                                  "(provide gateway auth token) (AUTH_TOKEN_MISMATCH)"), restarted
    assert m.wait_for(lambda: m.show("openclaw-node.service", "ActiveState") == "failed", timeout=60, what="failed")
    code, status = cli_json(m, state, "status")
    assert code == 3 and status["ok"] is False, status
    assert status["lastFailure"]["code"] == "AUTH_TOKEN_MISMATCH"
    text = cli(m, state, "status")
    assert text.returncode == 3
    assert "last failure: unauthorized: gateway token mismatch (provide gateway auth token) (AUTH_TOKEN_MISMATCH) [AUTH_TOKEN_MISMATCH]" in text.stdout
    code, removed = cli_json(m, state, "uninstall")
    assert code == 0 and removed["result"] == "uninstalled"
    assert removed["message"].startswith("Node service: stopped and disabled, removed "), removed
    assert "Kept: the node's identity and state in" in removed["message"]


def journal_records(m, unit, *args):
    """The user unit's journal entries (journalctl -o json), optionally filtered by ARGS (-p err).
    Matched by unit alone: `--user-unit` also matches the caller's uid, and the workers run as
    another user."""
    result = m.run(["journalctl", "--no-pager", "-q", "-o", "json", "--directory=/run/log/journal",
                    f"_SYSTEMD_USER_UNIT={unit}", *args], timeout=30)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def node_lines(records):
    """The node's own lines among journal entries: (PRIORITY, the JSON log record)."""
    lines = []
    for entry in records:
        message = entry.get("MESSAGE")
        if isinstance(message, str) and message.startswith("{"):
            lines.append((entry["PRIORITY"], json.loads(message)))
    return lines


def test_json_logs_in_the_journal_carry_syslog_priorities(systemd_user, make_gateway, tmp_path):
    """Issue 15: under journald every process's line is one JSON record whose level is the
    entry's priority (the `<N>` prefix is journald's, never part of the message), so
    `journalctl -p err` shows the errors and nothing else."""
    m = systemd_user
    gw = make_gateway(token=TOKEN, auto_approve=True)
    state = tmp_path / "state"
    unit = "openclaw-node.service"
    # With a metrics port the (otherwise quiet) net worker speaks too.
    installed_against(m, state, gw, "--log-format", "json", "--metrics-port", str(free_port()))
    m.wait_journal(unit, r'"msg":"node host gateway connected"', timeout=30)
    lines = m.wait_for(lambda: (found := node_lines(journal_records(m, unit)))
                       and any(r["proc"] == "net" for _, r in found) and found, timeout=15, what="a net worker line")
    assert {record["proc"] for _, record in lines} >= {"supervisor", "net"}, lines
    for priority, record in lines:
        assert priority == {"info": "6", "notice": "5", "warning": "4", "error": "3"}[record["level"]], (priority, record)
    assert not [e for e in journal_records(m, unit) if str(e.get("MESSAGE", "")).startswith("<")]
    assert node_lines(journal_records(m, unit, "-p", "err")) == []

    # A refused token: the node's error line, and only error lines, in `journalctl -p err`.
    env_file = state / "node.systemd.env"
    env_file.write_text(env_file.read_text().replace(TOKEN, "wrong-token"))
    code, restarted = cli_json(m, state, "restart")
    assert code == 1 and restarted["ok"] is False, restarted
    errors = node_lines(journal_records(m, unit, "-p", "err"))
    assert errors, m.journal(unit)
    assert {(priority, record["level"]) for priority, record in errors} == {("3", "error")}, errors
    assert any(record["msg"].startswith("node host gateway reconnect paused after close (1008): unauthorized: gateway token mismatch")
               and record["proc"] == "supervisor" for _, record in errors), errors
    cli_json(m, state, "uninstall")


def test_install_refuses_while_a_foreground_node_holds_the_state_dir(systemd_user, make_gateway, nodes, tmp_path):
    """Issue 15: the service's node would exit 75 on the lock; install says so, names the
    holder and writes nothing. start/restart of an installed unit say the same."""
    m = systemd_user
    gw = make_gateway(token=TOKEN, auto_approve=True)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    foreground = nodes(state, gateway_args(gw), env={"OPENCLAW_GATEWAY_TOKEN": TOKEN})
    gw.wait_for_hello(timeout=30)
    expected = (f"another openclaw-node (pid {foreground.pid}) is running on this state dir ({state}/node.lock is locked); "
                f"stop it first, or give this one its own OPENCLAW_STATE_DIR")
    unit = m.unit_dir / "openclaw-node.service"
    code, installed = install_against(m, state, gw)
    assert code == 1 and installed["ok"] is False, installed
    assert installed["error"] == expected
    assert installed["message"] == "Node service not installed: nothing was written."
    assert not unit.exists() and not (state / "node.systemd.env").exists()
    assert foreground.proc.poll() is None

    # With the foreground node stopped, install works; a foreground node started against the
    # service's state dir exits 75, and start of the stopped service names a new holder.
    foreground.stop(signal.SIGTERM)
    installed = installed_against(m, state, gw)
    code, stopped = cli_json(m, state, "stop")
    assert code == 0, stopped
    second = nodes(state, gateway_args(gw), env={"OPENCLAW_GATEWAY_TOKEN": TOKEN})
    m.wait_for(lambda: (state / "node.sock").exists(), timeout=30, what="foreground node up")
    code, started = cli_json(m, state, "start")
    assert code == 1 and started["ok"] is False, started
    assert started["error"] == expected.replace(f"pid {foreground.pid}", f"pid {second.pid}")
    assert m.show("openclaw-node.service", "ActiveState") == "inactive"
    second.stop(signal.SIGTERM)
    cli_json(m, state, "uninstall")


def test_uninstall_that_cannot_remove_everything_says_partial(systemd_user, make_gateway, tmp_path):
    m = systemd_user
    gw = make_gateway(token=TOKEN, auto_approve=True)
    state = tmp_path / "state"
    installed = installed_against(m, state, gw)
    # Something that is not the credentials file sits at its path: it cannot be unlinked.
    env_file = state / "node.systemd.env"
    env_file.unlink()
    env_file.mkdir()
    (env_file / "keep").write_text("x")
    unit = m.unit_dir / "openclaw-node.service"
    code, removed = cli_json(m, state, "uninstall")
    assert code == 1 and removed["ok"] is False and removed["result"] == "partial", removed
    assert removed["error"] == f"cannot remove {env_file}: Is a directory"
    assert removed["message"] == (f"Node service: stopped and disabled, removed {unit}. Kept: the node's identity and state in "
                                  f"{state} (remove that directory to forget this node; see docs/operations.md).")
    assert not unit.exists() and env_file.is_dir()
    assert m.show("openclaw-node.service", "LoadState") == "not-found"


def test_status_as_a_user_without_access_says_permission_denied(systemd_system, make_gateway):
    """Issue 15: the node's state is the node's; another user is told it cannot read it, not
    that the node is not running."""
    m = systemd_system
    gw = make_gateway(auto_approve=True, token=TOKEN)
    program, unit = install_system_service(m, gw)
    result = m.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", program, "status", "--system", "--json"],
                   env={"HOME": "/"}, timeout=30)
    status = json.loads(result.stdout)
    assert status["node"] is None, status
    assert status["nodeError"] == ("permission denied: /var/lib/openclaw-node/node.sock is readable by the node's user "
                                   "and root only"), status
    assert status["service"]["runtime"]["status"] == "running", status
    assert result.returncode == 0, (status, m.run(["ls", "-ld", "/etc/systemd/system", str(unit)]).stdout)
    text = m.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", program, "status", "--system"],
                 env={"HOME": "/"}, timeout=30)
    assert "permission denied: /var/lib/openclaw-node/node.sock is readable by the node's user and root only" in text.stdout, text
    assert "not running" not in text.stdout, text.stdout
    result = m.run([program, "uninstall", "--system", "--json"], timeout=60)
    assert json.loads(result.stdout)["result"] == "uninstalled"


def test_connect_service_pairs_once_then_installs_the_service_without_the_token(systemd_user, make_gateway, tmp_path):
    """Issue 18: `connect --service <code>`: the first connect pairs with the bootstrap token,
    then the service is installed on the saved endpoint and reconnects with the device token;
    the bootstrap token is in no file and no argument."""
    import base64
    m = systemd_user
    gw = make_gateway()
    state = tmp_path / "state"
    code = gw.issue_setup_code()
    bootstrap = json.loads(base64.urlsafe_b64decode(code + "=" * (-len(code) % 4)))["bootstrapToken"]
    result = cli(m, state, "connect", "--service", code, token=None)
    assert result.returncode == 0, result.stdout + result.stderr
    first = gw.connections[0]
    assert first.hello and first.connect_params["auth"] == {"bootstrapToken": bootstrap}
    assert m.wait_for(lambda: m.show("openclaw-node.service", "ActiveState") == "active", what="active")
    service = gw.wait_for_hello(timeout=30, since=1)
    assert service.device_id == first.device_id and "bootstrapToken" not in service.connect_params["auth"]
    assert service.connect_params["auth"]["token"] == gw.paired_devices()[first.device_id]["token"]
    unit = (m.unit_dir / "openclaw-node.service").read_text()
    assert f"--host 127.0.0.1 --port {gw.port}" in unit
    for path in list(files_under(m.unit_dir.parent, m.config_home)) + list(files_under(state)):
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as handle:
            assert bootstrap.encode() not in handle.read(), path
    assert cli(m, state, "uninstall", token=None).returncode == 0
