"""Issue 4: system.run, prepare, which and exec approvals through the real binaries."""
import json
import os
import shutil
import signal
import time

import pytest

from conftest import gateway_args


def approvals_file(security="full", ask="off", allowlist=(), agents=None):
    agents = dict(agents or {})
    if allowlist:
        agents.setdefault("main", {})["allowlist"] = [{"pattern": p} for p in allowlist]
    return {"version": 1, "defaults": {"security": security, "ask": ask, "askFallback": "deny"}, "agents": agents}


@pytest.fixture
def linked(make_gateway, nodes, state_dir):
    """Starts a paired node; `linked(approvals=…, config=…)` returns (gateway, node)."""
    def start(approvals=None, config=None, args=()):
        if approvals is not None:
            (state_dir / "exec-approvals.json").write_text(json.dumps(approvals, indent=2))
            (state_dir / "exec-approvals.json").chmod(0o600)
        if config is not None:
            (state_dir / "openclaw.json").write_text(json.dumps(config))
        gw = make_gateway(auto_approve=True)
        node = nodes(state_dir, gateway_args(gw) + list(args))
        gw.wait_for_hello(timeout=20)
        return gw, node
    return start


def alive(pid):
    """The process exists and is not a zombie (PID 1 here may not reap orphans at once)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def run(gw, params, command="system.run", timeout_ms=30_000):
    result = gw.invoke(command, params, timeout_ms=timeout_ms)
    payload = json.loads(result["payloadJSON"]) if result.get("ok") else None
    return result, payload


def events_for(gw, run_id, name):
    return [json.loads(e["payloadJSON"]) for e in gw.node_events
            if e.get("event") == name and json.loads(e["payloadJSON"]).get("runId") == run_id]


def error_of(result):
    assert result["ok"] is False, result
    return result["error"]["code"], result["error"]["message"]


# ---------------------------------------------------------------- running commands

def test_echo_runs_and_emits_started_and_finished(linked):
    gw, _ = linked(approvals_file())
    result, payload = run(gw, {"command": ["/bin/echo", "hello"], "runId": "run-echo", "sessionKey": "agent:main:main"})
    assert result["ok"] is True
    assert payload == {"exitCode": 0, "timedOut": False, "success": True, "stdout": "hello\n", "stderr": "", "error": None}
    finished = events_for(gw, "run-echo", "exec.finished")
    assert finished == [{"sessionKey": "agent:main:main", "runId": "run-echo", "host": "node", "command": "/bin/echo hello",
                         "exitCode": 0, "timedOut": False, "success": True, "output": "hello"}]
    # Like upstream's headless node hosts, no exec.started.
    assert events_for(gw, "run-echo", "exec.started") == []


def test_defaults_session_key_and_run_id(linked):
    gw, _ = linked(approvals_file())
    mark = len(gw.node_events)
    run(gw, {"command": ["/bin/true"]})
    finished = json.loads(gw.wait_for_node_event("exec.finished", since=mark)["payloadJSON"])
    assert finished["sessionKey"] == "node"
    assert len(finished["runId"]) == 36


def test_non_zero_exit_is_ok_true_with_success_false(linked):
    gw, _ = linked(approvals_file())
    result, payload = run(gw, {"command": ["/bin/sh", "-c", "echo oops >&2; exit 3"]})
    assert result["ok"] is True
    assert payload["exitCode"] == 3 and payload["success"] is False and payload["stderr"] == "oops\n"


def test_missing_binary_is_a_spawn_error_without_exit_code(linked):
    gw, _ = linked(approvals_file())
    result, payload = run(gw, {"command": ["definitely-not-a-binary-xyz"]})
    assert result["ok"] is True
    assert "exitCode" not in payload
    assert payload["success"] is False
    assert payload["error"] == "spawn definitely-not-a-binary-xyz ENOENT"
    assert payload["stdout"] == "" and payload["stderr"] == ""


def test_cwd_is_honoured(linked, tmp_path):
    gw, _ = linked(approvals_file())
    _, payload = run(gw, {"command": ["/bin/pwd"], "cwd": str(tmp_path)})
    assert payload["stdout"] == f"{tmp_path}\n"


def test_missing_cwd_is_not_created(linked, tmp_path):
    gw, _ = linked(approvals_file())
    missing = tmp_path / "not" / "there"
    _, payload = run(gw, {"command": ["/bin/pwd"], "cwd": str(missing)})
    assert payload["success"] is False and "exitCode" not in payload
    assert payload["error"].startswith(f"node exec working directory does not exist on the node host: {missing} (os reported: ")
    assert not missing.exists()


def test_output_is_capped_at_200000_bytes_with_marker(linked):
    gw, _ = linked(approvals_file())
    result, payload = run(gw, {"command": ["/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a"], "runId": "big"})
    assert payload["stdout"] == "a" * 200_000 + "\n... (truncated)"
    output = events_for(gw, "big", "exec.finished")[0]["output"]
    assert output.startswith("... (truncated) ") and len(output) <= 20_016


def test_timeout_kills_the_whole_process_group(linked, tmp_path):
    gw, _ = linked(approvals_file())
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 300 & echo $! > {pidfile}; sleep 300"
    started = time.monotonic()
    _, payload = run(gw, {"command": ["/bin/sh", "-c", script], "timeoutMs": 500})
    assert time.monotonic() - started < 10
    assert payload["timedOut"] is True and payload["success"] is False and "exitCode" not in payload
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and os.path.exists(f"/proc/{grandchild}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{grandchild}")


def test_a_command_flooding_its_output_still_times_out_and_others_still_run(linked):
    gw, _ = linked(approvals_file())
    flood = gw.invoke_async("system.run", {"command": ["/bin/cat", "/dev/zero"], "timeoutMs": 1500}, timeout_ms=30_000)
    time.sleep(0.3)
    started = time.monotonic()
    result, payload = run(gw, {"command": ["/bin/echo", "beside"]})
    assert payload["stdout"] == "beside\n" and time.monotonic() - started < 5
    result = flood.result(timeout=20)
    flooded = json.loads(result["payloadJSON"])
    assert flooded["timedOut"] is True and flooded["stdout"].endswith("\n... (truncated)")


def test_exec_worker_killed_mid_run_answers_the_invoke_and_kills_the_command(linked, tmp_path):
    gw, node = linked(approvals_file())
    node.wait_log('msg="exec worker ready"')
    pidfile = tmp_path / "pids"
    script = f"sleep 300 & echo $$ $! > {pidfile}; wait"
    future = gw.invoke_async("system.run", {"command": ["/bin/sh", "-c", script]}, timeout_ms=60_000)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(pidfile.read_text().split() if pidfile.exists() else []) < 2:
        time.sleep(0.05)
    shell, grandchild = map(int, pidfile.read_text().split())
    os.kill(node.worker_pid("exec"), signal.SIGKILL)
    result = future.result(timeout=20)
    assert result["ok"] is False and result["error"]["code"] == "UNAVAILABLE"
    assert result["error"]["message"].startswith("node exec worker stopped during the run (")
    assert result["error"]["message"].endswith("); the command was killed")
    # The shell and its background child were re-parented to the Supervisor and killed there.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (alive(shell) or alive(grandchild)):
        time.sleep(0.05)
    assert not alive(shell) and not alive(grandchild)
    node.wait_log('msg="killed a command left by the exec worker"')
    # and the next run works on the re-spawned worker
    node.wait_log('msg="exec worker ready"', count=2)
    result, payload = run(gw, {"command": ["/bin/echo", "again"]})
    assert payload["stdout"] == "again\n"


def test_commands_do_not_outlive_a_supervisor_killed_with_sigkill(linked, tmp_path):
    gw, node = linked(approvals_file())
    node.wait_log('msg="exec worker ready"')
    pidfile = tmp_path / "pids"
    script = f"sleep 300 & echo $$ $! > {pidfile}; wait"
    gw.invoke_async("system.run", {"command": ["/bin/sh", "-c", script]}, timeout_ms=60_000)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(pidfile.read_text().split() if pidfile.exists() else []) < 2:
        time.sleep(0.05)
    pids = list(map(int, pidfile.read_text().split()))
    workers = [node.worker_pid("exec"), node.worker_pid("net")]
    node.proc.kill()  # SIGKILL: no shutdown, no cgroup to clean up after it
    node.proc.wait(timeout=10)
    # The ExecWorker's parent-death signal (SIGTERM) kills its commands' process groups.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid) for pid in pids + workers):
        time.sleep(0.05)
    assert [pid for pid in pids + workers if alive(pid)] == []


def test_fifty_concurrent_runs_all_complete(linked):
    gw, _ = linked(approvals_file())
    futures = [gw.invoke_async("system.run", {"command": ["/bin/sh", "-c", f"sleep 0.2; echo {i}"]}, timeout_ms=60_000)
               for i in range(50)]
    results = [f.result(timeout=90) for f in futures]
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]][:3]
    assert sorted(int(json.loads(r["payloadJSON"])["stdout"]) for r in results) == list(range(50))


def test_system_which(linked):
    gw, _ = linked(approvals_file())
    result, payload = run(gw, {"bins": [" sh ", "definitely-missing-xyz", "/bin/sh", "./sh", ""]}, command="system.which")
    assert result["ok"] is True
    assert set(payload["bins"]) == {"sh"} and os.path.basename(payload["bins"]["sh"]) == "sh"
    code, message = error_of(gw.invoke("system.which", {"bins": "sh"}))
    assert (code, message) == ("INVALID_REQUEST", "Error: INVALID_REQUEST: bins required")


def test_connect_advertises_the_implemented_commands(linked):
    gw, _ = linked(approvals_file())
    params = gw.last_connection.connect_params
    assert params["commands"] == ["system.which", "system.run.prepare", "system.run",
                                  "system.execApprovals.get", "system.execApprovals.set", "browser.proxy",
                                  "browser.proxy.upload.v1", "fs.listDir", "terminal.upload", "mcp.tools.call.v1"]
    assert params["caps"] == ["system", "system.run.execution-context.v1", "browser", "mcp"]


# ---------------------------------------------------------------- validation

def test_empty_command_is_invalid(linked):
    gw, _ = linked(approvals_file())
    assert error_of(gw.invoke("system.run", {"command": []})) == ("INVALID_REQUEST", "command required")


def test_attack_raw_command_mismatch(linked):
    gw, _ = linked(approvals_file())
    code, message = error_of(gw.invoke("system.run", {"command": ["ls", "-la"], "rawCommand": "ls"}))
    assert (code, message) == ("INVALID_REQUEST", "INVALID_REQUEST: rawCommand does not match command")
    result, _ = run(gw, {"command": ["/bin/sh", "-lc", "echo hi"], "rawCommand": '/bin/sh -lc "echo hi"'})
    assert result["ok"] is True


def test_attack_trailing_space_executable(linked):
    gw, _ = linked(approvals_file("allowlist", "off", ["/usr/bin/id"]))
    code, message = error_of(gw.invoke("system.run", {"command": ["/usr/bin/id "], "rawCommand": "/usr/bin/id"}))
    assert message == "INVALID_REQUEST: rawCommand does not match command"
    code, message = error_of(gw.invoke("system.run", {"command": ["/usr/bin/id "]}))
    assert (code, message) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: allowlist miss")


def test_attack_env_injection_is_rejected_naming_the_keys(linked):
    gw, _ = linked(approvals_file())
    code, message = error_of(gw.invoke("system.run", {"command": ["/bin/true"],
                                                      "env": {"LD_PRELOAD": "/tmp/x.so", "BASH_ENV": "/tmp/rc", "TERM": "xterm"}}))
    assert (code, message) == ("INVALID_REQUEST",
                               "SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: BASH_ENV, LD_PRELOAD)")
    for key in ("HOME", "SHELLOPTS", "PS4", "GLIBC_TUNABLES", "HTTPS_PROXY", "BASH_FUNC_x%%", "NODE_OPTIONS"):
        code, message = error_of(gw.invoke("system.run", {"command": ["/bin/true"], "env": {key: "x"}}))
        assert code == "INVALID_REQUEST" and key in message, (key, message)


def test_attack_env_assignment_inside_argv(linked):
    gw, _ = linked(approvals_file())
    code, message = error_of(gw.invoke("system.run", {"command": ["/usr/bin/env", "LD_PRELOAD=/tmp/x.so", "/bin/true"]}))
    assert (code, message) == ("INVALID_REQUEST",
                               "SYSTEM_RUN_DENIED: command env assignment rejected (blocked env assignment keys: LD_PRELOAD)")


def test_attack_path_hijack_is_refused(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "off"))
    code, message = error_of(gw.invoke("system.run", {"command": ["head", "-n", "1"], "env": {"PATH": str(tmp_path)}}))
    assert (code, message) == ("INVALID_REQUEST", "SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: PATH)")
    fake = tmp_path / "head"
    fake.write_text("#!/bin/sh\necho pwned\n")
    fake.chmod(0o755)
    code, message = error_of(gw.invoke("system.run", {"command": [str(fake), "-n", "1"]}))
    assert (code, message) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: allowlist miss")


def test_child_environment_is_an_allow_list(linked):
    gw, _ = linked(approvals_file())
    _, payload = run(gw, {"command": ["/usr/bin/env"], "env": {"FOO": "1"}})
    keys = {line.split("=", 1)[0] for line in payload["stdout"].splitlines()}
    assert "FOO" in keys and "PATH" in keys
    assert not keys - {"FOO", "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "TZ", "TMPDIR"} - {
        k for k in keys if k.startswith("LC_")}
    assert "OPENCLAW_STATE_DIR" not in keys


def test_shell_wrapper_runs_keep_only_terminal_and_locale_overrides(linked):
    gw, _ = linked(approvals_file())
    _, payload = run(gw, {"command": ["/bin/sh", "-lc", "echo ${FOO:-unset} $LC_ALL"], "env": {"FOO": "1", "LC_ALL": "C"}})
    assert payload["stdout"] == "unset C\n"


# ---------------------------------------------------------------- policy

#: upstream's allowlist-miss text for a POSIX shell wrapper (upstream-2026 §1.5).
SHELL_WRAPPER_MISS = ("SYSTEM_RUN_DENIED: allowlist miss (shell wrappers like sh/bash/zsh -c require approval; "
                      "approve once/always or run with --ask on-miss|always)")

def test_security_deny_emits_denied_then_unavailable(linked):
    gw, _ = linked(approvals_file("deny"))
    result = gw.invoke("system.run", {"command": ["/bin/true"], "runId": "r-deny"})
    assert error_of(result) == ("UNAVAILABLE", "SYSTEM_RUN_DISABLED: security=deny")
    # upstream's exec.denied (suppressNotifyOnExit always a boolean), with the policy that
    # produced the denial and its remedy (issue 19).
    [denied] = events_for(gw, "r-deny", "exec.denied")
    assert denied == {"sessionKey": "node", "runId": "r-deny", "host": "node", "command": "/bin/true", "reason": "security=deny",
                      "suppressNotifyOnExit": False,
                      "policy": {"security": "deny", "ask": "off", "askFallback": "deny", "agent": "main", "askFallbackApplied": False},
                      "remedy": denied["remedy"]}
    assert denied["remedy"].startswith("security=deny applies to agent main: allow commands by setting security to allowlist")
    assert json.loads(result["payloadJSON"]) == {"reason": "security=deny", "message": "SYSTEM_RUN_DISABLED: security=deny",
                                                 "policy": denied["policy"], "remedy": denied["remedy"]}


def test_defaults_without_a_file_are_allowlist_on_miss(linked):
    gw, _ = linked()
    result = gw.invoke("system.run", {"command": ["/bin/true"], "runId": "r-miss"})
    assert error_of(result) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: approval required")
    assert events_for(gw, "r-miss", "exec.denied")[0]["reason"] == "approval-required"


def test_allowlist_miss_and_shell_segments(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "off", ["/usr/bin/*"]))
    result, payload = run(gw, {"command": ["/bin/sh", "-lc", "/usr/bin/true && /usr/bin/id -u"]})
    assert result["ok"] is True and payload["stdout"].strip().isdigit()
    out = tmp_path / "out.txt"
    # Syntax the analysis cannot follow is its own reason (upstream-2026 §1.5).
    assert error_of(gw.invoke("system.run", {"command": ["/bin/sh", "-lc", f"/usr/bin/id > {out}"]})) == (
        "UNAVAILABLE", "SYSTEM_RUN_DENIED: unsupported shell syntax")
    assert not out.exists()
    assert error_of(gw.invoke("system.run", {"command": ["/bin/sh", "-lc", "/usr/bin/true $(/bin/id)"]}))[1] == \
        "SYSTEM_RUN_DENIED: unsupported shell syntax"
    assert error_of(gw.invoke("system.run", {"command": ["/sbin/ldconfig", "-p"]}))[1] == "SYSTEM_RUN_DENIED: allowlist miss"


def test_allowlist_use_is_recorded(linked, state_dir):
    gw, _ = linked(approvals_file("allowlist", "off", ["/usr/bin/id"]))
    result, _ = run(gw, {"command": ["/usr/bin/id", "-u"]})
    assert result["ok"] is True
    entry = json.loads((state_dir / "exec-approvals.json").read_text())["agents"]["main"]["allowlist"][0]
    assert entry["pattern"] == "/usr/bin/id"
    assert entry["lastUsedCommand"] == "/usr/bin/id -u"
    assert entry["lastResolvedPath"] == "/usr/bin/id"
    assert abs(entry["lastUsedAt"] - time.time() * 1000) < 60_000


def test_attack_safe_bin_globs_and_vars_are_not_expanded(linked):
    gw, _ = linked(approvals_file("allowlist", "off", ["/usr/bin/printf"]))
    result, payload = run(gw, {"command": ["/bin/sh", "-lc", "printf abc | tr abc xyz"]})
    assert result["ok"] is True and payload["stdout"] == "xyz"
    # A word the shell would expand is no safe-bin usage (upstream's safe-bins table: `tr ${IFS} _`).
    assert error_of(gw.invoke("system.run", {"command": ["/bin/sh", "-lc", "printf abc | tr abc $HOME"]})) == (
        "UNAVAILABLE", SHELL_WRAPPER_MISS)
    for payload_text in ("head -n 1 *", "tail -n 1 $HOME/.profile", "head -n 1 /etc/passwd", "wc --files0-from=/etc/passwd"):
        assert error_of(gw.invoke("system.run", {"command": ["/bin/sh", "-lc", payload_text]})) == (
            "UNAVAILABLE", SHELL_WRAPPER_MISS), payload_text


def test_attack_env_split_string_fails_closed(linked):
    gw, _ = linked(approvals_file("allowlist", "off", ["/usr/bin/*"]))
    assert error_of(gw.invoke("system.run", {"command": ["/usr/bin/env", "-S", "sh -c id"]})) == (
        "UNAVAILABLE", "SYSTEM_RUN_DENIED: unsupported shell syntax")


def test_attack_inline_eval_behind_an_allowlisted_interpreter(linked):
    perl = os.path.realpath(shutil.which("perl"))
    gw, _ = linked(approvals_file("allowlist", "off", [perl]))
    code, message = error_of(gw.invoke("system.run", {"command": [perl, "-e", "print 1"]}))
    assert code == "UNAVAILABLE"
    assert message.startswith("SYSTEM_RUN_DENIED: approval required (") and "requires explicit approval in strictInlineEval mode" in message


def test_attack_forged_approval_without_plan(linked):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    assert error_of(gw.invoke("system.run", {"command": ["/usr/bin/id"], "approved": True})) == (
        "INVALID_REQUEST", "systemRunPlan invalid")
    assert error_of(gw.invoke("system.run", {"command": ["/usr/bin/id"], "approvalDecision": "allow-once"})) == (
        "INVALID_REQUEST", "systemRunPlan invalid")


def test_attack_forged_approval_cannot_override_security_deny(linked):
    gw, _ = linked(approvals_file("deny"))
    _, prepared = run(gw, {"command": ["/usr/bin/id"]}, command="system.run.prepare")
    plan = prepared["plan"]
    result = gw.invoke("system.run", {"command": plan["argv"], "approved": True, "approvalDecision": "allow-once",
                                      "systemRunPlan": plan})
    assert error_of(result) == ("UNAVAILABLE", "SYSTEM_RUN_DISABLED: security=deny")


# ---------------------------------------------------------------- prepare and approved runs

def test_prepare_then_approved_run(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    result, prepared = run(gw, {"command": ["id", "-u"], "cwd": str(tmp_path), "agentId": "main",
                                "sessionKey": "agent:main:main"}, command="system.run.prepare")
    assert result["ok"] is True
    plan = prepared["plan"]
    real_id = os.path.realpath(shutil.which("id"))
    assert plan["argv"] == [real_id, "-u"]
    assert plan["cwd"] == os.path.realpath(tmp_path)
    assert plan["commandText"] == f"{real_id} -u"
    assert plan["commandPreview"] is None
    assert plan["agentId"] == "main" and plan["sessionKey"] == "agent:main:main"
    result, payload = run(gw, {"command": plan["argv"], "cwd": plan["cwd"], "agentId": "main", "sessionKey": "agent:main:main",
                               "approved": True, "approvalDecision": "allow-once", "systemRunPlan": plan})
    assert result["ok"] is True and payload["stdout"].strip() == str(os.getuid())


def test_prepare_shell_payload_preview(linked):
    gw, _ = linked(approvals_file())
    _, prepared = run(gw, {"command": ["/bin/sh", "-lc", "git status"]}, command="system.run.prepare")
    assert prepared["plan"]["argv"] == ["/bin/sh", "-lc", "git status"]
    assert prepared["plan"]["commandText"] == '/bin/sh -lc "git status"'
    assert prepared["plan"]["commandPreview"] == "git status"


def test_approved_run_with_a_different_plan_is_rejected(linked):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    _, prepared = run(gw, {"command": ["/usr/bin/id", "-u"]}, command="system.run.prepare")
    plan = prepared["plan"]
    result = gw.invoke("system.run", {"command": ["/usr/bin/id", "-g"], "approved": True, "systemRunPlan": plan})
    assert error_of(result) == ("INVALID_REQUEST", "explicit approval requires matching systemRunPlan")


def test_attack_allow_always_persists_the_inner_executable(linked, state_dir):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    _, prepared = run(gw, {"command": ["/usr/bin/nice", "/usr/bin/id", "-u"]}, command="system.run.prepare")
    plan = prepared["plan"]
    result, _ = run(gw, {"command": plan["argv"], "approvalDecision": "allow-always", "systemRunPlan": plan})
    assert result["ok"] is True
    patterns = [e["pattern"] for e in json.loads((state_dir / "exec-approvals.json").read_text())["agents"]["main"]["allowlist"]]
    assert patterns == ["/usr/bin/id"]
    result, _ = run(gw, {"command": ["/usr/bin/id", "-u"]})
    assert result["ok"] is True


def test_attack_swapped_cwd_after_prepare(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    work = tmp_path / "work"
    work.mkdir()
    _, prepared = run(gw, {"command": ["/usr/bin/id"], "cwd": str(work)}, command="system.run.prepare")
    plan = prepared["plan"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work.rename(tmp_path / "moved")
    work.symlink_to(elsewhere)
    result = gw.invoke("system.run", {"command": plan["argv"], "cwd": plan["cwd"], "approved": True, "systemRunPlan": plan})
    assert error_of(result) == ("INVALID_REQUEST", "SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink cwd)")


def test_prepare_refuses_a_symlinked_cwd(linked, tmp_path):
    gw, _ = linked(approvals_file())
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert error_of(gw.invoke("system.run.prepare", {"command": ["/usr/bin/id"], "cwd": str(tmp_path / "link")})) == (
        "INVALID_REQUEST", "SYSTEM_RUN_DENIED: approval requires canonical cwd (no symlink cwd)")


def test_attack_script_edited_after_approval(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    script = tmp_path / "run.sh"
    script.write_text("echo approved\n")
    _, prepared = run(gw, {"command": ["/bin/sh", "./run.sh"], "cwd": str(tmp_path)}, command="system.run.prepare")
    plan = prepared["plan"]
    import hashlib
    assert plan["mutableFileOperand"] == {"argvIndex": 1, "path": str(script.resolve()),
                                          "sha256": hashlib.sha256(b"echo approved\n").hexdigest()}
    script.write_text("echo evil\n")
    result = gw.invoke("system.run", {"command": plan["argv"], "cwd": plan["cwd"], "approved": True, "systemRunPlan": plan})
    assert error_of(result) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: approval script operand changed before execution")


def test_prepare_fails_closed_on_interpreter_eval(linked):
    gw, _ = linked(approvals_file())
    assert error_of(gw.invoke("system.run.prepare", {"command": ["perl", "-e", "print 1"]})) == (
        "INVALID_REQUEST", "SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command")


# ---------------------------------------------------------------- exec approvals get/set

def test_exec_approvals_get_set_and_stale_hash(linked, state_dir):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    result, snapshot = run(gw, {}, command="system.execApprovals.get")
    assert result["ok"] is True
    path = state_dir / "exec-approvals.json"
    assert snapshot["path"] == str(path) and snapshot["exists"] is True
    on_disk = json.loads(path.read_text())
    assert on_disk["socket"]["token"]
    assert snapshot["file"]["socket"] == {"path": on_disk["socket"]["path"]}
    assert on_disk["socket"]["token"] not in result["payloadJSON"]
    import hashlib
    assert snapshot["hash"] == hashlib.sha256(path.read_bytes()).hexdigest()

    new_file = dict(snapshot["file"])
    new_file["defaults"] = {"security": "full", "ask": "off"}
    assert error_of(gw.invoke("system.execApprovals.set", {"file": new_file})) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: exec approvals base hash required; reload and retry")
    assert error_of(gw.invoke("system.execApprovals.set", {"file": new_file, "baseHash": "0" * 64})) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: exec approvals changed; reload and retry")
    assert error_of(gw.invoke("system.execApprovals.set", {"baseHash": snapshot["hash"]})) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: exec approvals file required")
    result, updated = run(gw, {"file": new_file, "baseHash": snapshot["hash"]}, command="system.execApprovals.set")
    assert result["ok"] is True
    assert updated["hash"] != snapshot["hash"] and updated["hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert json.loads(path.read_text())["socket"]["token"] == on_disk["socket"]["token"]
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(state_dir.stat().st_mode & 0o777) == "0o700"
    result, _ = run(gw, {"command": ["/bin/echo", "now-full"]})
    assert result["ok"] is True
    # The hash from before the write is stale now.
    assert error_of(gw.invoke("system.execApprovals.set", {"file": new_file, "baseHash": snapshot["hash"]}))[1] == \
        "Error: INVALID_REQUEST: exec approvals changed; reload and retry"


def test_runs_beyond_the_queue_are_refused_with_unavailable(linked):
    gw, _ = linked(approvals_file(), args=["--max-concurrent-runs", "1"])
    futures = [gw.invoke_async("system.run", {"command": ["/bin/sleep", "0.5"]}, timeout_ms=120_000) for _ in range(70)]
    results = [f.result(timeout=150) for f in futures]
    refused = [r for r in results if not r["ok"]]
    assert len(refused) == 70 - 65
    assert all(r["error"] == {"code": "UNAVAILABLE",
                              "message": "node is busy: all 1 run slots are in use and 64 runs are queued; retry later"}
               for r in refused)
    assert all(json.loads(r["payloadJSON"])["success"] for r in results if r["ok"])
