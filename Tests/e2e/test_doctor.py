"""Issue 7: doctor, metrics and logs without secrets."""
import json
import os
import re
import subprocess
import urllib.request

from conftest import binary, gateway_args

IS_ROOT = os.geteuid() == 0


def doctor(state_dir, *args, env=None):
    full = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    full["OPENCLAW_STATE_DIR"] = str(state_dir)
    full.update(env or {})
    out = subprocess.run([binary("openclaw-node"), "doctor", "--json", *args], capture_output=True, text=True,
                         timeout=90, env=full)
    try:
        return out.returncode, json.loads(out.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"doctor printed no JSON ({out.returncode}):\n{out.stdout}\n{out.stderr}")


def check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


def test_doctor_reports_every_protection_and_a_passing_self_test(state_dir):
    code, report = doctor(state_dir, "--port", "9")
    assert code == 0 and report["ok"] is True, report
    for name in ("confinement.net", "confinement.exec", "config", "self-test"):
        assert check(report, name)["status"] == "ok", check(report, name)
    net = {e["step"]: e["state"] for e in report["workers"]["net"]}
    assert net == {"user": "active" if IS_ROOT else "not-needed", "capabilities": "active", "no-new-privs": "active",
                   "landlock": "active", "seccomp": "active"}
    execw = {e["step"]: e["state"] for e in report["workers"]["exec"]}
    assert execw["seccomp"] == "active" and execw["no-new-privs"] == "active" and execw["capabilities"] == "active"
    assert check(report, "self-test")["detail"].startswith("paired, system.which and system.run through the confined workers")
    # Nothing listens on port 9: a warning with the fix, not a failure.
    gateway = check(report, "gateway")
    assert gateway["status"] == "warn" and gateway["fix"].startswith("start the gateway")


def test_doctor_with_a_broken_config_fails(state_dir):
    (state_dir / "openclaw.json").write_text("{gateway: {auth: {token: }}")
    code, report = doctor(state_dir, "--port", "9", "--skip-self-test")
    assert code == 1 and report["ok"] is False
    config = check(report, "config")
    assert config["status"] == "fail" and "not valid JSON5" in config["detail"]
    assert config["fix"].startswith("fix ")


def test_doctor_with_an_unresolvable_secret_ref_fails(state_dir):
    (state_dir / "openclaw.json").write_text("{gateway: {auth: {token: {source: 'env', provider: 'default', id: 'NOPE_UNSET'}}}}")
    code, report = doctor(state_dir, "--port", "9", "--skip-self-test")
    assert code == 1
    assert check(report, "config")["detail"] == (
        "gateway.auth.token secret reference could not be resolved: environment variable NOPE_UNSET is not set")


def test_doctor_checks_the_tls_pin_without_sending_credentials(state_dir, make_gateway):
    gw = make_gateway(tls=True, token="doctor-secret")
    args = gateway_args(gw)
    code, report = doctor(state_dir, *args, "--tls-fingerprint", gw.cert_fingerprint_sha256, "--skip-self-test",
                          env={"OPENCLAW_GATEWAY_TOKEN": "doctor-secret"})
    assert code == 0, report
    assert check(report, "gateway")["status"] == "ok" and "TLS pin matches" in check(report, "gateway")["detail"]
    # Once the pin is verified, doctor authenticates: this device is not paired yet.
    auth = check(report, "auth")
    assert auth["status"] == "warn" and auth["detail"].startswith("PAIRING_REQUIRED: "), auth
    assert auth["fix"] == f"on the gateway: openclaw devices approve {gw.wait_for_pending_request()}"
    frames, connections = len(gw.received_frames), len(gw.connections)
    code, report = doctor(state_dir, *args, "--tls-fingerprint", "ab" * 32, "--skip-self-test")
    gateway = check(report, "gateway")
    assert code == 1 and gateway["status"] == "fail"
    assert gw.cert_fingerprint_sha256.replace(":", "").lower().removeprefix("sha256") in gateway["fix"]
    # A wrong pin: no credential is sent.
    assert check(report, "auth")["detail"] == "skipped: the gateway check did not pass, so no credential was sent"
    assert len(gw.received_frames) == frames and all(not c.connect_received for c in gw.connections[connections:])


def test_doctor_with_a_wrong_token_fails_the_auth_check(state_dir, make_gateway):
    gw = make_gateway(token="right-token")
    code, report = doctor(state_dir, *gateway_args(gw), "--skip-self-test", env={"OPENCLAW_GATEWAY_TOKEN": "wrong-token"})
    auth = check(report, "auth")
    assert code == 1 and auth["status"] == "fail", report
    assert auth["detail"] == "AUTH_TOKEN_MISMATCH: unauthorized: gateway token mismatch (provide gateway auth token)"
    code, report = doctor(state_dir, *gateway_args(gw), "--skip-self-test")
    assert code == 1
    assert check(report, "auth")["detail"] == "AUTH_TOKEN_MISSING: unauthorized: gateway token missing (provide gateway auth token)"


def test_metrics_endpoint_counts_invokes_and_denials(make_gateway, nodes, state_dir):
    (state_dir / "exec-approvals.json").write_text(json.dumps({"version": 1, "defaults": {"security": "deny"}}))
    gw = make_gateway(auto_approve=True)
    port = free_port()
    node = nodes(state_dir, gateway_args(gw) + ["--metrics-port", str(port)])
    gw.wait_for_hello(timeout=20)
    node.wait_log("metrics on http://127.0.0.1")
    gw.invoke("system.which", {"bins": ["sh"]})
    gw.invoke("system.run", {"command": ["/bin/true"]})
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert re.search(r'^openclaw_node_gateway_connected 1(\.0)?$', text, re.M), text
    assert re.search(r'^openclaw_node_invokes_total\{command="system.which",outcome="ok"\} 1$', text, re.M), text
    assert re.search(r'^openclaw_node_invokes_total\{command="system.run",outcome="error"\} 1$', text, re.M), text
    assert re.search(r'^openclaw_node_runs_denied_total\{reason="security=deny"\} 1$', text, re.M), text


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_logs_never_contain_the_token_or_password(make_gateway, nodes, state_dir):
    token, password = "tok-7a6b5c4d3e2f", "pw-9f8e7d6c5b4a"
    (state_dir / "exec-approvals.json").write_text(json.dumps({"version": 1, "defaults": {"security": "full", "ask": "off"}}))
    for log_format in ("kv", "json"):
        gw = make_gateway(token=token, auto_approve=True)
        node = nodes(state_dir, gateway_args(gw) + ["--log-format", log_format],
                     env={"OPENCLAW_GATEWAY_TOKEN": token, "OPENCLAW_GATEWAY_PASSWORD": password})
        gw.wait_for_hello(timeout=20)
        gw.invoke("system.run", {"command": ["/bin/echo", "hello"]})
        gw.invoke("system.run", {"command": ["/bin/true"], "env": {"LD_PRELOAD": "x"}})
        gw.restart(down_s=0.5)
        gw.wait_for_hello(timeout=20)
        assert node.stop() == 143
        log = node.log
        assert "system.run" in log
        assert token not in log and password not in log
        device_token = json.loads((state_dir / "identity" / "device-auth.json").read_text())["tokens"]["node"]["token"]
        assert device_token not in log


def test_doctor_says_when_a_login_shell_resets_path(state_dir):
    """Issue 19 (upstream #134354): agents run `/bin/sh -lc`, and /etc/profile sets PATH anew."""
    def login_path(path):
        return subprocess.run(["/bin/sh", "-lc", 'printf "%s" "$PATH"'], env={"HOME": "/nonexistent", "PATH": path},
                              capture_output=True, text=True, timeout=30).stdout
    odd = "/opt/odd-bin:/usr/bin:/bin"
    expected = login_path(odd)
    assert expected != odd
    _, report = doctor(state_dir, "--port", "9", "--skip-self-test", env={"PATH": odd, "HOME": "/nonexistent"})
    result = check(report, "login-path")
    assert result["status"] == "warn"
    assert result["detail"] == (f"/bin/sh -lc (how agents run shell commands) resets PATH to {expected} (from /etc/profile or "
                                f"~/.profile); the node resolves commands with {odd}, so an allowlisted name can run another "
                                "binary or none")
    assert "/etc/profile.d/openclaw-node.sh" in result["fix"]
    # A PATH the login shell keeps as it is: fine.
    steady = login_path(expected)
    _, report = doctor(state_dir, "--port", "9", "--skip-self-test", env={"PATH": steady, "HOME": "/nonexistent"})
    assert login_path(steady) == steady
    assert check(report, "login-path")["status"] == "ok"
    assert check(report, "login-path")["detail"] == f"/bin/sh -lc keeps the node's PATH ({steady})"
