"""Issue 19: every denial explains itself — the reason code, the policy values that produced it
and one remedy line, in exec.denied, the result, the log line, `status --json` (last denials)
and `openclaw-node approvals explain`; and a durable allow-always grant of a command the
allowlist cannot analyse satisfies its next run."""
import hashlib
import json
import os
import shutil
import subprocess

from conftest import binary
from test_system_run import approvals_file, error_of, events_for, linked, run  # noqa: F401


def cli(state_dir, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["OPENCLAW_STATE_DIR"] = str(state_dir)
    return subprocess.run([binary("openclaw-node"), *args], env=env, capture_output=True, text=True, timeout=60)


def write(state_dir, approvals):
    path = state_dir / "exec-approvals.json"
    path.write_text(json.dumps(approvals))
    path.chmod(0o600)


def test_a_miss_is_explained_in_the_event_the_result_the_log_and_status(linked, state_dir):
    gw, node = linked(approvals_file("allowlist", "off", ["/usr/bin/id"]))
    result = gw.invoke("system.run", {"command": ["/usr/bin/uname", "-a"], "runId": "r-miss"})
    assert error_of(result) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: allowlist miss")
    [event] = events_for(gw, "r-miss", "exec.denied")
    policy = {"security": "allowlist", "ask": "off", "askFallback": "deny", "agent": "main", "askFallbackApplied": False}
    name = json.loads((state_dir / "node.json").read_text())["displayName"]
    remedy = f'add an allowlist entry for /usr/bin/uname: openclaw approvals allowlist add --node {name} /usr/bin/uname'
    assert (event["reason"], event["policy"], event["remedy"]) == ("allowlist-miss", policy, remedy)
    assert json.loads(result["payloadJSON"]) == {"reason": "allowlist-miss", "message": "SYSTEM_RUN_DENIED: allowlist miss",
                                                 "policy": policy, "remedy": remedy}
    line = node.wait_log('msg="system.run denied"')
    for field in ('reason=allowlist-miss', 'security=allowlist', 'ask=off', 'askFallback=deny', 'agent=main'):
        assert field in line, line
    assert f'remedy="{remedy}"'.replace('"/usr/bin/uname"', '\\"/usr/bin/uname\\"') in line, line
    status = json.loads(cli(state_dir, "status", "--json").stdout)["node"]
    [last] = status["lastDenials"]
    assert {k: last[k] for k in ("reason", "message", "policy", "remedy", "runId", "command")} == {
        "reason": "allowlist-miss", "message": "SYSTEM_RUN_DENIED: allowlist miss", "policy": policy, "remedy": remedy,
        "runId": "r-miss", "command": "/usr/bin/uname -a"}


def test_the_ask_fallback_says_no_operator_was_reachable(linked):
    gw, _ = linked(approvals_file("allowlist", "always"))
    result = gw.invoke("system.run", {"command": ["/usr/bin/id"], "approvalSource": "ask-fallback", "runId": "r-fb"})
    assert error_of(result) == ("UNAVAILABLE", "SYSTEM_RUN_DISABLED: security=deny")
    [event] = events_for(gw, "r-fb", "exec.denied")
    assert event["policy"]["askFallbackApplied"] is True and event["policy"]["security"] == "deny"
    assert event["remedy"].startswith("askFallback=deny applied: no operator approval was reachable")


def test_approvals_explain_allows_denies_and_asks_without_running_anything(state_dir, tmp_path):
    marker = tmp_path / "ran"
    write(state_dir, approvals_file("allowlist", "off", ["/usr/bin/touch"]))
    allowed = cli(state_dir, "approvals", "explain", "--cwd", str(tmp_path), "--", "touch", str(marker))
    assert allowed.returncode == 0, allowed
    assert allowed.stdout.splitlines()[0] == f"allow: /usr/bin/touch {marker} would run in {tmp_path}"
    assert 'allowlist: /usr/bin/touch matched "/usr/bin/touch"' in allowed.stdout
    assert not marker.exists(), "explain runs nothing"
    denied = cli(state_dir, "approvals", "explain", "--json", "--", "/usr/bin/uname", "-a")
    assert denied.returncode == 1
    report = json.loads(denied.stdout)
    assert (report["decision"], report["reason"], report["message"]) == ("deny", "allowlist-miss", "SYSTEM_RUN_DENIED: allowlist miss")
    assert report["remedy"].startswith("add an allowlist entry for /usr/bin/uname")
    write(state_dir, approvals_file("allowlist", "on-miss", ["/usr/bin/touch"]))
    ask = cli(state_dir, "approvals", "explain", "--", "/usr/bin/uname")
    assert ask.returncode == 1
    assert ask.stdout.splitlines()[0] == "ask (approval-required): SYSTEM_RUN_DENIED: approval required"
    assert "policy: security=allowlist ask=on-miss askFallback=deny (agent main)" in ask.stdout
    syntax = cli(state_dir, "approvals", "explain", "--json", "--", "/bin/sh", "-c", "uname > /dev/null")
    assert json.loads(syntax.stdout)["reason"] == "approval-required"
    write(state_dir, approvals_file("allowlist", "off", ["/usr/bin/touch"]))
    syntax = cli(state_dir, "approvals", "explain", "--json", "--", "/bin/sh", "-c", "uname > /dev/null")
    assert (json.loads(syntax.stdout)["reason"], json.loads(syntax.stdout)["message"]) == (
        "unsupported-shell-syntax", "SYSTEM_RUN_DENIED: unsupported shell syntax")


def test_allow_always_of_an_unanalysable_command_is_remembered_for_that_exact_command(linked, state_dir, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    out = tmp_path / "out.txt"
    command = ["/bin/sh", "-lc", f"/usr/bin/id -u > {out}"]
    assert error_of(gw.invoke("system.run", {"command": command})) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: approval required")
    plan_result, prepared = run(gw, {"command": command}, command="system.run.prepare")
    plan = prepared["plan"]
    result, _ = run(gw, {"command": plan["argv"], "approvalDecision": "allow-always", "systemRunPlan": plan})
    assert result["ok"] is True and out.read_text().strip().isdigit()
    grant = "=command:" + hashlib.sha256(plan["commandText"].strip().encode()).hexdigest()
    entries = json.loads((state_dir / "exec-approvals.json").read_text())["agents"]["main"]["allowlist"]
    assert [(e["pattern"], e["source"]) for e in entries] == [(grant, "allow-always")]
    out.unlink()
    # The same command again, without an approval: the grant satisfies the on-miss ask.
    result, _ = run(gw, {"command": command})
    assert result["ok"] is True and out.exists()
    # Another command is still asked about.
    assert error_of(gw.invoke("system.run", {"command": ["/bin/sh", "-lc", f"/usr/bin/id -g > {out}"]})) == (
        "UNAVAILABLE", "SYSTEM_RUN_DENIED: approval required")


def test_execution_context_is_a_closed_routing_hint_for_the_child(linked):
    """upstream-2026 §1.5: `executionContext` (cap `system.run.execution-context.v1`) only sets the
    child's OPENCLAW_CHANNEL_CONTEXT / OPENCLAW_SUBAGENT_EXEC; anything else in it is refused."""
    gw, _ = linked(approvals_file("full"))
    assert "system.run.execution-context.v1" in gw.last_connection.connect_params["caps"]
    show = ["/bin/sh", "-c", 'printf "%s|%s" "$OPENCLAW_CHANNEL_CONTEXT" "$OPENCLAW_SUBAGENT_EXEC"']
    result, payload = run(gw, {"command": show, "executionContext": {"senderId": "sender-1", "chatId": "chat-1", "subagent": True},
                               "env": {"OPENCLAW_CHANNEL_CONTEXT": "forged"}})
    assert result["ok"] is True
    assert payload["stdout"] == '{"sender":{"id":"sender-1"},"chat":{"id":"chat-1"}}|1'
    result, payload = run(gw, {"command": show, "executionContext": {}})
    assert payload["stdout"] == "|"
    # Without a context, sent copies go too: an agent cannot pose as another channel or a sub-agent.
    result, payload = run(gw, {"command": show, "env": {"OPENCLAW_CHANNEL_CONTEXT": "forged", "OPENCLAW_SUBAGENT_EXEC": "1"}})
    assert result["ok"] is True and payload["stdout"] == "|"
    for context in (None, {"senderId": 7}, {"chatId": ""}, {"subagent": False}, {"env": {"PATH": "/tmp"}},
                    {"sessionKey": "agent:main:main"}):
        assert error_of(gw.invoke("system.run", {"command": ["/bin/true"], "executionContext": context})) == (
            "INVALID_REQUEST", "executionContext invalid or unsupported"), context
        assert error_of(gw.invoke("system.run.prepare", {"command": ["/bin/true"], "executionContext": context})) == (
            "INVALID_REQUEST", "Error: executionContext invalid or unsupported"), context


def test_an_approved_python_one_liner_runs_exactly_the_approved_code(linked, state_dir):
    """upstream-2026 §1.5: `python3 -c CODE` is materialised at prepare to a 0600 script under
    <state>/tmp/inline-eval/<sha256>.py, bound by hash; the approved run executes that code, and
    a script changed after the approval is refused."""
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    code = "import sys; print(6 * 7, sys.argv[0])"
    command = ["python3", "-c", code]
    assert error_of(gw.invoke("system.run", {"command": command})) == (
        "UNAVAILABLE", "SYSTEM_RUN_DENIED: approval required (python3 -c requires explicit approval in strictInlineEval mode)")
    _, prepared = run(gw, {"command": command}, command="system.run.prepare")
    plan = prepared["plan"]
    python = os.path.realpath(shutil.which("python3"))
    found = shutil.which("python3")
    digest = hashlib.sha256(json.dumps(
        {"version": 1, "interpreter": "python3", "flag": "-c", "extension": ".py", "code": code,
         "interpreterSnapshot": {"resolvedPath": found, "resolvedRealPath": python}, "runtimeWrapper": "cwd-eval-v1"},
        separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    script = state_dir / "tmp" / "inline-eval" / f"{digest}.py"
    assert plan["argv"] == [python, str(script)]
    assert plan["commandPreview"] == f'python3 -c "{code}"'
    assert plan["mutableFileOperand"] == {"argvIndex": 1, "path": str(script),
                                          "sha256": hashlib.sha256(script.read_bytes()).hexdigest()}
    assert oct(script.stat().st_mode & 0o777) == "0o600" and oct(script.parent.stat().st_mode & 0o777) == "0o700"
    result, payload = run(gw, {"command": plan["argv"], "approved": True, "systemRunPlan": plan})
    assert result["ok"] is True and payload["stdout"] == "42 -c\n", payload
    # Edited after the approval: refused, and the edit never runs.
    script.write_text('print("edited")\n')
    script.chmod(0o600)
    refused = gw.invoke("system.run", {"command": plan["argv"], "approved": True, "systemRunPlan": plan})
    assert refused["ok"] is False and "edited" not in json.dumps(refused)
    assert refused["error"]["message"].startswith("SYSTEM_RUN_DENIED"), refused
    # Forms upstream does not materialise still fail closed.
    for other in (["python3", "-B", "-c", "print(1)"], ["python3", "-c", "print(1)", "arg"]):
        assert error_of(gw.invoke("system.run.prepare", {"command": other})) == (
            "INVALID_REQUEST", "SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command"), other


def test_arg_pattern_entries_and_argv_bound_allow_always(linked, state_dir):
    """upstream-2026 §1.5: an entry's `argPattern` (a regex over the arguments joined by spaces)
    restricts it; allow-always writes the executable bound to its exact arguments
    (`sha256:argv:…`); an old generated path-only entry no longer matches anything."""
    approvals = approvals_file("allowlist", "on-miss")
    approvals["agents"] = {"main": {"allowlist": [
        {"pattern": "/usr/bin/uname", "argPattern": "^-[sr]$"},
        {"pattern": "/usr/bin/id", "source": "allow-always"},
        {"pattern": "/usr/bin/printf", "argPattern": "(a+)+$"},
    ]}}
    gw, _ = linked(approvals)
    assert run(gw, {"command": ["/usr/bin/uname", "-s"]})[0]["ok"] is True
    assert error_of(gw.invoke("system.run", {"command": ["/usr/bin/uname", "-a"]})) == (
        "UNAVAILABLE", "SYSTEM_RUN_DENIED: approval required")
    assert error_of(gw.invoke("system.run", {"command": ["/usr/bin/id"]})) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: approval required")
    # A pattern backtracking engines explode on is refused: the entry matches nothing, at once.
    assert error_of(gw.invoke("system.run", {"command": ["/usr/bin/printf", "a" * 5000 + "!"]}, timeout_ms=5000)) == (
        "UNAVAILABLE", "SYSTEM_RUN_DENIED: approval required")
    _, prepared = run(gw, {"command": ["/usr/bin/uname", "-n"]}, command="system.run.prepare")
    plan = prepared["plan"]
    result, _ = run(gw, {"command": plan["argv"], "approvalDecision": "allow-always", "systemRunPlan": plan})
    assert result["ok"] is True
    entries = json.loads((state_dir / "exec-approvals.json").read_text())["agents"]["main"]["allowlist"]
    grant = "sha256:argv:" + hashlib.sha256(b"1\x002\x00-n\x00").hexdigest()
    assert {"pattern": "/usr/bin/uname", "argPattern": grant, "source": "allow-always"}.items() <= entries[-1].items(), entries[-1]
    assert entries[0]["argPattern"] == "^-[sr]$", "the operator's entry keeps its argPattern"
    assert run(gw, {"command": ["/usr/bin/uname", "-n"]})[0]["ok"] is True, "the grant covers the same arguments"
    assert error_of(gw.invoke("system.run", {"command": ["/usr/bin/uname", "-m"]})) == (
        "UNAVAILABLE", "SYSTEM_RUN_DENIED: approval required"), "and no others"
