"""Self-tests of the OpenClaw test gateway (``openclaw_test_gateway.py``).

A small pure-Python node client (websockets sync client + Ed25519 signing with the
vector key of ``device-auth-vectors.json``) drives the gateway through the §10
checklist of ``shared/spec/protocol.md``. Each test asserts exact codes, messages
and fields, because the Swift node is tested against this gateway.
"""

from __future__ import annotations

import copy
import hashlib
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

sys.path.insert(0, str(Path(__file__).resolve().parent))

import openclaw_test_gateway as ogw  # noqa: E402
from openclaw_test_gateway import (  # noqa: E402
    GatewayControlServer,
    ProtocolSchema,
    TestGateway,
    base64url_encode,
    build_device_auth_payload,
    default_vectors_path,
    derive_device_id,
    verify_device_signature,
)

VECTORS = json.loads(default_vectors_path().read_text())
SEED = bytes.fromhex(VECTORS["key"]["seedHex"])
SCHEMA = ProtocolSchema()


# ----------------------------------------------------------------------------- client helpers


class Device:
    """An Ed25519 device identity (the vector key by default)."""

    def __init__(self, seed: bytes | None = SEED):
        self.key = Ed25519PrivateKey.from_private_bytes(seed) if seed else Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = base64url_encode(raw)
        self.device_id = hashlib.sha256(raw).hexdigest()

    def sign(self, payload: str) -> str:
        return base64url_encode(self.key.sign(payload.encode("utf-8")))


def connect_params(device: Device, nonce: str, *, token=None, device_token=None, password=None,
                   version="v3", signed_at=None, platform="linux", device_family="Linux",
                   min_protocol=3, max_protocol=4, sign_nonce=None, role="node",
                   display_name="build-box", extra=None) -> dict:
    """Build ``connect`` params the way the node host does (token only in auth.token)."""
    signed_at = signed_at if signed_at is not None else int(time.time() * 1000)
    client = {"id": "node-host", "displayName": display_name, "version": "2026.6.11",
              "platform": platform, "mode": "node", "instanceId": "6f1c2a9e-8d43-4b7a-b0f2-1e5d9c3a7b64"}
    if device_family is not None:
        client["deviceFamily"] = device_family
    auth = {}
    if token is not None:
        auth["token"] = token
    if device_token is not None:
        auth["deviceToken"] = device_token
    if password is not None:
        auth["password"] = password
    sig_token = auth.get("token", auth.get("deviceToken"))
    payload = build_device_auth_payload(
        version, device_id=device.device_id, client_id="node-host", client_mode="node", role=role,
        scopes=[], signed_at_ms=signed_at, token=sig_token, nonce=sign_nonce or nonce,
        platform=platform, device_family=device_family)
    params = {
        "minProtocol": min_protocol, "maxProtocol": max_protocol, "client": client,
        "caps": ["system"],
        "commands": ["system.run", "system.which", "system.execApprovals.get", "system.execApprovals.set"],
        "pathEnv": "/usr/local/bin:/usr/bin:/bin", "role": role, "scopes": [],
        "device": {"id": device.device_id, "publicKey": device.public_key, "signature": device.sign(payload),
                   "signedAt": signed_at, "nonce": nonce},
    }
    if auth:
        params["auth"] = auth
    if extra:
        params.update(extra)
    return params


class NodeClient:
    """Minimal synchronous node client."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None):
        # __enter__ works on every websockets version (17.1+ warns on non-context use).
        self.ws = ws_connect(url, ssl=ssl_context, open_timeout=5, compression=None, close_timeout=2).__enter__()
        self.events: list[dict] = []
        self.challenge = self.recv()

    def send(self, obj) -> None:
        self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    def recv(self, timeout: float = 3.0) -> dict:
        return json.loads(self.ws.recv(timeout=timeout))

    def request(self, method: str, params=None, timeout: float = 3.0) -> dict:
        """Send a req and return its res (events that arrive meanwhile go to ``events``)."""
        req_id = str(uuid.uuid4())
        frame = {"type": "req", "id": req_id, "method": method}
        if params is not None:
            frame["params"] = params
        self.send(frame)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if msg.get("type") == "res" and msg.get("id") == req_id:
                return msg
            self.events.append(msg)

    def connect(self, device: Device, **kw) -> dict:
        return self.request("connect", connect_params(device, self.challenge["payload"]["nonce"], **kw))

    def next_event(self, name: str, timeout: float = 3.0) -> dict:
        for i, ev in enumerate(self.events):
            if ev.get("event") == name:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if msg.get("type") == "event" and msg.get("event") == name:
                return msg
            self.events.append(msg)

    def wait_closed(self, timeout: float = 3.0):
        """Read until the server closes; return its close frame (``.code``, ``.reason``)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as exc:
            return exc.rcvd
        except TimeoutError:
            raise AssertionError("server did not close the connection")

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.ws.close(code, reason)


@pytest.fixture
def make_gateway():
    gateways: list[TestGateway] = []

    def factory(**kw) -> TestGateway:
        kw.setdefault("ping_interval_s", None)
        gw = TestGateway(**kw)
        gw.start()
        gateways.append(gw)
        return gw

    yield factory
    for gw in gateways:
        gw.close()


def paired_client(gw: TestGateway, device: Device, **kw) -> tuple[NodeClient, dict]:
    """Pair ``device`` (first connect -> approve) and return an open hello'd client."""
    first = NodeClient(gw.url)
    res = first.connect(device, **kw)
    assert res["ok"] is False and res["error"]["code"] == "NOT_PAIRED"
    first.wait_closed()
    gw.approve(res["error"]["details"]["requestId"])
    client = NodeClient(gw.url)
    hello = client.connect(device, **kw)
    assert hello["ok"] is True, hello
    return client, hello


# ----------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_vectors_verify_with_gateway_verifier(case):
    inp = case["inputs"]
    payload = build_device_auth_payload(
        case["version"], device_id=inp["deviceId"], client_id=inp["clientId"], client_mode=inp["clientMode"],
        role=inp["role"], scopes=inp["scopes"], signed_at_ms=inp["signedAtMs"], token=inp["token"],
        nonce=inp["nonce"], platform=inp["platform"], device_family=inp["deviceFamily"])
    assert payload == case["payload"]
    pub = VECTORS["key"]["publicKeyBase64Url"]
    assert verify_device_signature(pub, payload, case["signatureBase64Url"])
    # Other accepted encodings of key and signature.
    assert verify_device_signature(VECTORS["key"]["publicKeyPem"], payload, case["signatureBase64Url"])
    assert verify_device_signature(VECTORS["key"]["publicKeyRawBase64"], payload, case["signatureBase64Url"])
    sig_std = case["signatureBase64Url"].replace("-", "+").replace("_", "/") + "=="
    assert verify_device_signature(pub, payload, sig_std)
    # A signature over a changed field does not verify.
    changed = payload.replace(str(inp["signedAtMs"]), str(inp["signedAtMs"] + 1))
    assert not verify_device_signature(pub, changed, case["signatureBase64Url"])
    assert not verify_device_signature(pub, payload.replace(inp["nonce"], str(uuid.uuid4())),
                                       case["signatureBase64Url"])


def test_vector_key_derives_device_id():
    key = VECTORS["key"]
    assert derive_device_id(key["publicKeyBase64Url"]) == key["deviceId"]
    assert derive_device_id(key["publicKeyPem"]) == key["deviceId"]
    assert Device().device_id == key["deviceId"]
    assert Device().public_key == key["publicKeyBase64Url"]


def test_v3_payload_normalizes_platform_and_family():
    p = build_device_auth_payload("v3", device_id="d", client_id="node-host", client_mode="node", role="node",
                                  scopes=["a", "b"], signed_at_ms=1, token=None, nonce="n",
                                  platform="  MacOS ", device_family="ÄMac")
    assert p == "v3|d|node-host|node|node|a,b|1||n|macos|Ämac"


def test_vector_connect_example_is_schema_valid():
    c = VECTORS["cases"][0]
    params = {
        "minProtocol": 3, "maxProtocol": 4,
        "client": {"id": "node-host", "displayName": "build-box", "version": "2026.6.11", "platform": "linux",
                   "deviceFamily": "Linux", "mode": "node", "instanceId": "6f1c2a9e-8d43-4b7a-b0f2-1e5d9c3a7b64"},
        "caps": ["system"], "commands": ["system.run"], "pathEnv": "/usr/bin", "role": "node", "scopes": [],
        "device": {"id": c["inputs"]["deviceId"], "publicKey": VECTORS["key"]["publicKeyBase64Url"],
                   "signature": c["signatureBase64Url"], "signedAt": 1737264000000, "nonce": c["inputs"]["nonce"]},
    }
    assert SCHEMA.errors("ConnectParams", params) == []
    assert SCHEMA.connect_errors(params, v4=True) == []
    params_v4 = copy.deepcopy(params)
    params_v4["auth"] = {"token": "t", "deviceToken": "t"}
    assert SCHEMA.connect_errors(params_v4, v4=False) == []
    assert SCHEMA.errors("ConnectParams", params_v4) != []  # the pure v3 schema is closed
    del params["device"]["nonce"]
    assert SCHEMA.connect_errors(params, v4=False) == []
    assert SCHEMA.connect_errors(params, v4=True) != []


# ----------------------------------------------------------------------------- handshake


def test_challenge_on_open(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    ch = c.challenge
    assert ch["type"] == "event" and ch["event"] == "connect.challenge" and "seq" not in ch
    assert uuid.UUID(ch["payload"]["nonce"]).version == 4
    assert abs(ch["payload"]["ts"] - time.time() * 1000) < 5000
    c2 = NodeClient(gw.url)
    assert c2.challenge["payload"]["nonce"] != ch["payload"]["nonce"]


def test_first_connect_not_paired_exact_frame(make_gateway):
    gw = make_gateway(pairing_retry_hints=False)
    dev = Device()
    c = NodeClient(gw.url)
    res = c.connect(dev)
    request_id = gw.wait_for_pending_request(timeout=1)
    assert gw.pending_requests() == {request_id: dev.device_id}
    assert res == {"type": "res", "id": res["id"], "ok": False, "error": {
        "code": "NOT_PAIRED", "message": "pairing required: device is not approved yet",
        "details": {"code": "PAIRING_REQUIRED", "reason": "not-paired", "requestId": request_id,
                    "deviceId": dev.device_id, "requestedRole": "node", "requestedScopes": []}}}
    close = c.wait_closed()
    assert close.code == 1008
    assert close.reason == f"pairing required: device is not approved yet (requestId: {request_id})"
    # The same requestId is reused for repeat attempts.
    c2 = NodeClient(gw.url)
    res2 = c2.connect(dev)
    assert res2["error"]["details"]["requestId"] == request_id
    assert len(gw.pending_requests()) == 1
    assert gw.schema_violations == []


def test_not_paired_with_retry_hints(make_gateway):
    gw = make_gateway()  # pairing_retry_hints=True is the default
    dev = Device()
    c = NodeClient(gw.url)
    details = c.connect(dev)["error"]["details"]
    assert details == {"code": "PAIRING_REQUIRED", "reason": "not-paired", "requestId": details["requestId"],
                       "recommendedNextStep": "wait_then_retry", "retryable": True, "pauseReconnect": False,
                       "deviceId": dev.device_id, "requestedRole": "node", "requestedScopes": []}
    assert list(details)[:3] == ["code", "reason", "requestId"]


def test_approve_then_hello_ok(make_gateway):
    gw = make_gateway(tick_interval_ms=1000)
    dev = Device()
    client, res = paired_client(gw, dev)
    hello = res["payload"]
    assert list(hello) == ["type", "protocol", "server", "features", "snapshot", "auth", "policy"]
    assert hello["type"] == "hello-ok" and hello["protocol"] == 4
    assert hello["server"]["version"] == "2026.6.11"
    assert uuid.UUID(hello["server"]["connId"])
    assert set(hello["features"]) == {"methods", "events", "capabilities"}
    assert hello["snapshot"]["presence"] == [] and hello["snapshot"]["health"] == {}
    assert hello["snapshot"]["stateVersion"] == {"presence": 0, "health": 0}
    assert isinstance(hello["snapshot"]["uptimeMs"], int)
    token = gw.paired_devices()[dev.device_id]["token"]
    assert hello["auth"] == {"deviceToken": token, "role": "node", "scopes": [],
                             "issuedAtMs": hello["auth"]["issuedAtMs"]}
    assert hello["policy"] == {"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 1000}
    conn = gw.wait_for_hello(timeout=1)
    assert conn.device_id == dev.device_id and conn.signature_version == "v3"
    assert gw.connected_nodes().keys() == {dev.device_id}
    assert gw.paired_devices()[dev.device_id]["platform"] == "linux"
    assert gw.paired_devices()[dev.device_id]["deviceFamily"] == "linux"
    assert gw.pending_requests() == {}
    assert gw.schema_violations == []


def test_hello_ok_v3_matches_schema(make_gateway):
    gw = make_gateway()
    dev = Device()
    _, res = paired_client(gw, dev, max_protocol=3)
    assert res["payload"]["protocol"] == 3
    assert SCHEMA.errors("ResponseFrame", res) == []
    assert SCHEMA.errors("HelloOk", res["payload"]) == []


def test_device_pair_resolved_broadcast(make_gateway):
    gw = make_gateway()
    a, _ = paired_client(gw, Device(None))
    b = NodeClient(gw.url)
    dev_b = Device(None)
    rid = b.connect(dev_b)["error"]["details"]["requestId"]
    gw.approve(rid)
    ev = a.next_event("device.pair.resolved")
    assert ev["payload"]["requestId"] == rid and ev["payload"]["deviceId"] == dev_b.device_id
    assert ev["payload"]["decision"] == "approved" and isinstance(ev["seq"], int)
    assert SCHEMA.errors("DevicePairResolvedEvent", ev["payload"]) == []


def test_reconnect_with_device_token(make_gateway):
    gw = make_gateway(token="s3cret-gateway-token")
    dev = Device()
    _, hello = paired_client(gw, dev, token="s3cret-gateway-token")
    device_token = hello["payload"]["auth"]["deviceToken"]
    # Device token in auth.token only (the portable choice).
    c = NodeClient(gw.url)
    res = c.connect(dev, token=device_token)
    assert res["ok"] is True and res["payload"]["auth"]["deviceToken"] == device_token
    assert gw.wait_for_hello(timeout=1).auth_method == "device-token"
    # Device token in both token and deviceToken (current TS client).
    c2 = NodeClient(gw.url)
    assert c2.connect(dev, token=device_token, device_token=device_token)["ok"] is True


def test_wrong_shared_token(make_gateway):
    gw = make_gateway(token="s3cret-gateway-token")
    c = NodeClient(gw.url)
    res = c.connect(Device(), token="wrong")
    message = "unauthorized: gateway token mismatch (provide gateway auth token)"
    assert res["error"] == {"code": "INVALID_REQUEST", "message": message, "details": {
        "code": "AUTH_TOKEN_MISMATCH", "authReason": "token_mismatch", "canRetryWithDeviceToken": False,
        "recommendedNextStep": "update_auth_credentials"}}
    close = c.wait_closed()
    assert (close.code, close.reason) == (1008, message)


@pytest.mark.parametrize("gw_kw,client_kw,code,reason", [
    ({"token": "T"}, {}, "AUTH_TOKEN_MISSING", "token_missing"),
    ({"password": "P"}, {}, "AUTH_PASSWORD_MISSING", "password_missing"),
    ({"password": "P"}, {"password": "x"}, "AUTH_PASSWORD_MISMATCH", "password_mismatch"),
    ({"token": "T"}, {"token": "x", "device_token": "x"}, "AUTH_DEVICE_TOKEN_MISMATCH", "device_token_mismatch"),
])
def test_auth_failures(make_gateway, gw_kw, client_kw, code, reason):
    gw = make_gateway(**gw_kw)
    c = NodeClient(gw.url)
    err = c.connect(Device(), **client_kw)["error"]
    assert err["code"] == "INVALID_REQUEST" and err["message"].startswith("unauthorized: ")
    assert err["details"] == {"code": code, "authReason": reason, "canRetryWithDeviceToken": False,
                              "recommendedNextStep": "update_auth_credentials"}
    assert c.wait_closed().code == 1008


def test_password_accepted(make_gateway):
    gw = make_gateway(password="P")
    c = NodeClient(gw.url)
    assert c.connect(Device(), password="P")["error"]["code"] == "NOT_PAIRED"


def test_device_token_mismatch_without_shared_auth(make_gateway):
    gw = make_gateway(check_device_tokens=True)
    dev = Device()
    _, hello = paired_client(gw, dev)
    gw.rotate_device_token(dev.device_id)
    c = NodeClient(gw.url)
    err = c.connect(dev, token=hello["payload"]["auth"]["deviceToken"])["error"]
    assert err["details"]["code"] == "AUTH_DEVICE_TOKEN_MISMATCH"
    assert "device token mismatch" in c.wait_closed().reason


# ----------------------------------------------------------------------------- device checks


def test_wrong_nonce(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    params = connect_params(Device(), str(uuid.uuid4()))
    res = c.request("connect", params)
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "device nonce mismatch",
                            "details": {"code": "DEVICE_AUTH_NONCE_MISMATCH", "reason": "device-nonce-mismatch"}}
    close = c.wait_closed()
    assert (close.code, close.reason) == (1008, "device nonce mismatch")


def test_stale_signed_at(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    res = c.connect(Device(), signed_at=int(time.time() * 1000) - 121_000)
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "device signature expired",
                            "details": {"code": "DEVICE_AUTH_SIGNATURE_EXPIRED", "reason": "device-signature-stale"}}
    assert c.wait_closed().code == 1008
    # Within the 120 s skew it is fine.
    c2 = NodeClient(gw.url)
    assert c2.connect(Device(), signed_at=int(time.time() * 1000) + 100_000)["error"]["code"] == "NOT_PAIRED"


def test_device_id_mismatch_and_bad_signature(make_gateway):
    gw = make_gateway()
    dev = Device()
    c = NodeClient(gw.url)
    params = connect_params(dev, c.challenge["payload"]["nonce"])
    params["device"]["id"] = "0" * 64
    assert c.request("connect", params)["error"]["details"] == {
        "code": "DEVICE_AUTH_DEVICE_ID_MISMATCH", "reason": "device-id-mismatch"}
    c2 = NodeClient(gw.url)
    params = connect_params(dev, c2.challenge["payload"]["nonce"])
    params["client"]["platform"] = "darwin"  # signed as linux
    err = c2.request("connect", params)["error"]
    assert err == {"code": "INVALID_REQUEST", "message": "device signature invalid",
                   "details": {"code": "DEVICE_AUTH_SIGNATURE_INVALID", "reason": "device-signature"}}


def test_missing_device(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    params = connect_params(Device(), c.challenge["payload"]["nonce"])
    del params["device"]
    res = c.request("connect", params)
    assert res["error"] == {"code": "NOT_PAIRED", "message": "device identity required",
                            "details": {"code": "DEVICE_IDENTITY_REQUIRED"}}
    assert c.wait_closed().reason == "device identity required"


def test_missing_nonce_v3_and_v4(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    params = connect_params(Device(), c.challenge["payload"]["nonce"], max_protocol=3)
    params["device"]["nonce"] = "  "
    assert c.request("connect", params)["error"]["details"]["code"] == "DEVICE_AUTH_NONCE_REQUIRED"
    c2 = NodeClient(gw.url)
    params = connect_params(Device(), c2.challenge["payload"]["nonce"])
    del params["device"]["nonce"]  # v4 schema requires it
    assert c2.request("connect", params)["error"]["message"].startswith("invalid connect params: ")


def test_v2_signature_accepted_and_reject_v3_knob(make_gateway):
    gw = make_gateway(reject_v3_signatures=True)
    c = NodeClient(gw.url)
    res = c.connect(Device(), version="v3")
    assert res["error"]["details"]["code"] == "DEVICE_AUTH_SIGNATURE_INVALID"
    c2 = NodeClient(gw.url)
    assert c2.connect(Device(), version="v2")["error"]["code"] == "NOT_PAIRED"
    assert gw.connections[-1].signature_version == "v2"


def test_one_shot_fault_knobs(make_gateway):
    gw = make_gateway()
    gw.force_nonce_mismatch()
    assert NodeClient(gw.url).connect(Device())["error"]["details"]["code"] == "DEVICE_AUTH_NONCE_MISMATCH"
    gw.reject_next_signature()
    assert NodeClient(gw.url).connect(Device())["error"]["details"]["code"] == "DEVICE_AUTH_SIGNATURE_INVALID"
    gw.fail_next_connect("INVALID_REQUEST", "client too old", details_code="CLIENT_VERSION_MISMATCH")
    c = NodeClient(gw.url)
    assert c.connect(Device())["error"] == {"code": "INVALID_REQUEST", "message": "client too old",
                                            "details": {"code": "CLIENT_VERSION_MISMATCH"}}
    assert c.wait_closed().code == 1008
    assert NodeClient(gw.url).connect(Device())["error"]["code"] == "NOT_PAIRED"


def test_startup_unavailable(make_gateway):
    gw = make_gateway()
    gw.startup_unavailable(retry_after_ms=250)
    c = NodeClient(gw.url)
    res = c.connect(Device())
    assert res["error"] == {"code": "UNAVAILABLE", "message": "gateway starting; retry shortly",
                            "details": {"reason": "startup-sidecars"}, "retryable": True, "retryAfterMs": 250}
    c.close(1013, "gateway starting")
    conn = gw.wait_for_close(gw.connections[-1], timeout=2)
    assert (conn.client_close_code, conn.client_close_reason, conn.closed_by) == (1013, "gateway starting", "client")
    assert NodeClient(gw.url).connect(Device())["error"]["code"] == "NOT_PAIRED"


# ----------------------------------------------------------------------------- first frame / schema


def test_first_frame_not_connect(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    res = c.request("node.event", {"event": "x"})
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}
    close = c.wait_closed()
    assert (close.code, close.reason) == (1008, "invalid handshake: first request must be connect")
    assert gw.connections[-1].connect_received is False


def test_first_frame_not_a_request(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    c.send("not json")
    close = c.wait_closed()
    assert (close.code, close.reason) == (1008, "invalid request frame")
    assert gw.schema_violations and gw.schema_violations[0]["schema"] == "RequestFrame"


def test_connect_with_unknown_key_is_a_schema_violation(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    params = connect_params(Device(), c.challenge["payload"]["nonce"], extra={"bogus": True})
    res = c.request("connect", params)
    assert res["error"]["code"] == "INVALID_REQUEST"
    assert res["error"]["message"].startswith("invalid connect params: ")
    assert "bogus" in res["error"]["message"]
    assert c.wait_closed().code == 1008
    assert len(gw.schema_violations) == 1
    v = gw.schema_violations[0]
    assert v["schema"] == "ConnectParams" and v["method"] == "connect"


def test_null_optional_value_is_a_schema_violation(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    params = connect_params(Device(), c.challenge["payload"]["nonce"])
    params["client"]["deviceFamily"] = None
    assert c.request("connect", params)["error"]["message"].startswith("invalid connect params: ")
    assert gw.schema_violations


def test_protocol_mismatch(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    res = c.connect(Device(), min_protocol=5, max_protocol=6)
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "protocol mismatch",
                            "details": {"expectedProtocol": 4}}
    close = c.wait_closed()
    assert (close.code, close.reason) == (1002, "protocol mismatch")
    gw5 = make_gateway(server_protocols=[5])
    c5 = NodeClient(gw5.url)
    assert c5.connect(Device())["error"]["details"] == {"expectedProtocol": 5}


def test_invalid_role(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    res = c.connect(Device(), role="operator")
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "invalid role"}
    assert c.wait_closed().code == 1008


def test_handshake_timeout(make_gateway):
    gw = make_gateway(handshake_timeout_s=0.3)
    c = NodeClient(gw.url)
    close = c.wait_closed(timeout=2)
    assert close.code == 1000 and close.reason == ""
    assert gw.connections[-1].connect_received is False


def test_preauth_payload_limit(make_gateway):
    gw = make_gateway()
    c = NodeClient(gw.url)
    c.send("x" * 70_000)
    close = c.wait_closed()
    assert (close.code, close.reason) == (1009, "preauth payload too large")


# ----------------------------------------------------------------------------- pairing


def test_metadata_upgrade(make_gateway):
    gw = make_gateway()
    dev = Device()
    paired_client(gw, dev)
    # Case-only change is not an upgrade (normalized comparison).
    assert NodeClient(gw.url).connect(dev, platform="LINUX", device_family="linux")["ok"] is True
    c = NodeClient(gw.url)
    res = c.connect(dev, platform="macos", device_family="Mac")
    err = res["error"]
    rid = err["details"]["requestId"]
    assert err["code"] == "NOT_PAIRED"
    assert err["message"] == "pairing required: device identity changed and must be re-approved"
    assert err["details"]["reason"] == "metadata-upgrade" and err["details"]["approvedRoles"] == ["node"]
    assert c.wait_closed().reason == f"pairing required: device identity changed and must be re-approved (requestId: {rid})"
    token = gw.paired_devices()[dev.device_id]["token"]
    gw.approve(rid)
    assert gw.paired_devices()[dev.device_id]["platform"] == "macos"
    assert gw.paired_devices()[dev.device_id]["token"] == token
    assert NodeClient(gw.url).connect(dev, platform="macos", device_family="Mac")["ok"] is True


def test_auto_approve(make_gateway):
    gw = make_gateway(auto_approve=True)
    res = NodeClient(gw.url).connect(Device())
    assert res["ok"] is True and res["payload"]["auth"]["deviceToken"]


def test_restart_keeps_pairings(make_gateway, tmp_path):
    state = tmp_path / "pairings.json"
    gw = make_gateway(state_path=state)
    dev = Device()
    client, hello = paired_client(gw, dev)
    port = gw.port
    gw.restart(code=1012, reason="service restart")
    assert gw.port == port
    assert client.wait_closed().code == 1012
    assert NodeClient(gw.url).connect(dev)["ok"] is True
    gw.stop()
    # A new gateway process with the same state file knows the device too.
    gw2 = make_gateway(state_path=state)
    res = NodeClient(gw2.url).connect(dev, token=hello["payload"]["auth"]["deviceToken"])
    assert res["ok"] is True
    assert res["payload"]["auth"]["deviceToken"] == hello["payload"]["auth"]["deviceToken"]


# ----------------------------------------------------------------------------- after hello


def test_invoke_round_trip(make_gateway):
    gw = make_gateway()
    dev = Device()
    client, _ = paired_client(gw, dev)
    fut = gw.invoke_async("system.which", {"bins": ["sh"]}, timeout_ms=5000)
    ev = client.next_event("node.invoke.request")
    p = ev["payload"]
    assert "seq" not in ev
    assert list(p) == ["id", "nodeId", "command", "paramsJSON", "timeoutMs", "idempotencyKey"]
    assert p["nodeId"] == dev.device_id and p["command"] == "system.which"
    assert json.loads(p["paramsJSON"]) == {"bins": ["sh"]} and p["timeoutMs"] == 5000
    assert SCHEMA.errors("NodeInvokeRequestEvent", p) == []
    res = client.request("node.invoke.result", {"id": p["id"], "nodeId": dev.device_id, "ok": True,
                                                "payloadJSON": json.dumps({"bins": {"sh": "/bin/sh"}})})
    assert res["ok"] is True and res["payload"] == {"ok": True}
    result = fut.result(timeout=2)
    assert result["ok"] is True and json.loads(result["payloadJSON"]) == {"bins": {"sh": "/bin/sh"}}
    # Late / unknown id -> ignored.
    late = client.request("node.invoke.result", {"id": p["id"], "nodeId": dev.device_id, "ok": True})
    assert late["payload"] == {"ok": True, "ignored": True}
    # No params -> paramsJSON null.
    fut2 = gw.invoke_async("system.execApprovals.get", timeout_ms=5000)
    p2 = client.next_event("node.invoke.request")["payload"]
    assert p2["paramsJSON"] is None
    client.request("node.invoke.result", {"id": p2["id"], "nodeId": dev.device_id, "ok": False,
                                          "error": {"code": "UNAVAILABLE", "message": "nope"}})
    assert fut2.result(timeout=2)["error"] == {"code": "UNAVAILABLE", "message": "nope"}
    assert gw.schema_violations == []


def test_invoke_result_wrong_node_id(make_gateway):
    gw = make_gateway()
    dev = Device()
    client, _ = paired_client(gw, dev)
    fut = gw.invoke_async("system.run", {"command": ["true"]}, timeout_ms=5000)
    p = client.next_event("node.invoke.request")["payload"]
    res = client.request("node.invoke.result", {"id": p["id"], "nodeId": "someone-else", "ok": True})
    assert res["ok"] is False
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "nodeId mismatch"}
    assert not fut.done()
    client.request("node.invoke.result", {"id": p["id"], "nodeId": dev.device_id, "ok": True})
    assert fut.result(timeout=2)["ok"] is True


def test_invoke_timeout_and_not_connected(make_gateway):
    gw = make_gateway()
    assert gw.invoke("system.run", {"command": ["true"]})["error"]["code"] == "NOT_CONNECTED"
    client, _ = paired_client(gw, Device())
    res = gw.invoke("system.run", {"command": ["sleep", "1"]}, timeout_ms=200)
    assert res["ok"] is False and res["error"]["code"] == "TIMEOUT"


def test_invoke_result_schema_violation(make_gateway):
    gw = make_gateway()
    dev = Device()
    client, _ = paired_client(gw, dev)
    res = client.request("node.invoke.result", {"id": "x", "nodeId": dev.device_id, "ok": True, "payloadJSON": None})
    assert res["error"]["message"].startswith("invalid node.invoke.result params: ")
    assert gw.schema_violations[-1]["schema"] == "NodeInvokeResultParams"


def test_other_methods(make_gateway):
    gw = make_gateway()
    client, _ = paired_client(gw, Device())
    res = client.request("node.event", {"event": "exec.finished", "payloadJSON": "{}"})
    assert res["payload"] == {"ok": True, "event": "exec.finished", "handled": True}
    assert gw.node_events[-1]["event"] == "exec.finished"
    assert client.request("skills.bins", {})["payload"] == {"bins": []}
    assert client.request("node.invoke.progress", {"invokeId": "i", "nodeId": "n", "seq": 0, "chunk": ""})[
        "payload"] == {"ok": True}
    res = client.request("node.pluginTools.update", {"tools": []})
    assert res["payload"]["tools"] == [] and gw.plugin_tools_updates[-1]["tools"] == []
    bad_tools = client.request("node.pluginTools.update", {"tools": [{"pluginId": "p", "name": "9bad", "description": "d"}]})
    assert bad_tools["error"] == {"code": "INVALID_REQUEST", "message": "invalid node.pluginTools.update params: invalid tool name '9bad'"}
    assert gw.schema_violations.pop()["schema"] == "NodePluginToolsUpdateParams"
    gw.plugin_tools_answer = "unknown"
    res = client.request("node.pluginTools.update", {"tools": []})
    assert res["error"] == {"code": "INVALID_REQUEST", "message": "unknown method: node.pluginTools.update"}
    bad = client.request("node.event", {"event": "x", "extra": 1})
    assert bad["ok"] is False and gw.schema_violations[-1]["schema"] == "NodeEventParams"
    again = client.request("connect", {})
    assert again["error"]["message"] == "connect is only valid as the first request"


def test_node_event_v3_reply(make_gateway):
    gw = make_gateway()
    client, _ = paired_client(gw, Device(), max_protocol=3)
    assert client.request("node.event", {"event": "exec.finished"})["payload"] == {"ok": True}


def test_ticks_increasing_seq_and_stop(make_gateway):
    gw = make_gateway(tick_interval_ms=100)
    client, _ = paired_client(gw, Device())
    ticks = [client.next_event("tick", timeout=1) for _ in range(3)]
    seqs = [t["seq"] for t in ticks]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and all(b == a + 1 for a, b in zip(seqs, seqs[1:]))
    assert all(SCHEMA.errors("TickEvent", t["payload"]) == [] for t in ticks)
    gw.stop_ticks()
    time.sleep(0.15)
    client.events.clear()
    with pytest.raises(TimeoutError):
        client.next_event("tick", timeout=0.35)
    gw.resume_ticks()
    assert client.next_event("tick", timeout=1)["seq"] > seqs[-1]


def test_client_close_code_recorded(make_gateway):
    gw = make_gateway()
    client, _ = paired_client(gw, Device())
    conn = gw.wait_for_hello(timeout=1)
    client.close(4000, "tick timeout")
    gw.wait_for_close(conn, timeout=2)
    assert (conn.client_close_code, conn.client_close_reason, conn.closed_by) == (4000, "tick timeout", "client")
    assert gw.connection_count == 0 and gw.connected_nodes() == {}


def test_shutdown_event_then_close(make_gateway):
    gw = make_gateway()
    client, _ = paired_client(gw, Device())
    gw.send_shutdown_event_and_close(code=1012, restart_expected_ms=500)
    ev = client.next_event("shutdown")
    assert ev["payload"] == {"reason": "gateway restarting", "restartExpectedMs": 500}
    assert SCHEMA.errors("ShutdownEvent", ev["payload"]) == []
    assert client.wait_closed().code == 1012


def test_close_all(make_gateway):
    gw = make_gateway()
    client, _ = paired_client(gw, Device())
    assert gw.close_all(4001, "gateway auth changed") == 1
    close = client.wait_closed()
    assert (close.code, close.reason) == (4001, "gateway auth changed")


# ----------------------------------------------------------------------------- TLS / control


def test_wss_with_fingerprint(make_gateway):
    gw = make_gateway(tls=True)
    assert gw.url.startswith("wss://127.0.0.1:")
    fp = gw.cert_fingerprint_sha256
    assert len(fp) == 64 and fp == fp.lower()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = NodeClient(gw.url, ssl_context=ctx)
    der = c.ws.socket.getpeercert(binary_form=True)
    assert hashlib.sha256(der).hexdigest() == fp
    assert c.connect(Device())["error"]["code"] == "NOT_PAIRED"
    # The certificate is valid for 127.0.0.1 when trusted explicitly.
    strict = ssl.create_default_context(cafile=gw.cert_path)
    strict.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    NodeClient(gw.url, ssl_context=strict).close()
    old = fp
    assert gw.rotate_tls_certificate() != old


def test_http_control_api(make_gateway):
    gw = make_gateway()
    control = GatewayControlServer(gw).start()
    try:
        dev = Device()
        c = NodeClient(gw.url)
        rid = c.connect(dev)["error"]["details"]["requestId"]

        def call(method, path, body=None):
            data = json.dumps(body).encode() if body is not None else None
            req = urllib.request.Request(control.url + path, data=data, method=method)
            with urllib.request.urlopen(req, timeout=5) as resp:
                return json.loads(resp.read())

        assert call("GET", "/state")["pending"] == {rid: dev.device_id}
        assert call("POST", f"/approve?requestId={rid}")["deviceId"] == dev.device_id
        client = NodeClient(gw.url)
        assert client.connect(dev)["ok"] is True
        assert dev.device_id in call("GET", "/state")["nodes"]

        import threading
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", call(
            "POST", "/invoke", {"command": "system.which", "params": {"bins": ["sh"]}, "timeoutMs": 3000})))
        t.start()
        p = client.next_event("node.invoke.request")["payload"]
        client.request("node.invoke.result", {"id": p["id"], "nodeId": dev.device_id, "ok": True, "payloadJSON": "{}"})
        t.join(timeout=5)
        assert box["r"]["ok"] is True and box["r"]["payloadJSON"] == "{}"
        events = call("GET", "/events")["events"]
        assert any(e["event"] == "pairing.requested" and e["requestId"] == rid for e in events)
    finally:
        control.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_prints_listening_line(tmp_path):
    control_port = _free_port()
    with subprocess.Popen(
            [sys.executable, str(Path(ogw.__file__)), "--port", "0", "--tick-ms", "1000", "--tls",
             "--control-port", str(control_port), "--state", str(tmp_path / "s.json")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            line = json.loads(proc.stdout.readline())
            assert line["event"] == "listening" and line["url"] == f"wss://127.0.0.1:{line['port']}"
            assert len(line["fingerprint"]) == 64
            assert json.loads(proc.stdout.readline())["event"] == "control"
            with urllib.request.urlopen(f"http://127.0.0.1:{control_port}/state", timeout=5) as resp:
                assert json.loads(resp.read())["port"] == line["port"]
        finally:
            proc.terminate()
            assert proc.wait(timeout=5) == 0


def test_pings_answered_and_custom_events(make_gateway):
    gw = make_gateway(ping_interval_s=0.1, ping_timeout_s=1.0)
    mark = gw.mark()
    client, _ = paired_client(gw, Device())
    conn = gw.wait_for_hello(timeout=1, since=mark)
    gw.wait_for(lambda: conn.pongs >= 2, timeout=1.5)
    assert gw.send_event("node.invoke.cancel", {"invokeId": "i", "nodeId": conn.device_id}) == 1
    assert client.next_event("node.invoke.cancel")["payload"]["invokeId"] == "i"
    assert gw.send_raw('{"type":"event","event":"custom"}') == 1
    assert client.next_event("custom")["event"] == "custom"


def test_vendored_fixtures_match_shared_copies():
    """fixtures/ is a fallback copy of shared/protocol; it must not drift from it."""
    here = Path(__file__).resolve().parent
    shared = here.parent.parent.parent / "shared" / "protocol"
    if not shared.is_dir():
        pytest.skip("shared/protocol not present beside the repository")
    for name in ("protocol.schema.json", "device-auth-vectors.json"):
        assert (here / "fixtures" / name).read_bytes() == (shared / name).read_bytes(), name


def test_frame_validation_can_be_turned_off_for_benchmarks():
    assert SCHEMA.errors("RequestFrame", {}) != []
    quiet = TestGateway(validate_frames=False)
    assert quiet.schema.errors("RequestFrame", {}) == []
    assert TestGateway().schema.errors("RequestFrame", {}) != []


def test_invoke_many_without_a_node_reports_failures():
    gw = TestGateway().start()
    try:
        outcome = gw.invoke_many("system.run", {"command": ["/bin/true"]}, total=3, concurrency=2, timeout_ms=1000)
        assert outcome["ok"] == 0 and len(outcome["failures"]) == 3
        assert outcome["failures"][0]["error"]["code"] == "NOT_CONNECTED"
    finally:
        gw.close()
