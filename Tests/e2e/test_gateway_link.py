"""Issue 3: the gateway link through the real binaries and the project's test gateway."""
import json
import os
import signal

from conftest import gateway_args
from openclaw_test_gateway import TestGateway


def test_pairing_then_approval_connects_without_restart(gateway, nodes, state_dir):
    node = nodes(state_dir, gateway_args(gateway))
    request_id = gateway.wait_for_pending_request()
    node.wait_log(f"openclaw devices approve {request_id}")
    mark = gateway.mark()
    gateway.approve(request_id)
    gateway.wait_for_hello(timeout=40, since=mark)
    node.wait_log('msg="node host gateway connected"', timeout=10)
    assert node.proc.poll() is None
    stored = json.loads((state_dir / "identity" / "device-auth.json").read_text())
    assert stored["tokens"]["node"]["token"]
    assert oct((state_dir / "identity" / "device-auth.json").stat().st_mode & 0o777) == "0o600"
    result = gateway.invoke("system.which", {"bins": ["sh", "definitely-not-here", "/bin/sh"]})
    assert result["ok"] is True
    bins = json.loads(result["payloadJSON"])["bins"]
    assert set(bins) == {"sh"} and bins["sh"].endswith("/sh")
    unknown = gateway.invoke("no.such.command", {})
    assert unknown["ok"] is False
    assert unknown["error"] == {"code": "UNAVAILABLE", "message": "command not supported"}
    assert gateway.schema_violations == []


def test_restart_reconnects_with_stored_token_and_no_new_pairing(gateway, nodes, state_dir):
    first = nodes(state_dir, gateway_args(gateway))
    gateway.approve(gateway.wait_for_pending_request())
    gateway.wait_for_hello(timeout=40)
    assert first.stop() == 0
    pending_before = dict(gateway.pending_requests())
    mark = gateway.mark()
    nodes(state_dir, gateway_args(gateway))
    conn = gateway.wait_for_hello(timeout=15, since=mark)
    assert conn.hello
    assert gateway.pending_requests() == pending_before


def test_shared_token_mismatch_exits_1(nodes, state_dir):
    gw = TestGateway(token="right-token").start()
    try:
        node = nodes(state_dir, gateway_args(gw), env={"OPENCLAW_GATEWAY_TOKEN": "wrong-token"})
        assert node.wait_exit(timeout=15) == 1
        assert "AUTH_TOKEN_MISMATCH" in node.log
        assert "wrong-token" not in node.log
    finally:
        gw.close()


def test_unresolvable_secret_ref_exits_78_before_connecting(gateway, nodes, state_dir):
    (state_dir / "openclaw.json").write_text(
        "// JSON5\n{gateway: {auth: {token: {source: 'env', provider: 'default', id: 'NOPE_NOT_SET'},},},}\n")
    node = nodes(state_dir, gateway_args(gateway))
    assert node.wait_exit(timeout=10) == 78
    assert "gateway.auth.token secret reference could not be resolved" in node.log
    assert gateway.connection_count == 0


def test_plaintext_to_non_loopback_is_refused_before_connecting(nodes, state_dir):
    node = nodes(state_dir, ["--host", "203.0.113.7", "--port", "18789"])
    assert node.wait_exit(timeout=10) == 78
    assert "uses plaintext ws:// to a non-loopback address. Use --tls" in node.log
