"""Issue 18: the command line a user of the official node host expects — an exact command surface
(`--commands` / `--all-commands`, enforced by the Supervisor), `identity`, `--context-path`,
`--no-tls`, `install --runtime` — with upstream's messages and our exit codes."""
import json
import os
import re
import subprocess

from conftest import binary, gateway_args

FULL_SURFACE = ["system.which", "system.run.prepare", "system.run", "system.execApprovals.get", "system.execApprovals.set"]


def cli(state_dir, *args, env=None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    environment["OPENCLAW_STATE_DIR"] = str(state_dir)
    environment.update(env or {})
    return subprocess.run([binary("openclaw-node"), *args], env=environment, capture_output=True, text=True, timeout=60)


def write_approvals(state_dir):
    path = state_dir / "exec-approvals.json"
    path.write_text(json.dumps({"version": 1, "defaults": {"security": "full", "ask": "off"}, "agents": {}}))
    path.chmod(0o600)


def node_json(state_dir):
    return json.loads((state_dir / "node.json").read_text())


def test_commands_advertises_exactly_the_list_and_refuses_everything_else(make_gateway, nodes, state_dir):
    write_approvals(state_dir)
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw) + ["--commands", "system.which, system.run", "--commands", "system.which,no.such"])
    conn = gw.wait_for_hello(timeout=30)
    params = conn.connect_params
    assert params["commands"] == ["system.run", "system.which"]
    assert params["caps"] == ["system", "system.run.execution-context.v1"]
    node.wait_log(re.escape('msg="node-host: advertised commands: system.run, system.which"'))
    assert node_json(state_dir)["commands"] == ["no.such", "system.run", "system.which"]
    assert gw.invoke("system.which", {"bins": ["sh"]})["ok"] is True
    # Even when the gateway sends it: a command outside the list is not served.
    refused = gw.invoke("system.execApprovals.get", {})
    assert refused["ok"] is False
    assert refused["error"] == {"code": "UNAVAILABLE", "message": "command not advertised by this node"}
    # No host stats on a restricted surface, as upstream.
    assert [e for e in gw.node_events if e.get("event") == "node.host.stats"] == []
    node.stop()

    # A plain run keeps the saved list; --all-commands forgets it, and says so.
    mark = gw.mark()
    node = nodes(state_dir, gateway_args(gw))
    assert gw.wait_for_hello(timeout=30, since=mark).connect_params["commands"] == ["system.run", "system.which"]
    node.wait_log("node-host: advertised commands: system.run, system.which")
    node.stop()
    node = nodes(state_dir, gateway_args(gw) + ["--all-commands"])
    node.wait_log(re.escape('msg="node-host: cleared saved command allowlist; advertising the full default command surface"'))
    node.wait_log(re.escape("node-host: advertised commands: " + ", ".join(FULL_SURFACE)))
    assert "commands" not in node_json(state_dir)


def test_an_allowlist_that_keeps_nothing_fails_at_start(state_dir):
    out = cli(state_dir, "run", "--port", "1", "--commands", "nope,zip")
    assert out.returncode == 78, out
    assert ("Node command allowlist retained no available commands. Unknown or unavailable ids: nope, zip. "
            "Check --commands and enable the plugin that provides each command.") in out.stdout + out.stderr


def test_command_flags_are_checked_before_anything_runs(state_dir):
    for args, message in ((["--commands", "system.run,"], "--commands requires comma-separated non-empty command ids"),
                          (["--commands", "system.run", "--all-commands"], "--all-commands cannot be combined with --commands"),
                          (["--no-tls", "--tls-fingerprint", "a" * 64], "--no-tls cannot be combined with --tls-fingerprint")):
        for action in ("run", "install"):
            out = cli(state_dir, action, *args)
            assert out.returncode == 64, (action, args, out)
            assert f"Error: {message}" in out.stderr, out.stderr
    assert not (state_dir / "node.json").exists()


def test_a_corrupt_saved_allowlist_fails_closed(state_dir):
    (state_dir / "node.json").write_text(json.dumps({"version": 1, "nodeId": "n", "commands": "system.run"}))
    out = cli(state_dir, "run", "--port", "1")
    assert out.returncode == 78
    assert "invalid node-host commands" in out.stdout + out.stderr


def test_identity_is_read_only_and_prints_upstreams_shapes(make_gateway, nodes, state_dir):
    out = cli(state_dir, "identity", "--json")
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr == ("no node device identity found (start the node host once with `openclaw-node run` or "
                          "`openclaw-node install`)\n")
    assert not (state_dir / "identity" / "device.json").exists()
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw))
    conn = gw.wait_for_hello(timeout=30)
    node.stop()
    device = conn.connect_params["device"]
    before = (state_dir / "identity" / "device.json").read_bytes()
    out = cli(state_dir, "identity", "--json")
    assert out.returncode == 0
    assert out.stdout == json.dumps({"deviceId": device["id"], "publicKey": device["publicKey"]}, separators=(",", ":")) + "\n"
    text = cli(state_dir, "identity")
    assert text.stdout == f"deviceId:  {device['id']}\npublicKey: {device['publicKey']}\n"
    assert (state_dir / "identity" / "device.json").read_bytes() == before


def test_the_context_path_reaches_the_gateway_and_is_saved(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw) + ["--context-path", "openclaw-gw/"])
    conn = gw.wait_for_hello(timeout=30)
    assert conn.path == "/openclaw-gw"
    assert node_json(state_dir)["gateway"]["contextPath"] == "/openclaw-gw"
    node.stop()
    # Kept for the same gateway; an empty value clears it.
    mark = gw.mark()
    node = nodes(state_dir, ["--port", str(gw.port)])
    assert gw.wait_for_hello(timeout=30, since=mark).path == "/openclaw-gw"
    node.stop()
    mark = gw.mark()
    nodes(state_dir, gateway_args(gw) + ["--context-path", ""])
    assert gw.wait_for_hello(timeout=30, since=mark).path == "/"
    assert "contextPath" not in node_json(state_dir)["gateway"]


def test_install_takes_the_official_hosts_runtime_flags_and_says_what_runs(state_dir):
    out = cli(state_dir, "install", "--runtime", "deno")
    assert out.returncode == 64 and 'Error: Invalid --runtime (use "node" or "bun")' in out.stderr
    unit = cli(state_dir, "install", "--runtime", "node", "--runtime-path", "/usr/bin/node", "--print-unit",
               "--commands", "system.run,system.which", "--context-path", "/gw", "--no-tls")
    assert unit.returncode == 0, unit.stderr
    exec_start = next(line for line in unit.stdout.splitlines() if line.startswith("ExecStart="))
    assert " --no-tls --context-path /gw --commands system.run,system.which" in exec_start
    assert "--runtime" not in exec_start
    help_text = cli(state_dir, "install", "--help").stdout
    assert "The service always runs" in " ".join(help_text.split())
