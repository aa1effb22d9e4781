"""Issue 14: a command never gets more authority than the operator granted (through the real
binaries). One test per finding, each failing on the code before the issue."""
import hashlib
import json
import os
import time

import pytest

from test_system_run import approvals_file, error_of, events_for, linked, run  # noqa: F401

DENY_MISS = approvals_file("allowlist", "off")


def plan_for(gw, params):
    result, prepared = run(gw, params, command="system.run.prepare")
    assert result["ok"] is True, result
    return prepared["plan"]


def approved(gw, plan, **extra):
    params = {"command": plan["argv"], "approved": True, "systemRunPlan": plan, **extra}
    if plan.get("cwd"):
        params["cwd"] = plan["cwd"]
    return gw.invoke("system.run", params)


# ---------------------------------------------------------------- finding 2: NUL bytes

@pytest.mark.parametrize("params, message", [
    ({"command": ["/bin/echo", "a\u0000b"]}, "INVALID_REQUEST: command[1] contains a NUL character"),
    ({"command": ["/bin/pwd"], "cwd": "/tmp\u0000/x"}, "INVALID_REQUEST: cwd contains a NUL character"),
    ({"command": ["/bin/true"], "env": {"A\u0000B": "1"}}, "INVALID_REQUEST: env key contains a NUL character"),
    ({"command": ["/bin/true"], "env": {"LANG": "C\u0000.UTF-8"}}, "INVALID_REQUEST: env.LANG contains a NUL character"),
    ({"command": ["/bin/echo", "hi"], "rawCommand": "/bin/echo hi\u0000 evil"}, "INVALID_REQUEST: rawCommand contains a NUL character"),
], ids=["argv", "cwd", "env-key", "env-value", "rawCommand"])
def test_a_nul_byte_is_refused_naming_the_field(linked, params, message):
    gw, node = linked(approvals_file())
    mark = len(gw.node_events)
    assert error_of(gw.invoke("system.run", params)) == ("INVALID_REQUEST", message)
    assert not [e for e in gw.node_events[mark:] if e["event"] == "exec.finished"]
    assert error_of(gw.invoke("system.run.prepare", params)) == ("INVALID_REQUEST", message)


def test_system_which_never_finds_a_name_with_a_nul_byte(linked):
    gw, _ = linked(approvals_file())
    _, payload = run(gw, {"bins": ["sh\u0000evil", "sh"]}, command="system.which")
    assert list(payload["bins"]) == ["sh"]


# ---------------------------------------------------------------- finding 3: carriers, env preludes, display

def test_a_payload_with_positional_carriers_must_bind_the_full_argv(linked, tmp_path):
    gw, _ = linked(approvals_file())
    marker = tmp_path / "carried"
    command = ["/bin/sh", "-lc", '$0 "$1"', "/usr/bin/touch", str(marker)]
    assert error_of(gw.invoke("system.run", {"command": command, "rawCommand": '$0 "$1"'})) == (
        "INVALID_REQUEST", "INVALID_REQUEST: rawCommand does not match command")
    assert not marker.exists()
    plan = plan_for(gw, {"command": command})
    assert plan["commandPreview"] is None
    assert plan["commandText"] == f'/bin/sh -lc "$0 \\"$1\\"" /usr/bin/touch {marker}'
    # The full text is accepted, and it is what the events show.
    result, _ = run(gw, {"command": command, "rawCommand": plan["commandText"], "runId": "carried"})
    assert result["ok"] is True and marker.exists()
    assert events_for(gw, "carried", "exec.finished")[0]["command"] == plan["commandText"]


def test_carriers_do_not_satisfy_an_allowlist(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "off", allowlist=["/usr/bin/touch", "/bin/sh", "/usr/bin/sh"]))
    marker = tmp_path / "carried"
    result = gw.invoke("system.run", {"command": ["/bin/sh", "-lc", '$0 "$1"', "/usr/bin/touch", str(marker)]})
    assert error_of(result) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: allowlist miss (shell wrappers like sh/bash/zsh -c require "
                                "approval; approve once/always or run with --ask on-miss|always)")
    assert not marker.exists()


def test_an_env_prelude_with_assignments_must_bind_the_full_argv(linked):
    gw, _ = linked(approvals_file())
    command = ["/usr/bin/env", "FOO=bar", "/bin/sh", "-lc", "echo hi"]
    assert error_of(gw.invoke("system.run", {"command": command, "rawCommand": "echo hi"})) == (
        "INVALID_REQUEST", "INVALID_REQUEST: rawCommand does not match command")
    plan = plan_for(gw, {"command": command})
    assert plan["commandPreview"] is None
    result, payload = run(gw, {"command": command, "rawCommand": '/usr/bin/env FOO=bar /bin/sh -lc "echo hi"'})
    assert payload["stdout"] == "hi\n"


def test_events_show_the_payload_where_it_stands_for_the_command(linked):
    gw, _ = linked(approvals_file())
    run(gw, {"command": ["/bin/sh", "-lc", "echo hi"], "rawCommand": "echo hi", "runId": "payload-text"})
    assert events_for(gw, "payload-text", "exec.finished")[0]["command"] == "echo hi"
    plan = plan_for(gw, {"command": ["/bin/sh", "-lc", "echo hi"]})
    assert plan["commandText"] == '/bin/sh -lc "echo hi"' and plan["commandPreview"] == "echo hi"


def test_the_audit_log_escapes_invisible_characters(linked):
    gw, node = linked(approvals_file())
    run(gw, {"command": ["/bin/echo", "safe\u202eexe.sh\u200b"], "runId": "bidi"})
    line = node.wait_log('msg=system.run .*runId=bidi')
    assert "\\u202e" in line and "\\u200b" in line and "\u202e" not in line


# ---------------------------------------------------------------- finding 6: arithmetic evaluation

@pytest.mark.parametrize("payload, env", [
    ("ls ${X:='a[$(touch %(m)s)]'} ${HOME[$X]}", None),
    ("ls ${HOME:$LC_X}", {"LC_X": "a[$(touch %(m)s)]"}),
    ("ls ${!LC_X}", {"LC_X": "a[$(touch %(m)s)]"}),
    ("ls $((LC_X))", {"LC_X": "a[$(touch %(m)s)]"}),
    ("test -v \"$LC_X\"", {"LC_X": "a[$(touch %(m)s)]"}),
    ("printf -v \"$LC_X\" x", {"LC_X": "a[$(touch %(m)s)]"}),
], ids=["subscript", "substring-offset", "indirection", "arithmetic", "test-v", "printf-v"])
def test_bash_arithmetic_cannot_bypass_the_allowlist(linked, tmp_path, payload, env):
    gw, _ = linked(approvals_file("allowlist", "off", allowlist=["/usr/bin/ls", "/usr/bin/test", "/usr/bin/printf"]))
    marker = tmp_path / "M"
    params = {"command": ["bash", "-c", payload % {"m": marker}]}
    if env:
        params["env"] = {k: v % {"m": marker} for k, v in env.items()}
    code, _ = error_of(gw.invoke("system.run", params))
    assert code == "UNAVAILABLE"
    time.sleep(0.2)
    assert not marker.exists()
    # A plain allowlisted payload still runs.
    result, payload = run(gw, {"command": ["bash", "-c", f"ls {tmp_path}"]})
    assert result["ok"] is True and payload["exitCode"] == 0


# ---------------------------------------------------------------- finding 7: case-sensitive patterns

def test_an_allowlist_pattern_matches_case_sensitively(linked, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("tool", "TOOL"):
        (bindir / name).write_text(f"#!/bin/sh\necho {name}\n")
        (bindir / name).chmod(0o755)
    gw, _ = linked(approvals_file("allowlist", "off", allowlist=[str(bindir / "tool")]))
    assert error_of(gw.invoke("system.run", {"command": [str(bindir / "TOOL")]})) == (
        "UNAVAILABLE", "SYSTEM_RUN_DENIED: allowlist miss")
    result, payload = run(gw, {"command": [str(bindir / "tool")]})
    assert payload["stdout"] == "tool\n"


# ---------------------------------------------------------------- finding 8: symlinked scripts

def test_a_symlinked_script_cannot_be_swapped_after_approval(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    (tmp_path / "benign.sh").write_text("echo benign\n")
    (tmp_path / "evil.sh").write_text("echo evil\n")
    (tmp_path / "run.sh").symlink_to(tmp_path / "benign.sh")
    plan = plan_for(gw, {"command": ["bash", "run.sh"], "cwd": str(tmp_path)})
    benign = os.path.realpath(tmp_path / "benign.sh")
    assert plan["argv"][1] == benign
    assert plan["mutableFileOperand"] == {"argvIndex": 1, "path": benign, "sha256": hashlib.sha256(b"echo benign\n").hexdigest()}
    (tmp_path / "run.sh").unlink()
    (tmp_path / "run.sh").symlink_to(tmp_path / "evil.sh")
    result = approved(gw, plan)
    assert result["ok"] is True, result
    assert json.loads(result["payloadJSON"])["stdout"] == "benign\n"


# ---------------------------------------------------------------- finding 9: operands approvals never bound

def test_a_versioned_interpreter_name_binds_its_script(linked, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    versioned = bindir / "perl5.36.0"
    versioned.write_bytes(open("/usr/bin/perl", "rb").read())
    versioned.chmod(0o755)
    (tmp_path / "tool.pl").write_text('print "approved\\n";\n')
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    plan = plan_for(gw, {"command": [str(versioned), "tool.pl"], "cwd": str(tmp_path)})
    assert plan["mutableFileOperand"]["argvIndex"] == 1
    (tmp_path / "tool.pl").write_text('print "evil\\n";\n')
    assert error_of(approved(gw, plan)) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: approval script operand changed before execution")


def test_awk_and_sed_program_files_are_bound(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    (tmp_path / "prog.awk").write_text('BEGIN { print "approved" }\n')
    plan = plan_for(gw, {"command": ["awk", "-f", "prog.awk"], "cwd": str(tmp_path)})
    assert plan["mutableFileOperand"]["argvIndex"] == 2
    (tmp_path / "prog.awk").write_text('BEGIN { system("id") }\n')
    assert error_of(approved(gw, plan)) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: approval script operand changed before execution")
    (tmp_path / "edit.sed").write_text("s/a/b/\n")
    plan = plan_for(gw, {"command": ["sed", "-n", "-f", "edit.sed", "/dev/null"], "cwd": str(tmp_path)})
    assert plan["mutableFileOperand"]["argvIndex"] == 3


def test_a_shell_option_value_is_not_taken_for_the_script(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    (tmp_path / "xtrace").write_text("decoy\n")
    (tmp_path / "tool.sh").write_text("echo approved\n")
    plan = plan_for(gw, {"command": ["bash", "-o", "xtrace", "tool.sh"], "cwd": str(tmp_path)})
    assert plan["mutableFileOperand"]["argvIndex"] == 3
    assert plan["mutableFileOperand"]["path"] == os.path.realpath(tmp_path / "tool.sh")
    (tmp_path / "tool.sh").write_text("echo evil\n")
    assert error_of(approved(gw, plan)) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: approval script operand changed before execution")


def test_a_payload_that_runs_a_script_cannot_be_approved_as_text(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    (tmp_path / "run.pl").write_text("print 1;\n")
    assert error_of(gw.invoke("system.run.prepare", {"command": ["sh", "-lc", "perl ./run.pl"], "cwd": str(tmp_path)})) == (
        "INVALID_REQUEST", "SYSTEM_RUN_DENIED: approval cannot safely bind this interpreter/runtime command")


# ---------------------------------------------------------------- finding 10: environment

@pytest.mark.parametrize("key", ["PERLLIB", "PYTHONPLATLIBDIR", "LUA_INIT", "TAR_OPTIONS", "AWKPATH", "VIMINIT"])
def test_loader_variables_beyond_upstreams_list_are_refused(linked, tmp_path, key):
    gw, _ = linked(approvals_file("allowlist", "off", allowlist=["/usr/bin/perl"]))
    result = gw.invoke("system.run", {"command": ["/usr/bin/perl", "-e", "1"], "env": {key: str(tmp_path)}})
    assert error_of(result) == ("INVALID_REQUEST", f"SYSTEM_RUN_DENIED: environment override rejected (blocked override keys: {key})")


def test_an_approved_run_carries_only_terminal_and_locale_overrides(linked):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    plan = plan_for(gw, {"command": ["/usr/bin/printenv"]})
    assert error_of(approved(gw, plan, env={"FOO": "bar"})) == (
        "INVALID_REQUEST", "SYSTEM_RUN_DENIED: environment override rejected (not bound by the approval: FOO; "
                           "put them in the approved command as `env NAME=VALUE …`)")
    result = approved(gw, plan, env={"TERM": "dumb", "LC_ALL": "C"})
    assert result["ok"] is True and "TERM=dumb" in json.loads(result["payloadJSON"])["stdout"]


# ---------------------------------------------------------------- finding 11: forged operand paths

def test_a_forged_operand_path_to_a_fifo_cannot_hang_the_node(linked, tmp_path):
    gw, _ = linked(approvals_file("allowlist", "on-miss"))
    (tmp_path / "tool.sh").write_text("echo tool\n")
    os.mkfifo(tmp_path / "fifo")
    plan = plan_for(gw, {"command": ["bash", "tool.sh"], "cwd": str(tmp_path)})
    plan["mutableFileOperand"]["path"] = str(tmp_path / "fifo")
    started = time.monotonic()
    assert error_of(approved(gw, plan)) == ("UNAVAILABLE", "SYSTEM_RUN_DENIED: approval script operand changed before execution")
    assert time.monotonic() - started < 5
    # Nobody ever opened the FIFO for writing, and the node answers as before.
    assert gw.invoke("system.which", {"bins": ["sh"]})["ok"] is True
