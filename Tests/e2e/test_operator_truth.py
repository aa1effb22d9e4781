"""What an operator reads: the exact sentences, fields and exit codes of the node host when
something is wrong (a second instance, an unreachable or misconfigured gateway, a bad config),
when pairing completes, and when it stops; the JSON log format and the metrics at zero."""
import json
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import binary, free_port, gateway_args

IS_ROOT = os.geteuid() == 0
KV_FIELD = re.compile(r'([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def kv_fields(line: str) -> dict:
    """The fields of one kv log line, quoted values unescaped (the escapes are JSON's)."""
    return {key: json.loads(value) if value.startswith('"') else value for key, value in KV_FIELD.findall(line)}


def messages(text: str) -> list[str]:
    return [kv_fields(line).get("msg") for line in text.splitlines() if line.strip()]


def wait_msg(node, message: str, timeout: float = 20.0) -> dict:
    """Waits for a kv log line whose msg is exactly `message`; returns its fields."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(node.lines):
            fields = kv_fields(line)
            if fields.get("msg") == message:
                return fields
        if node.proc.poll() is not None:
            time.sleep(0.2)
            for line in list(node.lines):
                if kv_fields(line).get("msg") == message:
                    return kv_fields(line)
            raise AssertionError(f"node exited ({node.proc.returncode}) without msg {message!r}:\n{node.log}")
        time.sleep(0.05)
    raise AssertionError(f"no msg {message!r} within {timeout} s:\n{node.log}")


def node_env(state_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["OPENCLAW_STATE_DIR"] = str(state_dir)
    return env


def root_args() -> list[str]:
    return ["--exec-user", "root"] if IS_ROOT else []


def write_approvals(state_dir, security="full", ask="off"):
    path = state_dir / "exec-approvals.json"
    path.write_text(json.dumps({"version": 1, "defaults": {"security": security, "ask": ask}, "agents": {}}))
    path.chmod(0o600)


def connected(make_gateway, nodes, state_dir, args=()):
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw) + list(args))
    conn = gw.wait_for_hello(timeout=30)
    node.wait_log('msg="node host gateway connected"', timeout=15)
    return gw, node, conn


# ---------------------------------------------------------------- 1. one node per state dir

def test_second_run_on_a_live_state_dir_exits_75_naming_the_first(make_gateway, nodes, state_dir):
    gw, first, conn = connected(make_gateway, nodes, state_dir)
    mark = gw.mark()
    second = subprocess.run([binary("openclaw-node"), "run", *gateway_args(gw), *root_args()],
                            env=node_env(state_dir), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=30)
    assert second.returncode == 75, (second.stdout, second.stderr)
    expected = (f"another openclaw-node (pid {first.pid}) is running on this state dir ({state_dir}/node.lock is locked); "
                f"stop it first, or give this one its own OPENCLAW_STATE_DIR")
    assert expected in messages(second.stderr), second.stderr
    time.sleep(1.0)
    assert first.proc.poll() is None
    assert conn.open, conn.summary()
    assert gw.mark() == mark
    assert gw.connected_nodes() and all(c is conn for c in gw.connected_nodes().values())
    assert (state_dir / "node.sock").exists()


# ---------------------------------------------------------------- 2. JSON log format

def json_session(make_gateway, nodes, state_dir, args=()):
    """Connect, one system.run, SIGTERM; returns every non-empty output line parsed as JSON."""
    write_approvals(state_dir)
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw) + ["--log-format", "json", *args])
    gw.wait_for_hello(timeout=30)
    node.wait_log('"msg":"node host gateway connected"', timeout=15)
    result = gw.invoke("system.run", {"command": ["/bin/echo", "hi"]})
    assert result["ok"] is True, result
    assert json.loads(result["payloadJSON"])["stdout"] == "hi\n"
    assert node.stop(signal.SIGTERM) == 143
    lines = [line for line in node.lines if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not JSON: {line!r}")
    assert all(isinstance(r, dict) for r in records)
    return records


def test_json_log_format_every_line_is_json_with_typed_fields(make_gateway, nodes, state_dir):
    records = json_session(make_gateway, nodes, state_dir)
    # A quiet net worker writes nothing here; its lines are checked in the next test.
    procs = {r.get("proc") for r in records}
    assert {"supervisor", "exec"} <= procs, procs
    started = [r for r in records if r.get("msg") == "worker started"]
    assert {r["worker"] for r in started} >= {"net", "exec"}, started
    for r in started:
        assert isinstance(r["pid"], int) and not isinstance(r["pid"], bool), r
    stopped = [r for r in records if r.get("msg") == "stopped"]
    assert len(stopped) == 1, stopped
    assert isinstance(stopped[0]["exit"], int) and not isinstance(stopped[0]["exit"], bool)
    assert stopped[0]["exit"] == 143


def test_json_log_format_net_worker_lines_are_json_too(make_gateway, nodes, state_dir):
    """The same session with --metrics-port, where the net worker does speak ("metrics on …")."""
    port = free_port()
    records = json_session(make_gateway, nodes, state_dir, ["--metrics-port", str(port)])
    net = [r for r in records if r.get("proc") == "net"]
    assert net, records
    assert {"msg": f"metrics on http://127.0.0.1:{port}/metrics", "level": "info", "proc": "net"}.items() <= net[0].items(), net
    assert {"supervisor", "net", "exec"} <= {r.get("proc") for r in records}
    stopped = [r for r in records if r.get("msg") == "stopped"]
    assert len(stopped) == 1 and type(stopped[0]["exit"]) is int and stopped[0]["exit"] == 143, stopped


# ---------------------------------------------------------------- 3. connection failures

def test_closed_port_says_connection_refused(nodes, state_dir):
    port = free_port()
    node = nodes(state_dir, ["--host", "127.0.0.1", "--port", str(port)])
    fields = wait_msg(node, f"cannot connect to the gateway at 127.0.0.1:{port}: connection refused; "
                            f"is the gateway running on 127.0.0.1:{port}?")
    assert fields["level"] == "warning"


def test_plain_ws_to_a_tls_gateway_says_add_tls(make_gateway, nodes, state_dir):
    gw = make_gateway(tls=True)
    node = nodes(state_dir, gateway_args(gw))
    # The test gateway (Python ssl) drops a plaintext request without a TLS alert, so the node
    # sees the connection close, not TLS bytes: the second of the two sentences.
    wait_msg(node, f"the gateway at 127.0.0.1:{gw.port} closed the connection during the WebSocket upgrade; "
                   f"if it speaks TLS, add --tls")
    assert all(c.hello is False for c in gw.connections)


def test_tls_without_pin_to_a_self_signed_gateway_names_the_fingerprint(make_gateway, nodes, state_dir):
    gw = make_gateway(tls=True)
    fp = gw.cert_fingerprint_sha256
    assert re.fullmatch(r"[0-9a-f]{64}", fp), fp
    node = nodes(state_dir, gateway_args(gw) + ["--tls"])
    wait_msg(node, f"the gateway at 127.0.0.1:{gw.port}: certificate not trusted; its SHA-256 is {fp}; "
                   f"pin it with --tls-fingerprint {fp}")
    assert gw.received_frames == []


def test_plaintext_to_a_non_loopback_host_exits_78_with_the_fix(state_dir):
    out = subprocess.run([binary("openclaw-node"), "run", "--host", "10.0.0.5", "--port", "18789", *root_args()],
                         env=node_env(state_dir), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert out.returncode == 78, (out.stdout, out.stderr)
    assert ('node host: gateway URL "ws://10.0.0.5:18789" uses plaintext ws:// to a non-loopback address. '
            'Use --tls (wss://), or for a private address on a network you trust set OPENCLAW_ALLOW_INSECURE_PRIVATE_WS=1.'
            ) in messages(out.stderr), out.stderr
    assert "OPENCLAW_GATEWAY_URL" not in out.stderr + out.stdout


# ---------------------------------------------------------------- 4. pairing

def test_approval_connects_within_5_s_and_says_so(gateway, nodes, state_dir):
    node = nodes(state_dir, gateway_args(gateway))
    request_id = gateway.wait_for_pending_request(timeout=20)
    mark = gateway.mark()
    approved_at = time.monotonic()
    gateway.approve(request_id)
    conn = gateway.wait_for_hello(timeout=5, since=mark)
    assert time.monotonic() - approved_at <= 5.0
    assert conn.hello
    fields = wait_msg(node, "pairing approved, connected", timeout=10)
    assert fields["requestId"] == request_id


# ---------------------------------------------------------------- 5. metrics at zero

def test_metrics_start_at_zero(make_gateway, nodes, state_dir):
    port = free_port()
    gw, node, _ = connected(make_gateway, nodes, state_dir, ["--metrics-port", str(port)])
    node.wait_log(f"metrics on http://127.0.0.1:{port}/metrics")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    lines = text.splitlines()
    for worker in ("net", "exec", "browser"):
        assert f'openclaw_node_worker_restarts_total{{worker="{worker}"}} 0' in lines, text
    assert 'openclaw_node_runs_denied_total{reason="allowlist-miss"} 0' in lines, text
    assert "openclaw_node_pairing_pending 0.0" in lines, text
    assert "openclaw_node_last_successful_invoke_timestamp_seconds 0.0" in lines, text


# ---------------------------------------------------------------- 6. config strictness

def config_check(state_dir):
    out = subprocess.run([binary("openclaw-node"), "config", "check", "--json"], env=node_env(state_dir),
                         capture_output=True, text=True, timeout=30)
    try:
        return out.returncode, json.loads(out.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"config check printed no JSON ({out.returncode}):\n{out.stdout}\n{out.stderr}")


def problem(report, key):
    found = [p for p in report["problems"] if p.get("key") == key]
    assert len(found) == 1, report
    return {k: found[0].get(k) for k in ("severity", "file", "key", "message")}


def test_miscased_security_is_an_error_and_runs_fail_closed(make_gateway, nodes, state_dir):
    path = state_dir / "exec-approvals.json"
    path.write_text('{"version":1,"defaults":{"security":"Deny","ask":"off"},"agents":{}}')
    path.chmod(0o600)
    code, report = config_check(state_dir)
    assert code == 1, report
    assert problem(report, "defaults.security") == {
        "severity": "error", "file": f"{state_dir}/exec-approvals.json", "key": "defaults.security",
        "message": 'invalid value "Deny" (expected one of: deny, allowlist, full); using "deny" (values are case-sensitive)'}
    gw, _, _ = connected(make_gateway, nodes, state_dir)
    result = gw.invoke("system.run", {"command": ["echo", "hi"]})
    assert result["ok"] is False, result
    assert result["error"]["message"] == "SYSTEM_RUN_DISABLED: security=deny", result


def test_misspelt_config_key_is_a_warning_with_a_suggestion(tmp_path):
    state = tmp_path / "state-typo"
    state.mkdir(mode=0o700)
    (state / "openclaw.json").write_text("{ gateway: { auht: {} } }\n")
    code, report = config_check(state)
    assert code == 0, report
    assert problem(report, "gateway.auht") == {
        "severity": "warning", "file": f"{state}/openclaw.json", "key": "gateway.auht",
        "message": 'unknown key "auht" (did you mean "auth"?); ignored'}


# ---------------------------------------------------------------- 7. clean stop

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_by_signal_logs_no_warning_or_error_after_shutting_down(make_gateway, nodes, state_dir, sig):
    _, node, _ = connected(make_gateway, nodes, state_dir)
    assert node.stop(sig) == 128 + sig
    lines = list(node.lines)
    starts = [i for i, line in enumerate(lines) if 'msg="shutting down"' in line and "proc=supervisor" in line]
    assert len(starts) == 1, node.log
    after = lines[starts[0]:]
    bad = [line for line in after if "level=warning" in line or "level=error" in line]
    assert bad == [], "\n".join(after)
    assert kv_fields(after[-1]).get("msg") == "stopped" and kv_fields(after[-1])["exit"] == str(128 + sig), node.log
