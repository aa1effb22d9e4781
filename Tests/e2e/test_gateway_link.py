"""Issue 3: the gateway link through the real binaries and the project's test gateway."""
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.request

import pytest

from conftest import free_port, gateway_args


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
    assert first.stop() == 143
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
    assert first.stop() == 143
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


def test_node_id_flag_changes_the_instance_id_and_keeps_the_pairing(gateway, nodes, state_dir):
    first = nodes(state_dir, gateway_args(gateway))
    gateway.approve(gateway.wait_for_pending_request())
    gateway.wait_for_hello(timeout=40)
    # The device token is stored once the Supervisor has processed hello-ok (it logs this).
    first.wait_log('msg="node host gateway connected"', timeout=10)
    assert first.stop() == 143
    assert (state_dir / "identity" / "device-auth.json").exists()
    mark = gateway.mark()
    nodes(state_dir, gateway_args(gateway) + ["--node-id", "lab-box-7"])
    conn = gateway.wait_for_connection(since=mark, timeout=15, predicate=lambda c: c.connect_received)
    assert conn.connect_params["client"]["instanceId"] == "lab-box-7"
    # As upstream since 2026-07: the device (and its token) stay; no new pairing.
    stored = json.loads((state_dir / "identity" / "device-auth.json").read_text())["tokens"]["node"]["token"]
    assert conn.connect_params.get("auth", {}).get("token") == stored
    gateway.wait_for_hello(since=mark, timeout=15)
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


# ---------------------------------------------------------------- issue 14: deadlines, never silent

class SilentListener:
    """Accepts TCP connections and never answers (a proxy or a half-dead gateway)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.first_bytes = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                self.first_bytes.append(conn.recv(64))
            except OSError:
                self.first_bytes.append(b"")
            self.accepted.append(conn)

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["websocket-upgrade", "tls-handshake"])
def test_a_silent_tcp_listener_is_abandoned_and_retried(make_gateway, nodes, state_dir, tls):
    silent = SilentListener()
    args = ["--host", "127.0.0.1", "--port", str(silent.port)] + (["--tls"] if tls else [])
    try:
        node = nodes(state_dir, args, env={"OPENCLAW_HANDSHAKE_TIMEOUT_MS": "1500"})
        deadline = time.monotonic() + 15
        while len(silent.accepted) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(silent.accepted) >= 2, node.log
        phase = "TLS handshake" if tls else "WebSocket upgrade"
        line = node.wait_log("gateway connect attempt stalled; retrying")
        assert f'phase="{phase}"' in line and "timeoutMs=1500" in line, line
        # What the node sent before it gave up: a TLS ClientHello, or the HTTP upgrade request.
        assert silent.first_bytes[0].startswith(b"\x16\x03" if tls else b"GET / HTTP/1.1")
    finally:
        silent.close()
    if tls:
        return
    # The port is taken over by a real gateway: the node connects without a restart.
    gw = make_gateway(auto_approve=True, port=silent.port)
    gw.wait_for_hello(timeout=20)


def test_the_challenge_phase_has_a_deadline_and_closes_1008(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True)
    gw.suppress_challenge = True
    node = nodes(state_dir, gateway_args(gw), env={"OPENCLAW_HANDSHAKE_TIMEOUT_MS": "1000"})
    first = gw.wait_for_connection(timeout=10)
    gw.wait_for_close(first, timeout=10)
    assert first.client_close_code == 1008 and first.client_close_reason == "connect challenge timeout"
    line = node.wait_log("gateway handshake stalled; retrying")
    assert 'phase=connect.challenge' in line
    gw.suppress_challenge = False
    gw.wait_for_hello(timeout=15)


def linked_node(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw))
    conn = gw.wait_for_hello(timeout=20)
    return gw, node, conn


def result_for(gw, invoke_id, timeout=10.0):
    return gw.wait_for(lambda: next((r for r in gw.invoke_results if r.get("id") == invoke_id), None),
                       timeout=timeout, message=f"no node.invoke.result for {invoke_id}")


def test_an_invoke_with_timeout_1e400_gets_an_invalid_request_result(make_gateway, nodes, state_dir):
    gw, node, conn = linked_node(make_gateway, nodes, state_dir)
    frame = ('{"type":"event","event":"node.invoke.request","payload":{"id":"inv-1e400","nodeId":"%s",'
             '"command":"system.which","paramsJSON":"{\\"bins\\":[\\"sh\\"]}","timeoutMs":1e400}}' % conn.device_id)
    gw.send_raw(frame)
    result = result_for(gw, "inv-1e400")
    assert result["ok"] is False and result["nodeId"] == conn.device_id
    assert result["error"] == {"code": "INVALID_REQUEST",
                               "message": "INVALID_REQUEST: timeoutMs must be a non-negative finite number"}
    # The node goes on serving.
    assert gw.invoke("system.which", {"bins": ["sh"]})["ok"] is True


def test_an_unreadable_invoke_frame_with_a_readable_id_is_answered(make_gateway, nodes, state_dir):
    gw, node, conn = linked_node(make_gateway, nodes, state_dir)
    frame = ('{"type":"event","event":"node.invoke.request","payload":{"id":"inv-broken","nodeId":"%s",'
             '"command":"system.which","paramsJSON":"{}",,}}' % conn.device_id)
    gw.send_raw(frame)
    result = result_for(gw, "inv-broken")
    assert result["ok"] is False and result["error"]["code"] == "INVALID_REQUEST"
    assert result["error"]["message"].startswith("INVALID_REQUEST: invoke frame is not valid JSON (JSON error at byte ")
    line = node.wait_log("gateway sent a frame that cannot be read")
    assert f"bytes={len(frame)}" in line and 'prefix="{\\"type\\":\\"event\\"' in line


def test_a_malformed_invoke_payload_with_an_id_is_answered(make_gateway, nodes, state_dir):
    gw, node, conn = linked_node(make_gateway, nodes, state_dir)
    gw.send_event("node.invoke.request", {"id": "inv-nocmd", "nodeId": conn.device_id, "paramsJSON": "{}"})
    result = result_for(gw, "inv-nocmd")
    assert result["error"] == {"code": "INVALID_REQUEST", "message": "INVALID_REQUEST: command required"}


def test_garbage_frames_are_logged_counted_and_harmless(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True)
    port = free_port()
    node = nodes(state_dir, gateway_args(gw) + ["--metrics-port", str(port)])
    gw.wait_for_hello(timeout=20)
    for text in ("not json", "[1,2", '{"type":', "\u0000\u0001"):
        gw.send_raw(text)
    node.wait_log("gateway sent a frame that cannot be read", count=4)
    assert gw.invoke("system.which", {"bins": ["sh"]})["ok"] is True

    def dropped():
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        match = re.search(r"^openclaw_node_gateway_frames_dropped_total (\d+)", body, re.M)
        return match and int(match.group(1)) >= 4
    gw.wait_for(dropped, timeout=10, message="the dropped-frames counter did not reach 4")


@pytest.mark.parametrize("offset_ms", [0, 90_000])
def test_the_connect_signature_is_made_at_the_challenges_time(make_gateway, nodes, state_dir, offset_ms):
    """Issue 17: `device.signedAt` is the challenge's `ts` exactly (today's clients sign with
    the gateway's time), also when the gateway's clock is 90 s off ours."""
    gw = make_gateway(auto_approve=True)
    gw.challenge_ts_offset_ms = offset_ms
    nodes(state_dir, gateway_args(gw))
    conn = gw.wait_for_hello(timeout=30)
    assert conn.challenge_ts is not None
    assert conn.connect_params["device"]["signedAt"] == conn.challenge_ts


def test_connect_names_the_device_family_and_the_machines_model(make_gateway, nodes, state_dir):
    """Issue 17: `client.deviceFamily` "Linux" and `client.modelIdentifier` as upstream reads it."""
    expected = None
    for path in ("/sys/devices/virtual/dmi/id/product_name", "/proc/device-tree/model"):
        try:
            text = open(path, encoding="utf-8", errors="replace").read().strip().rstrip("\0").strip()
        except OSError:
            continue
        if text:
            expected = text[:64]
            break
    gw = make_gateway(auto_approve=True)
    nodes(state_dir, gateway_args(gw))
    client = gw.wait_for_hello(timeout=30).connect_params["client"]
    assert client["deviceFamily"] == "Linux"
    assert client.get("modelIdentifier") == expected


def test_a_starting_gateway_is_asked_again_shortly_and_the_node_closes_1013(make_gateway, nodes, state_dir):
    """Issue 17: `UNAVAILABLE` with `details.reason: "startup-sidecars"`: close 1013 "gateway
    starting", come back after `retryAfterMs` (kept within 100-2000 ms), no refusal logged."""
    gw = make_gateway(auto_approve=True)
    gw.startup_unavailable(retry_after_ms=300, count=2)
    started = time.monotonic()
    node = nodes(state_dir, gateway_args(gw))
    gw.wait_for_hello(timeout=30)
    assert time.monotonic() - started < 5
    starting = [c for c in gw.connections if c.error_code == "UNAVAILABLE"]
    assert len(starting) == 2
    for conn in starting:
        gw.wait_for(lambda: not conn.open, timeout=5)
        assert (conn.client_close_code, conn.client_close_reason) == (1013, "gateway starting"), conn.summary()
    assert "gateway refused connect" not in node.log
