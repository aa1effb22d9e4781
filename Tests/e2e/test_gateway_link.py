"""Issue 3: the gateway link through the real binaries and the project's test gateway."""
import json
import os
import signal
import time

import pytest

from conftest import gateway_args


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
    # The device token is stored once the Supervisor has processed hello-ok (it logs this).
    first.wait_log('msg="node host gateway connected"', timeout=10)
    assert first.stop() == 0
    pending_before = dict(gateway.pending_requests())
    mark = gateway.mark()
    nodes(state_dir, gateway_args(gateway))
    conn = gateway.wait_for_hello(timeout=15, since=mark)
    assert conn.hello
    assert gateway.pending_requests() == pending_before


def test_shared_token_mismatch_exits_1(make_gateway, nodes, state_dir):
    gw = make_gateway(token="right-token")
    node = nodes(state_dir, gateway_args(gw), env={"OPENCLAW_GATEWAY_TOKEN": "wrong-token"})
    assert node.wait_exit(timeout=15) == 1
    assert "AUTH_TOKEN_MISMATCH" in node.log
    assert "wrong-token" not in node.log


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


def test_tick_stall_closes_with_4000_and_reconnects(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True, tick_interval_ms=500)
    nodes(state_dir, gateway_args(gw))
    first = gw.wait_for_hello(timeout=20)
    mark = gw.mark()
    gw.stop_ticks()
    gw.wait_for_close(first, timeout=10)
    assert first.client_close_code == 4000
    gw.resume_ticks()
    again = gw.wait_for_hello(timeout=15, since=mark)
    assert again.device_id == first.device_id
    assert gw.schema_violations == []


def test_close_1012_reconnects(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True)
    nodes(state_dir, gateway_args(gw))
    first = gw.wait_for_hello(timeout=20)
    mark = gw.mark()
    gw.send_shutdown_event_and_close(code=1012)
    gw.wait_for_close(first)
    assert first.close_code == 1012
    again = gw.wait_for_hello(timeout=15, since=mark)
    assert again.device_id == first.device_id


def test_gateway_restart_reconnects_with_stored_token(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw))
    first = gw.wait_for_hello(timeout=20)
    mark = gw.mark()
    gw.restart(down_s=2.0)
    again = gw.wait_for_hello(timeout=20, since=mark)
    assert again.device_id == first.device_id
    token = json.loads((state_dir / "identity" / "device-auth.json").read_text())["tokens"]["node"]["token"]
    assert again.connect_params["auth"]["token"] == token
    assert node.proc.poll() is None


def test_env_token_beats_config_token(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True, token="from-env")
    (state_dir / "openclaw.json").write_text('{"gateway": {"auth": {"token": "from-config"}}}\n')
    nodes(state_dir, gateway_args(gw), env={"OPENCLAW_GATEWAY_TOKEN": "from-env"})
    conn = gw.wait_for_hello(timeout=20)
    assert conn.connect_params["auth"]["token"] == "from-env"


def test_json5_config_with_file_secret_ref(make_gateway, nodes, state_dir, tmp_path):
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"gateway": {"token": "file-secret"}}))
    secrets.chmod(0o600)
    (state_dir / "openclaw.json").write_text(
        "// comments, unquoted keys, single quotes and trailing commas are JSON5\n"
        "{\n  secrets: {providers: {mounted: {source: 'file', path: '" + str(secrets) + "', mode: 'json'}}},\n"
        "  gateway: {\n    auth: {\n"
        "      token: {source: 'file', provider: 'mounted', id: '/gateway/token'},\n"
        "    },\n  },\n}\n")
    gw = make_gateway(auto_approve=True, token="file-secret")
    nodes(state_dir, gateway_args(gw))
    conn = gw.wait_for_hello(timeout=20)
    assert conn.connect_params["auth"]["token"] == "file-secret"


def test_single_value_file_secret_drops_the_trailing_newline(make_gateway, nodes, state_dir, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("single-secret\n")
    (state_dir / "openclaw.json").write_text(
        "{secrets: {providers: {plain: {source: 'file', path: '" + str(secret) + "', mode: 'singleValue'}}},"
        " gateway: {auth: {token: {source: 'file', provider: 'plain', id: 'value'}}}}")
    gw = make_gateway(auto_approve=True, token="single-secret")
    nodes(state_dir, gateway_args(gw))
    conn = gw.wait_for_hello(timeout=20)
    assert conn.connect_params["auth"]["token"] == "single-secret"


def test_env_secret_ref(make_gateway, nodes, state_dir):
    (state_dir / "openclaw.json").write_text(
        "{gateway: {auth: {token: {source: 'env', provider: 'default', id: 'MY_GW_TOKEN'}}}}\n")
    gw = make_gateway(auto_approve=True, token="env-secret")
    nodes(state_dir, gateway_args(gw), env={"MY_GW_TOKEN": "env-secret"})
    conn = gw.wait_for_hello(timeout=20)
    assert conn.connect_params["auth"]["token"] == "env-secret"


def test_device_token_mismatch_deletes_the_stored_token(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True, check_device_tokens=True)
    first = nodes(state_dir, gateway_args(gw))
    conn = gw.wait_for_hello(timeout=20)
    # The device token is stored once the Supervisor has processed hello-ok (it logs this).
    first.wait_log('msg="node host gateway connected"', timeout=10)
    assert first.stop() == 0
    gw.rotate_device_token(conn.device_id)
    mark = gw.mark()
    node = nodes(state_dir, gateway_args(gw))
    rejected = gw.wait_for_connection(since=mark, timeout=15,
                                      predicate=lambda c: c.error_code is not None)
    assert rejected.details_code == "AUTH_DEVICE_TOKEN_MISMATCH"
    node.wait_log("device token", timeout=10)
    assert node.proc.poll() is None
    auth = state_dir / "identity" / "device-auth.json"
    gw.wait_for(lambda: not auth.exists() or "node" not in json.loads(auth.read_text()).get("tokens", {}),
                timeout=10)


def test_v2_signature_retry(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True, reject_v3_signatures=True)
    nodes(state_dir, gateway_args(gw))
    conn = gw.wait_for_hello(timeout=20)
    assert conn.signature_version == "v2"
    assert gw.schema_violations == []


def test_node_id_flag_overrides_and_clears_stored_token(gateway, nodes, state_dir):
    first = nodes(state_dir, gateway_args(gateway))
    gateway.approve(gateway.wait_for_pending_request())
    gateway.wait_for_hello(timeout=40)
    # The device token is stored once the Supervisor has processed hello-ok (it logs this).
    first.wait_log('msg="node host gateway connected"', timeout=10)
    assert first.stop() == 0
    assert (state_dir / "identity" / "device-auth.json").exists()
    mark = gateway.mark()
    nodes(state_dir, gateway_args(gateway) + ["--node-id", "lab-box-7"])
    conn = gateway.wait_for_connection(since=mark, timeout=15, predicate=lambda c: c.connect_received)
    assert conn.connect_params["client"]["instanceId"] == "lab-box-7"
    assert "token" not in conn.connect_params.get("auth", {})
    config = json.loads((state_dir / "node.json").read_text())
    assert config["nodeId"] == "lab-box-7"


PIN_SPELLINGS = {
    "bare-lower": lambda fp: fp.lower(),
    "sha256-prefix-colons-upper": lambda fp: "sha256:" + ":".join(fp[i:i + 2] for i in range(0, len(fp), 2)).upper(),
    "colons-lower": lambda fp: ":".join(fp[i:i + 2] for i in range(0, len(fp), 2)).lower(),
}


@pytest.mark.parametrize("spelling", sorted(PIN_SPELLINGS))
def test_wss_with_the_right_pin_connects(make_gateway, nodes, state_dir, spelling):
    gw = make_gateway(auto_approve=True, tls=True)
    raw = gw.cert_fingerprint_sha256.replace(":", "").lower()
    if raw.startswith("sha256"):
        raw = raw[len("sha256"):]
    pin = PIN_SPELLINGS[spelling](raw)
    nodes(state_dir, gateway_args(gw) + ["--tls", "--tls-fingerprint", pin])
    conn = gw.wait_for_hello(timeout=20)
    assert conn.hello
    stored = json.loads((state_dir / "node.json").read_text())
    assert stored["gateway"]["tls"] is True


def test_wss_with_a_wrong_pin_never_sends_connect(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True, tls=True, token="must-not-leak")
    node = nodes(state_dir, gateway_args(gw) + ["--tls", "--tls-fingerprint", "ab" * 32],
                 env={"OPENCLAW_GATEWAY_TOKEN": "must-not-leak"})
    node.wait_log("fingerprint", timeout=15)
    time.sleep(2.5)
    assert all(not c.connect_received for c in gw.connections)
    assert gw.received_frames == []
    assert node.proc.poll() is None
