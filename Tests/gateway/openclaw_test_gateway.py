#!/usr/bin/env python3
"""OpenClaw test gateway: a small, strict gateway for testing ``openclaw-node``.

It speaks the OpenClaw Gateway WebSocket protocol (v3 and v4) as described in
``shared/spec/protocol.md`` and implements every item of its §10 ("What a test
gateway must do"):

1. ``connect.challenge`` on open (fresh UUID nonce, ``ts`` in ms) and a
   handshake deadline (default 10 s; on expiry the socket is closed with 1000
   and no reason, as upstream does).
2. First-frame rule and closed-schema validation of ``connect`` params
   (``protocol.schema.json`` ``ConnectParams`` widened with the v4 additions;
   ``device.nonce`` is required when protocol 4 is negotiated).
3. Protocol pick (4, else 3, else ``protocol mismatch`` + close 1002) and the
   ``role`` / ``client.mode`` / ``client.id`` checks.
4. Device checks in upstream order with the exact ``details {code, reason}``.
   Signatures are verified as v3, then v2, over the exact payload strings.
5. Shared token / password / device-token auth with the exact
   ``unauthorized: …`` errors.
6. Device pairing with a (optionally persisted) store, one pending
   ``requestId`` per device reused across attempts, the exact ``NOT_PAIRED``
   frame and close reason, optional retry hints, ``metadata-upgrade``.
7. Approval hook (:meth:`TestGateway.approve`, HTTP ``POST /approve``), device
   token minting, ``device.pair.resolved`` broadcast.
8. ``hello-ok`` exactly as §2.2, 9. ticks with a per-connection ``seq``,
   10./11. ``node.invoke.request`` / ``node.invoke.result`` bookkeeping,
   12. answers for ``node.event``, ``skills.bins``, ``node.invoke.progress`` and
   unknown methods, 13. fault knobs for the negative cases.

Every frame the node sends is validated against the upstream JSON schema
(``RequestFrame`` envelope, then ``ConnectParams`` / ``NodeInvokeResultParams``
/ ``NodeEventParams`` by method); violations are collected in
:attr:`TestGateway.schema_violations` so a test can assert it stays empty.

Usage from pytest (synchronous; the gateway runs its asyncio loop in a daemon
thread)::

    gw = TestGateway(token=None, tick_interval_ms=1000)
    gw.start()                      # gw.port, gw.url are set
    ...start the node against gw.url...
    request_id = gw.wait_for_pending_request(timeout=10)
    gw.approve(request_id)
    conn = gw.wait_for_hello(timeout=40)
    result = gw.invoke("system.which", {"bins": ["sh"]})
    assert gw.schema_violations == []
    gw.stop()

Usage from a shell (one JSON line per notable event on stdout)::

    python3 Tests/gateway/openclaw_test_gateway.py --port 18789 --control-port 18790
    curl -XPOST 'http://127.0.0.1:18790/approve?requestId=<id>'
    curl -XPOST http://127.0.0.1:18790/invoke -d '{"command":"system.which","params":{"bins":["sh"]}}'

Only loopback addresses are ever bound.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import copy
import datetime
import hashlib
import hmac
import http.server
import ipaddress
import json
import logging
import re
import os
import secrets
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import jsonschema
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = [
    "TestGateway",
    "Connection",
    "PairingStore",
    "ProtocolSchema",
    "GatewayControlServer",
    "build_device_auth_payload",
    "verify_device_signature",
    "resolve_signature_version",
    "derive_device_id",
    "normalize_device_metadata",
    "normalize_public_key_base64url",
    "base64url_encode",
    "base64url_decode",
    "generate_self_signed_certificate",
    "OMIT",
]

log = logging.getLogger("openclaw_test_gateway")

# --------------------------------------------------------------------------------------
# Protocol constants (protocol.md §1, §2.2, §3.1, §8)
# --------------------------------------------------------------------------------------

DEFAULT_SERVER_VERSION = "2026.6.11"
MAX_PAYLOAD_BYTES = 26_214_400  # policy.maxPayload (25 MiB)
MAX_BUFFERED_BYTES = 52_428_800  # policy.maxBufferedBytes (50 MiB)
MAX_PREAUTH_PAYLOAD_BYTES = 65_536  # 64 KiB before hello
DEVICE_SIGNATURE_SKEW_MS = 120_000  # |now - signedAt| limit
DEFAULT_TICK_INTERVAL_MS = 30_000
DEFAULT_HANDSHAKE_TIMEOUT_S = 10.0
DEFAULT_INVOKE_TIMEOUT_MS = 30_000
DEFAULT_PING_INTERVAL_S = 20.0
DEFAULT_PING_TIMEOUT_S = 45.0
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455 limit for the close reason

#: client.id values of the v4 protocol (superset of the v3 schema list).
V4_CLIENT_IDS = (
    "webchat-ui", "openclaw-control-ui", "openclaw-tui", "webchat", "cli", "gateway-client",
    "openclaw-macos", "openclaw-ios", "openclaw-watchos", "openclaw-android", "node-host",
    "openclaw-worker", "test", "fingerprint", "openclaw-probe",
)
#: client.mode values of the v4 protocol (v3 list plus "worker").
V4_CLIENT_MODES = ("webchat", "cli", "ui", "backend", "node", "worker", "probe", "test")

#: Methods a node may call on this gateway (advertised in hello-ok.features.methods).
#: ``node.runnerInventory.update`` is served but not listed (upstream: ``advertise: false``).
GATEWAY_METHODS = ["node.invoke.result", "node.event", "node.invoke.progress", "skills.bins"]
#: Events this gateway may send (advertised in hello-ok.features.events).
GATEWAY_EVENTS = [
    "connect.challenge", "tick", "shutdown", "node.invoke.request", "device.pair.resolved",
]

#: upstream's current worker-supervisor feature (src/infra/node-runner-inventory.ts) and the
#: retired ones, which the gateway answers with "requires an update".
NODE_WORKER_SUPERVISOR_FEATURE = "node-worker-supervisor-v6"
RETIRED_NODE_WORKER_SUPERVISOR_FEATURES = tuple(f"node-worker-supervisor-v{n}" for n in range(1, 6))


NODE_SKILL_NAME_RE = re.compile(r"^(?!.*--)[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def node_skills_problem(params: Any) -> str | None:
    """upstream's NodeSkillsUpdateParamsSchema: ``{skills: [{name, description, content}] (≤64)}``,
    closed objects, a name matching NODE_SKILL_NAME_RE, description 1–1024, content 1–65536."""
    if not isinstance(params, dict) or set(params) != {"skills"} or not isinstance(params["skills"], list):
        return "expected {skills: [...]}"
    if len(params["skills"]) > 64:
        return "more than 64 skills"
    for skill in params["skills"]:
        if not isinstance(skill, dict) or set(skill) != {"name", "description", "content"}:
            return "a skill must be exactly {name, description, content}"
        name, description, content = skill["name"], skill["description"], skill["content"]
        if not isinstance(name, str) or not NODE_SKILL_NAME_RE.match(name) or len(name) > 64:
            return f"invalid skill name {name!r}"
        if not isinstance(description, str) or not 1 <= len(description.encode("utf-16-le")) // 2 <= 1024:
            return f"invalid description of {name}"
        if not isinstance(content, str) or not 1 <= len(content) <= 64 * 1024:
            return f"invalid content of {name}"
    return None


NODE_PLUGIN_TOOL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


def node_plugin_tools_problem(params: Any) -> str | None:
    """upstream's NodePluginToolsUpdateParamsSchema: ``{tools: [{pluginId, name, description,
    parameters?, command?, mcp?: {server, tool}}]}``, closed objects, non-empty strings, a
    provider-safe name."""
    if not isinstance(params, dict) or set(params) != {"tools"} or not isinstance(params["tools"], list):
        return "expected {tools: [...]}"
    allowed = {"pluginId", "name", "description", "parameters", "command", "mcp"}
    for tool in params["tools"]:
        if not isinstance(tool, dict) or not set(tool) <= allowed or not {"pluginId", "name", "description"} <= set(tool):
            return "a tool must be {pluginId, name, description, parameters?, command?, mcp?}"
        for key in ("pluginId", "description", "command"):
            if key in tool and not (isinstance(tool[key], str) and tool[key]):
                return f"invalid {key} of {tool.get('name')!r}"
        if not isinstance(tool["name"], str) or not NODE_PLUGIN_TOOL_NAME_RE.match(tool["name"]):
            return f"invalid tool name {tool['name']!r}"
        if "parameters" in tool and not isinstance(tool["parameters"], dict):
            return f"invalid parameters of {tool['name']}"
        if "mcp" in tool:
            mcp = tool["mcp"]
            if not isinstance(mcp, dict) or set(mcp) != {"server", "tool"} or not all(isinstance(v, str) and v for v in mcp.values()):
                return f"invalid mcp of {tool['name']}"
    return None


def parse_runner_inventory(value: Any) -> dict | None:
    """upstream's parseNodeRunnerInventoryDeclaration, for the shapes a node that hosts no
    workers may send: ``{protocolFeatures: []}``, a retired feature alone, or the current
    feature with ``workerHost: {enabled: false}``. None when invalid."""
    if not isinstance(value, dict) or not isinstance(value.get("protocolFeatures"), list):
        return None
    features, keys = value["protocolFeatures"], set(value)
    if not features:
        return {"protocolFeatures": []} if keys == {"protocolFeatures"} else None
    if len(features) != 1:
        return None
    if features[0] in RETIRED_NODE_WORKER_SUPERVISOR_FEATURES:
        ok = len(keys) <= 2 and keys <= {"protocolFeatures", "workerRuns", "workerHost"}
        return {"protocolFeatures": [features[0]]} if ok else None
    if features[0] != NODE_WORKER_SUPERVISOR_FEATURE or keys != {"protocolFeatures", "workerHost"}:
        return None
    host = value["workerHost"]
    if not isinstance(host, dict) or host.get("enabled") is not False or set(host) != {"enabled"}:
        return None  # worker hosting is out of this gateway's scope
    return {"protocolFeatures": [features[0]], "workerHost": {"enabled": False}}

# Auth failure reasons -> (details.code, message). Messages are upstream's
# formatGatewayAuthFailureMessage() for a non-CLI, non-UI client.
AUTH_FAILURES = {
    "token_missing": ("AUTH_TOKEN_MISSING",
                      "unauthorized: gateway token missing (provide gateway auth token)"),
    "token_mismatch": ("AUTH_TOKEN_MISMATCH",
                       "unauthorized: gateway token mismatch (provide gateway auth token)"),
    "password_missing": ("AUTH_PASSWORD_MISSING",
                         "unauthorized: gateway password missing (provide gateway auth password)"),
    "password_mismatch": ("AUTH_PASSWORD_MISMATCH",
                          "unauthorized: gateway password mismatch (provide gateway auth password)"),
    "device_token_mismatch": ("AUTH_DEVICE_TOKEN_MISMATCH",
                              "unauthorized: device token mismatch (rotate/reissue device token)"),
}

# Device-auth failure reasons -> (details.code, message) (protocol.md §6.2).
DEVICE_AUTH_FAILURES = {
    "device-id-mismatch": ("DEVICE_AUTH_DEVICE_ID_MISMATCH", "device identity mismatch"),
    "device-signature-stale": ("DEVICE_AUTH_SIGNATURE_EXPIRED", "device signature expired"),
    "device-nonce-missing": ("DEVICE_AUTH_NONCE_REQUIRED", "device nonce required"),
    "device-nonce-mismatch": ("DEVICE_AUTH_NONCE_MISMATCH", "device nonce mismatch"),
    "device-signature": ("DEVICE_AUTH_SIGNATURE_INVALID", "device signature invalid"),
    "device-public-key": ("DEVICE_AUTH_PUBLIC_KEY_INVALID", "device public key invalid"),
}

# Pairing reasons -> (message requirement text, remediation hint) (protocol.md §5).
PAIRING_REASONS = {
    "not-paired": ("device is not approved yet",
                   "Approve this device from the pending pairing requests."),
    "role-upgrade": ("device is asking for a higher role than currently approved",
                     "Review the requested role upgrade, then approve the pending request."),
    "scope-upgrade": ("device is asking for more scopes than currently approved",
                      "Review the requested scopes, then approve the pending upgrade."),
    "metadata-upgrade": ("device identity changed and must be re-approved",
                         "Review the refreshed device details, then approve the pending request."),
}


class _Omit:
    """Sentinel: in ``payload_overrides`` it removes a key from the frame."""

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return "OMIT"


#: Use as a value in ``invoke(..., payload_overrides={...})`` to drop a key.
OMIT = _Omit()


def now_ms() -> int:
    """Current wall-clock time in integer milliseconds since the epoch."""
    return int(time.time() * 1000)


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def truncate_close_reason(reason: str, limit: int = MAX_CLOSE_REASON_BYTES) -> str:
    """Truncate ``reason`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    raw = reason.encode("utf-8")
    if len(raw) <= limit:
        return reason
    return raw[:limit].decode("utf-8", errors="ignore")


# --------------------------------------------------------------------------------------
# Device identity helpers (protocol.md §3)
# --------------------------------------------------------------------------------------

_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
# JavaScript String.prototype.trim() whitespace (WhiteSpace + LineTerminator of ECMA-262).
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(value: str) -> str:
    """Trim like JavaScript's ``String.prototype.trim``."""
    return value.strip(_JS_WHITESPACE)


def base64url_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def base64url_decode(value: str) -> bytes | None:
    """Decode base64url or standard base64, padded or not. ``None`` if invalid."""
    if not isinstance(value, str):
        return None
    s = value.strip().replace("-", "+").replace("_", "/")
    if not s:
        return None
    s += "=" * (-len(s) % 4)
    try:
        return base64.b64decode(s, validate=True)
    except (ValueError, base64.binascii.Error):
        return None


def public_key_raw(public_key: str) -> bytes | None:
    """Return the raw 32-byte Ed25519 key from base64(url) raw, base64 SPKI DER, or PEM."""
    if not isinstance(public_key, str):
        return None
    if "BEGIN" in public_key:
        try:
            key = serialization.load_pem_public_key(public_key.encode("utf-8"))
        except (ValueError, TypeError):
            return None
        if not isinstance(key, ed25519.Ed25519PublicKey):
            return None
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw = base64url_decode(public_key)
    if raw is None:
        return None
    if len(raw) == 44 and raw.startswith(_ED25519_SPKI_PREFIX):
        raw = raw[len(_ED25519_SPKI_PREFIX):]
    return raw if len(raw) == 32 else None


def derive_device_id(public_key: str) -> str | None:
    """``deviceId`` = lowercase hex SHA-256 of the raw 32-byte public key (§3.1)."""
    raw = public_key_raw(public_key)
    return hashlib.sha256(raw).hexdigest() if raw is not None else None


def normalize_public_key_base64url(public_key: str) -> str | None:
    """Normalized form stored in the pairing record: base64url (no padding) of the raw key."""
    raw = public_key_raw(public_key)
    return base64url_encode(raw) if raw is not None else None


def normalize_device_metadata(value: Any) -> str:
    """``normalizeDeviceMetadataForAuth``: trim, ASCII A-Z lowercased only; absent -> ""."""
    if not isinstance(value, str):
        return ""
    trimmed = js_trim(value)
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in trimmed)


def build_device_auth_payload(
    version: str,
    *,
    device_id: str,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: Iterable[str],
    signed_at_ms: int,
    token: str | None,
    nonce: str | None = None,
    platform: str | None = None,
    device_family: str | None = None,
) -> str:
    """Build the exact ``|``-joined string that a device signs (protocol.md §3.3).

    ``version`` is ``"v1"``, ``"v2"`` or ``"v3"``. ``token`` ``None`` becomes the
    empty string; v3 appends the normalized platform and device family.
    """
    parts = [
        version, device_id, client_id, client_mode, role, ",".join(scopes),
        str(int(signed_at_ms)), token if token is not None else "",
    ]
    if version == "v1":
        return "|".join(parts)
    parts.append(nonce or "")
    if version == "v2":
        return "|".join(parts)
    if version != "v3":
        raise ValueError(f"unknown payload version {version!r}")
    parts.append(normalize_device_metadata(platform))
    parts.append(normalize_device_metadata(device_family))
    return "|".join(parts)


def verify_device_signature(public_key: str, payload: str, signature: str) -> bool:
    """Ed25519-verify ``signature`` (base64url/base64) over the UTF-8 bytes of ``payload``."""
    raw = public_key_raw(public_key)
    sig = base64url_decode(signature) if isinstance(signature, str) else None
    if raw is None or sig is None or len(sig) != 64:
        return False
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(sig, payload.encode("utf-8"))
        return True
    except InvalidSignature:
        return False


def signature_token(connect_params: dict) -> str | None:
    """``auth.token ?? auth.deviceToken ?? auth.bootstrapToken`` (JS ``??`` skips only null)."""
    auth = connect_params.get("auth")
    if not isinstance(auth, dict):
        return None
    for key in ("token", "deviceToken", "bootstrapToken"):
        if auth.get(key) is not None:
            return auth[key]
    return None


def resolve_signature_version(
    device: dict,
    connect_params: dict,
    role: str,
    scopes: list[str],
    signed_at_ms: int,
    nonce: str,
    *,
    allow_v3: bool = True,
    allow_v2: bool = True,
) -> str | None:
    """Return ``"v3"`` or ``"v2"`` for the first payload version that verifies, else ``None``.

    Mirrors upstream ``resolveDeviceSignaturePayloadVersion``: v3 first, then v2.
    """
    client = connect_params.get("client") or {}
    base = dict(
        device_id=device.get("id", ""), client_id=client.get("id", ""), client_mode=client.get("mode", ""),
        role=role, scopes=scopes, signed_at_ms=signed_at_ms,
        token=signature_token(connect_params), nonce=nonce,
    )
    if allow_v3:
        payload = build_device_auth_payload(
            "v3", platform=client.get("platform"), device_family=client.get("deviceFamily"), **base)
        if verify_device_signature(device.get("publicKey"), payload, device.get("signature")):
            return "v3"
    if allow_v2:
        payload = build_device_auth_payload("v2", **base)
        if verify_device_signature(device.get("publicKey"), payload, device.get("signature")):
            return "v2"
    return None


# --------------------------------------------------------------------------------------
# JSON schema
# --------------------------------------------------------------------------------------


def _default_path(name: str) -> Path:
    """Find a protocol data file: $OPENCLAW_PROTOCOL_DIR, ../shared/protocol, fixtures/."""
    here = Path(__file__).resolve().parent
    candidates = []
    env = os.environ.get("OPENCLAW_PROTOCOL_DIR")
    if env:
        candidates.append(Path(env) / name)
    repo_root = here.parent.parent
    candidates += [
        repo_root.parent / "shared" / "protocol" / name,
        repo_root / "shared" / "protocol" / name,
        here / "fixtures" / name,
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"{name} not found in: " + ", ".join(str(c) for c in candidates))


def default_schema_path() -> Path:
    """Path of ``protocol.schema.json`` (shared copy preferred, vendored fixture as fallback)."""
    return _default_path("protocol.schema.json")


def default_vectors_path() -> Path:
    """Path of ``device-auth-vectors.json``."""
    return _default_path("device-auth-vectors.json")


class ProtocolSchema:
    """Validators built from the upstream ``protocol.schema.json`` (draft-07).

    ``connect_errors`` validates against ``ConnectParams`` widened with the v4
    additions (``auth.deviceToken``, ``auth.bootstrapToken``, the v4 client id and
    mode lists); with ``v4=True`` it also requires ``device.nonce``.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_schema_path()
        with open(self.path, "r", encoding="utf-8") as fh:
            self.root = json.load(fh)
        self.definitions: dict = self.root["definitions"]
        self._cls = jsonschema.validators.validator_for(self.root)
        self._validators: dict[str, Any] = {}
        connect = copy.deepcopy(self.definitions["ConnectParams"])
        props = connect["properties"]
        props["auth"]["properties"].setdefault("deviceToken", {"type": "string"})
        props["auth"]["properties"].setdefault("bootstrapToken", {"type": "string"})
        props["client"]["properties"]["id"] = {
            "anyOf": [{"const": v, "type": "string"} for v in V4_CLIENT_IDS]}
        props["client"]["properties"]["mode"] = {
            "anyOf": [{"const": v, "type": "string"} for v in V4_CLIENT_MODES]}
        connect_v4 = copy.deepcopy(connect)
        device_required = connect_v4["properties"]["device"]["required"]
        if "nonce" not in device_required:
            device_required.append("nonce")
        self._extra = {"ConnectParams:v3+": connect, "ConnectParams:v4": connect_v4}

    def validator(self, name: str):
        """A cached validator for definition ``name`` (or one of the widened connect schemas)."""
        v = self._validators.get(name)
        if v is None:
            sub = self._extra.get(name) or self.definitions[name]
            schema = dict(sub)
            schema["$schema"] = self.root.get("$schema")
            schema["definitions"] = self.definitions
            v = self._cls(schema)
            self._validators[name] = v
        return v

    #: False turns per-frame validation off (``TestGateway(validate_frames=False)``; benchmarks only).
    enabled = True

    def errors(self, name: str, instance: Any) -> list[str]:
        """Human-readable validation errors of ``instance`` against ``name`` (empty if valid)."""
        if not self.enabled:
            return []
        out = []
        for err in sorted(self.validator(name).iter_errors(instance),
                          key=lambda e: (list(map(str, e.absolute_path)), e.message)):
            where = "/" + "/".join(str(p) for p in err.absolute_path) if err.absolute_path else "root"
            out.append(f"at {where}: {err.message}")
        return out

    def connect_errors(self, params: Any, v4: bool) -> list[str]:
        """Errors of ``connect`` params (v3 schema + v4 superset; nonce required for v4)."""
        return self.errors("ConnectParams:v4" if v4 else "ConnectParams:v3+", params)


# --------------------------------------------------------------------------------------
# Pairing store
# --------------------------------------------------------------------------------------


class PairingStore:
    """Device pairing state: paired devices and pending requests.

    ``paired``: ``deviceId -> {deviceId, publicKey, platform, deviceFamily, displayName,
    role, scopes, token, tokenIssuedAtMs, approvedAtMs, requestId}`` where platform and
    deviceFamily are the *normalized* values pinned at approval.

    ``pending``: ``requestId -> {requestId, deviceId, publicKey, reason, platform,
    deviceFamily, displayName, clientId, clientMode, role, scopes, createdAtMs, ts}``
    with raw (unnormalized) metadata of the latest attempt. At most one pending
    request per device; repeat attempts reuse its ``requestId``.

    When ``path`` is given the store is loaded from and saved to that JSON file
    (atomic replace) on every change, so a gateway restart keeps pairings.
    Thread-safe.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self._lock = threading.RLock()
        self.paired: dict[str, dict] = {}
        self.pending: dict[str, dict] = {}
        if self.path and self.path.is_file():
            self.load()

    # persistence -----------------------------------------------------------------
    def load(self) -> None:
        with self._lock:
            with open(self.path, "r", encoding="utf-8") as fh:
                data = json.load(fh)
            self.paired = dict(data.get("paired") or {})
            self.pending = dict(data.get("pending") or {})

    def save(self) -> None:
        if not self.path:
            return
        with self._lock:
            data = {"version": 1, "paired": self.paired, "pending": self.pending}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
                fh.write("\n")
            os.replace(tmp, self.path)

    # queries ---------------------------------------------------------------------
    def get_paired(self, device_id: str) -> dict | None:
        with self._lock:
            rec = self.paired.get(device_id)
            return dict(rec) if rec else None

    def pending_for_device(self, device_id: str) -> dict | None:
        with self._lock:
            for req in self.pending.values():
                if req["deviceId"] == device_id:
                    return dict(req)
            return None

    def pending_requests(self) -> dict[str, str]:
        with self._lock:
            return {rid: req["deviceId"] for rid, req in self.pending.items()}

    def paired_devices(self) -> dict[str, dict]:
        with self._lock:
            return {did: dict(rec) for did, rec in self.paired.items()}

    def pending_details(self) -> dict[str, dict]:
        with self._lock:
            return {rid: dict(req) for rid, req in self.pending.items()}

    # mutations -------------------------------------------------------------------
    def request(self, *, device_id: str, public_key: str, reason: str, client: dict,
                role: str, scopes: list[str]) -> tuple[dict, bool]:
        """Create or refresh the pending request of ``device_id``. Returns ``(request, created)``."""
        with self._lock:
            existing = None
            for req in self.pending.values():
                if req["deviceId"] == device_id:
                    existing = req
                    break
            created = existing is None
            req = existing or {"requestId": str(uuid.uuid4()), "deviceId": device_id,
                               "createdAtMs": now_ms()}
            req.update({
                "publicKey": public_key, "reason": reason,
                "platform": client.get("platform"), "deviceFamily": client.get("deviceFamily"),
                "displayName": client.get("displayName"), "clientId": client.get("id"),
                "clientMode": client.get("mode"), "role": role, "scopes": list(scopes),
                "ts": now_ms(),
            })
            self.pending[req["requestId"]] = req
            self.save()
            return dict(req), created

    def approve(self, request_id: str) -> dict:
        """Mark the device of ``request_id`` paired, pin its normalized metadata, mint a token.

        An existing device token is kept (metadata re-approval). Raises ``KeyError`` for an
        unknown ``request_id``. Returns a copy of the paired record.
        """
        with self._lock:
            req = self.pending.pop(request_id)
            prev = self.paired.get(req["deviceId"]) or {}
            ts = now_ms()
            rec = {
                "deviceId": req["deviceId"],
                "publicKey": req["publicKey"],
                "platform": normalize_device_metadata(req.get("platform")),
                "deviceFamily": normalize_device_metadata(req.get("deviceFamily")),
                "displayName": req.get("displayName"),
                "role": req.get("role") or "node",
                "scopes": list(req.get("scopes") or []),
                "token": prev.get("token") if prev.get("publicKey") == req["publicKey"] else None,
                "tokenIssuedAtMs": prev.get("tokenIssuedAtMs"),
                "approvedAtMs": ts,
                "requestId": request_id,
            }
            if not rec["token"]:
                rec["token"] = secrets.token_urlsafe(32)
                rec["tokenIssuedAtMs"] = ts
            self.paired[req["deviceId"]] = rec
            self.save()
            return dict(rec)

    def reject(self, request_id: str) -> dict:
        """Drop a pending request. Raises ``KeyError`` if unknown."""
        with self._lock:
            req = self.pending.pop(request_id)
            self.save()
            return dict(req)

    def ensure_token(self, device_id: str) -> dict:
        """Return the paired record, minting a device token if it has none."""
        with self._lock:
            rec = self.paired[device_id]
            if not rec.get("token"):
                rec["token"] = secrets.token_urlsafe(32)
                rec["tokenIssuedAtMs"] = now_ms()
                self.save()
            return dict(rec)

    def rotate_token(self, device_id: str) -> str:
        """Replace the device token with a fresh one (the old one stops working)."""
        with self._lock:
            rec = self.paired[device_id]
            rec["token"] = secrets.token_urlsafe(32)
            rec["tokenIssuedAtMs"] = now_ms()
            self.save()
            return rec["token"]

    def unpair(self, device_id: str) -> bool:
        """Forget a paired device (and its pending requests). Returns whether it was paired."""
        with self._lock:
            was = self.paired.pop(device_id, None) is not None
            for rid in [r for r, q in self.pending.items() if q["deviceId"] == device_id]:
                del self.pending[rid]
            self.save()
            return was

    def update(self, device_id: str, **fields: Any) -> None:
        with self._lock:
            if device_id in self.paired:
                self.paired[device_id].update(fields)
                self.save()


# --------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------


def generate_self_signed_certificate(key_type: str = "ec", days: int = 30) -> tuple[bytes, bytes, bytes]:
    """Generate a self-signed server certificate for 127.0.0.1 / localhost / ::1.

    Returns ``(cert_pem, key_pem, cert_der)``. ``key_type`` is ``"ec"`` (P-256) or ``"rsa"``.
    """
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_usage = x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                  content_commitment=False, data_encipherment=False,
                                  key_agreement=False, key_cert_sign=False, crl_sign=False,
                                  encipher_only=False, decipher_only=False)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        key_usage = x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                  content_commitment=False, data_encipherment=False,
                                  key_agreement=False, key_cert_sign=False, crl_sign=False,
                                  encipher_only=False, decipher_only=False)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpenClaw test gateway")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert_pem, key_pem, cert.public_bytes(serialization.Encoding.DER)


# --------------------------------------------------------------------------------------
# Connection record
# --------------------------------------------------------------------------------------


@dataclass(eq=False)
class Connection:
    """One WebSocket connection as the gateway saw it (kept in history after it closes).

    Close fields: ``client_close_code``/``client_close_reason`` come from the close
    frame the *node* sent (for a node-initiated close such as ``4000 "tick
    timeout"`` this is its code; when the gateway closed first it is the node's echo).
    ``server_close_code``/``server_close_reason`` is what the gateway sent.
    ``closed_by`` is ``"client"``, ``"server"`` or ``None`` (no closing handshake).
    """

    id: str
    index: int
    opened_at_ms: int
    remote: str | None = None
    path: str | None = None
    user_agent: str | None = None
    #: The WebSocket upgrade request's headers (name as sent -> value).
    request_headers: dict = field(default_factory=dict)
    nonce: str | None = None
    connect_received: bool = False
    connect_frame: dict | None = None
    connect_params: dict | None = None
    challenge_ts: int | None = None
    protocol: int | None = None
    device_id: str | None = None
    signature_version: str | None = None
    auth_method: str | None = None
    hello: bool = False
    hello_payload: dict | None = None
    error: dict | None = None
    open: bool = True
    closed_at_ms: int | None = None
    close_code: int | None = None
    close_reason: str | None = None
    client_close_code: int | None = None
    client_close_reason: str | None = None
    server_close_code: int | None = None
    server_close_reason: str | None = None
    closed_by: str | None = None
    frames_received: list = field(default_factory=list)
    frames_sent: list = field(default_factory=list)
    ticks_sent: int = 0
    seq: int = 0
    pongs: int = 0
    # internals
    _ws: Any = field(default=None, repr=False)
    _failed: bool = field(default=False, repr=False)
    _tasks: list = field(default_factory=list, repr=False)
    _closed_event: Any = field(default=None, repr=False)
    #: perf_counter() of the latest bytes received on this socket (before they are parsed).
    _rx_at: float = field(default=0.0, repr=False)

    @property
    def error_code(self) -> str | None:
        """``error.code`` of the connect reply, if the connect failed."""
        return (self.error or {}).get("code")

    @property
    def details_code(self) -> str | None:
        """``error.details.code`` of the connect reply, if any."""
        details = (self.error or {}).get("details")
        return details.get("code") if isinstance(details, dict) else None

    def summary(self) -> dict:
        """A JSON-friendly summary (used by ``GET /state``)."""
        client = (self.connect_params or {}).get("client") or {}
        return {
            "connId": self.id, "index": self.index, "open": self.open, "hello": self.hello,
            "protocol": self.protocol, "deviceId": self.device_id,
            "displayName": client.get("displayName"), "platform": client.get("platform"),
            "signatureVersion": self.signature_version, "authMethod": self.auth_method,
            "connectReceived": self.connect_received,
            "error": self.error, "closeCode": self.close_code, "closeReason": self.close_reason,
            "clientCloseCode": self.client_close_code, "clientCloseReason": self.client_close_reason,
            "serverCloseCode": self.server_close_code,
            "serverCloseReason": self.server_close_reason, "closedBy": self.closed_by,
            "ticksSent": self.ticks_sent, "pongs": self.pongs,
        }


@dataclass(eq=False)
class _PendingInvoke:
    id: str
    node_id: str
    command: str
    conn: Connection
    future: asyncio.Future
    sent_at_ms: int
    sent_at: float = 0.0  # time.perf_counter() once the request frame was written


class _ConnectRejected(Exception):
    """Internal: a connect attempt fails with ``error`` and the socket closes."""

    def __init__(self, error: dict, close_code: int, close_reason: str):
        super().__init__(error.get("message"))
        self.error = error
        self.close_code = close_code
        self.close_reason = close_reason


def _error_shape(code: str, message: str, details: Any = None, *, retryable: bool | None = None,
                 retry_after_ms: int | None = None) -> dict:
    err: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    if retryable is not None:
        err["retryable"] = retryable
    if retry_after_ms is not None:
        err["retryAfterMs"] = retry_after_ms
    return err


# --------------------------------------------------------------------------------------
# The gateway
# --------------------------------------------------------------------------------------


class TestGateway:
    """An OpenClaw gateway for tests, running in a background thread.

    Construction only configures; :meth:`start` binds ``127.0.0.1:<port>`` (``port=0``
    picks a free port; a restart reuses the same port) and sets :attr:`port`,
    :attr:`url` and, with ``tls=True``, :attr:`cert_fingerprint_sha256`.

    Configuration (keyword arguments, also plain attributes that may be changed later):

    - ``token`` / ``password``: shared secrets; ``None`` disables that check.
      Without either, any client passes auth (upstream ``auth.mode none``) unless
      ``check_device_tokens`` is set.
    - ``tls``: serve ``wss://`` with a fresh self-signed cert (P-256, or RSA with
      ``tls_key_type="rsa"``) for 127.0.0.1/localhost/::1.
    - ``tick_interval_ms``: advertised ``policy.tickIntervalMs`` and tick period.
    - ``state_path``: JSON file for the pairing store (survives restarts/processes).
    - ``handshake_timeout_s``: deadline for a successful connect (close 1000).
    - ``pairing_retry_hints``: add ``recommendedNextStep:"wait_then_retry", retryable:true,
      pauseReconnect:false`` to ``PAIRING_REQUIRED`` details (default True).
    - ``remediation_hint``: add upstream's ``remediationHint`` to pairing details (default
      False: the §10.6 frame has none).
    - ``auto_approve``: silently approve unpaired devices during connect.
    - ``check_device_tokens``: without shared secrets, still reject a paired device whose
      presented token (``auth.deviceToken ?? auth.token``) is not its issued token
      (``AUTH_DEVICE_TOKEN_MISMATCH``).
    - ``upstream_auth_details``: emit upstream's richer auth failure details
      (``authProvided``, ``canRetryWithDeviceToken`` true for a wrong shared token from
      a device, ``update_auth_configuration`` for missing secrets) instead of §10.5's
      fixed ``canRetryWithDeviceToken:false, recommendedNextStep:"update_auth_credentials"``.
    - ``server_protocols``: protocol versions the gateway speaks (default ``(3, 4)``; use
      ``(5,)`` for a "protocol-5-only server").
    - ``reject_v3_signatures``: only v2 signatures verify (tests the node's v2 retry).
    - ``strict_connect_schema``: reject connect params that fail the schema (default True).
    - ``tls_session_tickets``: send TLS 1.3 session tickets (default False, see ``_ssl_context``).
    - ``ping_interval_s`` / ``ping_timeout_s``: WebSocket pings (``None`` disables);
      no pong in time -> close ``1001 "ping timeout"``.
    - ``cancel_on_timeout``: when an invoke's deadline passes, answer the caller ``TIMEOUT``
      and send the node ``node.invoke.cancel {invokeId, nodeId}`` (upstream's registry; default True).
    - ``node_event_v4_reply``: answer ``node.event`` on protocol 4 with
      ``{"ok":true,"event":…,"handled":true}`` (default True; v3 always gets ``{"ok":true}``).
    - ``clock_offset_ms``: added to the gateway clock for the signature skew check.
    - ``surface_approval``: two-step pairing as current gateways do it: a paired device's
      first hello files a command-surface request (``np-…``); until :meth:`approve_surface`,
      ``node.runnerInventory.update`` answers ``UNAVAILABLE`` with upstream's "awaiting
      operator approval" message naming ``openclaw nodes approve <id>`` and invokes are not
      routed (default False: every surface counts as approved).
    - ``legacy_surface_message``: answer a pending surface with the older gateways' message
      ("…publication is not current; retry after pairing completes", no request id).
    - ``notify_node_pairing``: also send ``node.pair.requested``/``node.pair.resolved`` to the
      node's own connection (current gateways send them to operators only; default False).
    - ``on_event``: callback receiving every notable event dict (see :attr:`events`).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        token: str | None = None,
        password: str | None = None,
        tls: bool = False,
        tick_interval_ms: int = DEFAULT_TICK_INTERVAL_MS,
        port: int = 0,
        state_path: str | os.PathLike | None = None,
        *,
        handshake_timeout_s: float = DEFAULT_HANDSHAKE_TIMEOUT_S,
        pairing_retry_hints: bool = True,
        remediation_hint: bool = False,
        auto_approve: bool = False,
        check_device_tokens: bool = False,
        upstream_auth_details: bool = False,
        server_protocols: Iterable[int] = (3, 4),
        reject_v3_signatures: bool = False,
        strict_connect_schema: bool = True,
        ping_interval_s: float | None = DEFAULT_PING_INTERVAL_S,
        ping_timeout_s: float = DEFAULT_PING_TIMEOUT_S,
        node_event_v4_reply: bool = True,
        cancel_on_timeout: bool = True,
        server_version: str = DEFAULT_SERVER_VERSION,
        skills_bins: Iterable[str] = (),
        clock_offset_ms: int = 0,
        surface_approval: bool = False,
        legacy_surface_message: bool = False,
        notify_node_pairing: bool = False,
        schema_path: str | os.PathLike | None = None,
        tls_key_type: str = "ec",
        tls_session_tickets: bool = False,
        on_event: Callable[[dict], None] | None = None,
        validate_frames: bool = True,
    ):
        self.host = "127.0.0.1"
        self.token = token
        self.password = password
        self.tls = tls
        self.tick_interval_ms = int(tick_interval_ms)
        self.port = int(port)
        self.handshake_timeout_s = handshake_timeout_s
        self.pairing_retry_hints = pairing_retry_hints
        self.remediation_hint = remediation_hint
        self.auto_approve = auto_approve
        self.check_device_tokens = check_device_tokens
        self.upstream_auth_details = upstream_auth_details
        self.server_protocols = tuple(sorted(set(int(p) for p in server_protocols)))
        self.reject_v3_signatures = reject_v3_signatures
        self.strict_connect_schema = strict_connect_schema
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s
        self.node_event_v4_reply = node_event_v4_reply
        self.cancel_on_timeout = cancel_on_timeout
        #: When set, the ``ts`` every ``connect.challenge`` carries instead of the clock (``OMIT``:
        #: none), to test a node against a malformed challenge.
        self.challenge_ts_value: Any = None
        #: ``hello-ok.features.capabilities`` on protocol 4 (upstream's GATEWAY_SERVER_CAPS).
        self.server_capabilities: list[str] = []
        #: Added to the ``ts`` of each ``connect.challenge`` (and so to what the node signs).
        self.challenge_ts_offset_ms = 0
        self.server_version = server_version
        self.skills_bins = list(skills_bins)
        self.clock_offset_ms = clock_offset_ms
        self.surface_approval = surface_approval
        self.legacy_surface_message = legacy_surface_message
        self.notify_node_pairing = notify_node_pairing
        #: Pending command-surface requests: ``requestId -> {requestId, nodeId, commands, caps, ts}``.
        self.surface_requests: dict[str, dict] = {}
        #: Devices whose command surface an operator approved.
        self.approved_surfaces: set[str] = set()
        #: Every ``node.runnerInventory.update``: ``{connId, deviceId, params, atMs, ok, error}``.
        self.inventory_calls: list[dict] = []
        #: Every accepted ``node.skills.update``: ``{connId, deviceId, skills, atMs}``.
        self.skills_updates: list[dict] = []
        #: Every accepted ``node.pluginTools.update``: ``{connId, deviceId, tools, atMs}``.
        self.plugin_tools_updates: list[dict] = []
        #: ``None`` answers it; an error code (``"UNAVAILABLE"``) fails it; ``"unknown"`` answers
        #: ``unknown method`` as a gateway that predates it.
        self.plugin_tools_answer: str | None = None
        #: Bootstrap tokens of issued setup codes: ``token -> {expiresAtMs, used}``.
        self.bootstrap_tokens: dict[str, dict] = {}
        #: Every ``auth.bootstrapToken`` presented, in order.
        self.bootstrap_attempts: list[str] = []
        #: Join codes not yet fetched: ``code -> setup payload``; and every join request.
        self.join_codes: dict[str, dict] = {}
        self.join_requests: list[dict] = []
        self.tls_key_type = tls_key_type
        self.tls_session_tickets = tls_session_tickets
        self.on_event = on_event

        self.schema = ProtocolSchema(schema_path)
        # Benchmarks measure the node, not jsonschema: they may skip the per-frame checks
        # (the connect handshake is still validated). Tests keep them on.
        self.schema.enabled = validate_frames
        self.store = PairingStore(state_path)

        #: Every connection ever accepted, in order (``Connection`` objects stay live).
        self.connections: list[Connection] = []
        #: Every frame received from any node: ``{"connId", "frame"}`` (``raw`` if not JSON).
        self.received_frames: list[dict] = []
        #: Schema violations: ``{"connId", "schema", "method", "errors", "frame"}``.
        self.schema_violations: list[dict] = []
        #: Params of every ``node.event`` request received.
        self.node_events: list[dict] = []
        #: Params of every ``node.invoke.result`` received, with ``_ignored``/``_rejected`` flags.
        self.invoke_results: list[dict] = []
        #: Request written → result received, on the gateway's own loop (ms, perf_counter):
        #: the node and the WebSocket transport without the caller's thread hops.
        self.invoke_round_trips_ms: list[float] = []
        #: Request written → the bytes carrying its result received on the socket (ms,
        #: perf_counter): the node's own round trip, before this gateway parses the frames
        #: ahead of the result (an ``exec.finished`` event) and the result itself.
        self.invoke_arrivals_ms: list[float] = []
        #: Params of every ``node.invoke.progress`` request received.
        self.invoke_progress: list[dict] = []
        #: Every other request: ``{"connId", "method", "params"}``.
        self.requests: list[dict] = []
        #: Notable events (also passed to ``on_event``): ``{"event": <kind>, ...}``.
        self.events: list[dict] = []
        #: Custom method handlers: ``method -> fn(params, conn) -> (ok, payload_or_error)``.
        self.method_handlers: dict[str, Callable[[Any, Connection], tuple[bool, Any]]] = {}

        self.cert_pem: bytes | None = None
        self.key_pem: bytes | None = None
        self.cert_der: bytes | None = None
        self.cert_fingerprint_sha256: str | None = None
        self._cert_dir: str | None = None

        self._ticks_enabled = True
        #: When set, new connections get no ``connect.challenge`` (deadline tests).
        self.suppress_challenge = False
        self._startup_unavailable: list[int] = []
        self._injected_failures: list[dict] = []
        self._reject_next_signature = 0
        self._force_nonce_mismatch = 0
        self._nodes: dict[str, Connection] = {}
        self._pending_invokes: dict[str, _PendingInvoke] = {}
        self._started_at_ms = now_ms()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._running = False
        self._lifecycle_lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>`` or ``wss://127.0.0.1:<port>``."""
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> "TestGateway":
        """Start listening (idempotent). A restart after :meth:`stop` reuses the same port,
        TLS certificate and pairing store."""
        with self._lifecycle_lock:
            if self._running:
                return self
            if self.tls and self.cert_pem is None:
                self._make_certificate()
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._thread = threading.Thread(target=self._run_loop, args=(self._loop, ready),
                                            name="openclaw-test-gateway", daemon=True)
            self._thread.start()
            ready.wait()
            fut = asyncio.run_coroutine_threadsafe(self._async_start(), self._loop)
            try:
                fut.result(timeout=15)
            except BaseException:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
                self._loop = None
                raise
            self._running = True
            self._started_at_ms = now_ms()
        self._emit("listening", url=self.url, port=self.port,
                   fingerprint=self.cert_fingerprint_sha256, tls=self.tls)
        return self

    def stop(self, code: int = 1001, reason: str = "") -> None:
        """Stop listening and close every connection (default ``1001``). Pending invokes
        resolve with ``NOT_CONNECTED``. State (pairings, history) is kept; :meth:`start`
        again restarts on the same port."""
        with self._lifecycle_lock:
            if not self._running:
                return
            loop = self._loop
            try:
                asyncio.run_coroutine_threadsafe(self._async_stop(code, reason), loop).result(timeout=15)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                self._thread.join(timeout=10)
                self._running = False
                self._loop = None
                self._thread = None
        self._emit("stopped", port=self.port)

    def restart(self, down_s: float = 0.0, code: int = 1012, reason: str = "service restart") -> None:
        """:meth:`stop` (closing with ``code``/``reason``), wait ``down_s``, :meth:`start`."""
        self.stop(code, reason)
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    def close(self) -> None:
        """Stop and remove the temporary TLS files."""
        self.stop()
        if self._cert_dir:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None

    def __enter__(self) -> "TestGateway":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def rotate_tls_certificate(self) -> str:
        """Generate a new self-signed certificate (new fingerprint) and restart if running.
        Returns the new fingerprint."""
        was_running = self._running
        if was_running:
            self.stop()
        self._make_certificate()
        if was_running:
            self.start()
        return self.cert_fingerprint_sha256

    @property
    def cert_path(self) -> str | None:
        """Path of the PEM certificate file (TLS only)."""
        return os.path.join(self._cert_dir, "cert.pem") if self._cert_dir else None

    def _make_certificate(self) -> None:
        self.cert_pem, self.key_pem, self.cert_der = generate_self_signed_certificate(self.tls_key_type)
        self.cert_fingerprint_sha256 = hashlib.sha256(self.cert_der).hexdigest()
        if not self._cert_dir:
            self._cert_dir = tempfile.mkdtemp(prefix="openclaw-test-gateway-")
        with open(os.path.join(self._cert_dir, "cert.pem"), "wb") as fh:
            fh.write(self.cert_pem)
        key_path = os.path.join(self._cert_dir, "key.pem")
        with open(key_path, "wb") as fh:
            fh.write(self.key_pem)
        os.chmod(key_path, 0o600)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(os.path.join(self._cert_dir, "cert.pem"),
                            os.path.join(self._cert_dir, "key.pem"))
        if not self.tls_session_tickets:
            # No TLS 1.3 NewSessionTicket after the handshake: a threaded client (e.g. the
            # websockets sync client used by the self-tests) then never reads and writes the
            # same SSL object concurrently while sending its HTTP upgrade request, which
            # intermittently lost that request. Session resumption is not needed here.
            ctx.num_tickets = 0
        return ctx

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in tasks:
                    t.cancel()
                if tasks:
                    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _async_start(self) -> None:
        self._server = await serve(
            self._handler, self.host, self.port,
            ssl=self._ssl_context() if self.tls else None,
            ping_interval=None,  # our own ping loop closes with 1001 "ping timeout"
            max_size=MAX_PAYLOAD_BYTES,
            compression=None,
            close_timeout=2,
            server_header=f"openclaw-test-gateway/{self.server_version}",
            process_request=self._process_http,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _async_stop(self, code: int, reason: str) -> None:
        for pending in list(self._pending_invokes.values()):
            self._resolve_invoke_locally(pending, "NOT_CONNECTED", "gateway stopped")
        # Stop accepting first, then close our sockets with code/reason (Server.close(code=)
        # only exists in newer websockets), then let websockets finish the rest.
        self._server.server.close()
        targets = [c for c in self.connections if c.open]
        if targets:
            await asyncio.gather(*(self._close(c, code, reason) for c in targets), return_exceptions=True)
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), timeout=10)
        except asyncio.TimeoutError:  # pragma: no cover - defensive
            log.warning("server did not close in time")

    def _call(self, fn: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Run ``fn`` (sync function or coroutine function) on the loop; return its result.
        Runs directly when the gateway is stopped."""
        loop = self._loop
        if loop is None or not self._running:
            result = fn()
            if asyncio.iscoroutine(result):
                result.close()
                raise RuntimeError("gateway is not running")
            return result
        if threading.current_thread() is self._thread:
            raise RuntimeError("TestGateway public methods must not be called from the gateway loop")

        async def runner():
            r = fn()
            if asyncio.iscoroutine(r):
                r = await r
            return r

        return asyncio.run_coroutine_threadsafe(runner(), loop).result(timeout=timeout)

    # ------------------------------------------------------------------ events / logging
    def _emit(self, kind: str, **fields: Any) -> None:
        ev = {"event": kind, "ts": now_ms(), **fields}
        self.events.append(ev)
        log.debug("event %s", _json_dumps(ev))
        if self.on_event:
            try:
                self.on_event(ev)
            except Exception:  # pragma: no cover - callback errors must not kill the gateway
                log.exception("on_event callback failed")

    def _violation(self, conn: Connection | None, schema: str, method: str | None,
                   errors: list[str], frame: Any) -> None:
        entry = {"connId": conn.id if conn else None, "schema": schema, "method": method,
                 "errors": errors, "frame": frame}
        self.schema_violations.append(entry)
        log.warning("schema violation (%s%s): %s", schema, f" {method}" if method else "",
                    "; ".join(errors))
        self._emit("schema.violation", connId=entry["connId"], schema=schema, method=method,
                   errors=errors)

    # ------------------------------------------------------------------ connection handling
    async def _handler(self, ws: ServerConnection) -> None:
        conn = Connection(id=str(uuid.uuid4()), index=len(self.connections), opened_at_ms=now_ms())
        conn._ws = ws
        conn._closed_event = asyncio.Event()
        receive_data = ws.protocol.receive_data

        def stamped_receive_data(data: bytes) -> None:
            conn._rx_at = time.perf_counter()
            receive_data(data)
        ws.protocol.receive_data = stamped_receive_data
        try:
            conn.remote = "%s:%s" % ws.remote_address[:2]
        except Exception:  # pragma: no cover
            conn.remote = None
        conn.path = ws.request.path if ws.request else None
        conn.user_agent = ws.request.headers.get("User-Agent") if ws.request else None
        conn.request_headers = dict(ws.request.headers.raw_items()) if ws.request else {}
        self.connections.append(conn)
        self._emit("connection.open", connId=conn.id, remote=conn.remote, path=conn.path)

        conn.nonce = str(uuid.uuid4())
        # The gateway's own time, which today's clients sign with (`device.signedAt`);
        # ``challenge_ts_offset_ms`` skews it (a gateway whose clock is off).
        conn.challenge_ts = now_ms() + self.challenge_ts_offset_ms
        if not self.suppress_challenge:
            payload: dict[str, Any] = {"nonce": conn.nonce, "ts": conn.challenge_ts}
            if self.challenge_ts_value is not None:
                payload["ts"] = self.challenge_ts_value
                if self.challenge_ts_value is OMIT:
                    del payload["ts"]
            await self._send(conn, {"type": "event", "event": "connect.challenge", "payload": payload})
        loop = asyncio.get_running_loop()
        hs_timer = loop.call_later(self.handshake_timeout_s,
                                   lambda: self._spawn(conn, self._handshake_timeout(conn)))
        if self.ping_interval_s:
            self._spawn(conn, self._ping_loop(conn))
        try:
            async for message in ws:
                if conn._failed:
                    continue
                await self._on_message(conn, message)
        except ConnectionClosed:
            pass
        except Exception:  # pragma: no cover - a gateway bug; keep serving other sockets
            log.exception("handler error on %s", conn.id)
            try:
                await ws.close(1011, "internal error")
            except Exception:
                pass
        finally:
            hs_timer.cancel()
            try:
                await asyncio.wait_for(ws.wait_closed(), timeout=5)
            except Exception:
                pass
            for task in conn._tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            self._finalize(conn)

    def _spawn(self, conn: Connection, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        conn._tasks.append(task)
        return task

    def _finalize(self, conn: Connection) -> None:
        ws = conn._ws
        proto = ws.protocol
        conn.open = False
        conn.closed_at_ms = now_ms()
        conn.close_code = proto.close_code
        conn.close_reason = proto.close_reason
        if proto.close_rcvd is not None:
            conn.client_close_code = proto.close_rcvd.code
            conn.client_close_reason = proto.close_rcvd.reason
        if proto.close_sent is not None:
            conn.server_close_code = proto.close_sent.code
            conn.server_close_reason = proto.close_sent.reason
        if proto.close_rcvd_then_sent is True:
            conn.closed_by = "client"
        elif proto.close_rcvd_then_sent is False:
            conn.closed_by = "server"
        elif proto.close_sent is not None:
            conn.closed_by = "server"
        if conn.device_id and self._nodes.get(conn.device_id) is conn:
            del self._nodes[conn.device_id]
        for pending in list(self._pending_invokes.values()):
            if pending.conn is conn:
                self._resolve_invoke_locally(pending, "NOT_CONNECTED", "node disconnected")
        if conn._closed_event is not None:
            conn._closed_event.set()
        self._emit("connection.closed", connId=conn.id, deviceId=conn.device_id,
                   code=conn.close_code, reason=conn.close_reason, closedBy=conn.closed_by,
                   clientCloseCode=conn.client_close_code,
                   clientCloseReason=conn.client_close_reason, hello=conn.hello)

    async def _send(self, conn: Connection, obj: dict) -> bool:
        conn.frames_sent.append(obj)
        try:
            await conn._ws.send(_json_dumps(obj))
            return True
        except ConnectionClosed:
            return False

    async def _send_raw(self, conn: Connection, text: str | bytes) -> bool:
        conn.frames_sent.append({"raw": text})
        try:
            await conn._ws.send(text)
            return True
        except ConnectionClosed:
            return False

    async def _close(self, conn: Connection, code: int, reason: str = "") -> None:
        try:
            await conn._ws.close(code, truncate_close_reason(reason))
        except ConnectionClosed:
            pass

    async def _send_event(self, conn: Connection, event: str, payload: Any, *, seq: bool) -> bool:
        frame: dict[str, Any] = {"type": "event", "event": event, "payload": payload}
        if seq:
            conn.seq += 1
            frame["seq"] = conn.seq
        return await self._send(conn, frame)

    async def _handshake_timeout(self, conn: Connection) -> None:
        if conn.open and not conn.hello:
            log.info("handshake timeout conn=%s", conn.id)
            conn._failed = True
            self._emit("handshake.timeout", connId=conn.id)
            await self._close(conn, 1000, "")

    async def _ping_loop(self, conn: Connection) -> None:
        ws = conn._ws
        try:
            while True:
                await asyncio.sleep(self.ping_interval_s)
                waiter = await ws.ping()
                try:
                    await asyncio.wait_for(waiter, timeout=self.ping_timeout_s)
                    conn.pongs += 1
                except asyncio.TimeoutError:
                    self._emit("ping.timeout", connId=conn.id)
                    await self._close(conn, 1001, "ping timeout")
                    return
        except (ConnectionClosed, asyncio.CancelledError):
            return

    async def _tick_loop(self, conn: Connection, interval_ms: int) -> None:
        try:
            while conn.open:
                await asyncio.sleep(interval_ms / 1000)
                if self._ticks_enabled and conn.open:
                    if await self._send_event(conn, "tick", {"ts": now_ms()}, seq=True):
                        conn.ticks_sent += 1
        except asyncio.CancelledError:
            return

    # ------------------------------------------------------------------ inbound frames
    async def _on_message(self, conn: Connection, message: str | bytes) -> None:
        size = len(message.encode("utf-8")) if isinstance(message, str) else len(message)
        if not conn.hello and size > MAX_PREAUTH_PAYLOAD_BYTES:
            self.received_frames.append({"connId": conn.id, "raw": f"<{size} bytes>"})
            conn._failed = True
            await self._close(conn, 1009, "preauth payload too large")
            return
        if isinstance(message, bytes):
            self.received_frames.append({"connId": conn.id, "raw": message})
            conn.frames_received.append({"raw": message})
            self._violation(conn, "RequestFrame", None, ["binary frame (expected one JSON text frame)"],
                            message)
            if not conn.hello:
                conn._failed = True
                await self._close(conn, 1008, "invalid request frame")
            return
        try:
            frame = json.loads(message)
        except ValueError as exc:
            self.received_frames.append({"connId": conn.id, "raw": message})
            conn.frames_received.append({"raw": message})
            self._violation(conn, "RequestFrame", None, [f"invalid JSON: {exc}"], message)
            if not conn.hello:
                conn._failed = True
                await self._close(conn, 1008, "invalid request frame")
            return
        self.received_frames.append({"connId": conn.id, "frame": frame})
        conn.frames_received.append(frame)

        envelope_errors = self.schema.errors("RequestFrame", frame)
        method = frame.get("method") if isinstance(frame, dict) else None
        if envelope_errors:
            self._violation(conn, "RequestFrame", method if isinstance(method, str) else None,
                            envelope_errors, frame)

        if not conn.hello:
            await self._on_handshake_frame(conn, frame, envelope_errors)
            return
        if envelope_errors:
            if isinstance(frame, dict) and isinstance(frame.get("id"), str) and frame["id"]:
                await self._reply_error(conn, frame["id"], "INVALID_REQUEST",
                                        "invalid request frame: " + "; ".join(envelope_errors))
            return
        await self._dispatch(conn, frame)

    async def _reply_ok(self, conn: Connection, req_id: str, payload: Any) -> None:
        await self._send(conn, {"type": "res", "id": req_id, "ok": True, "payload": payload})

    async def _reply_error(self, conn: Connection, req_id: str, code: str, message: str,
                           details: Any = None) -> None:
        await self._send(conn, {"type": "res", "id": req_id, "ok": False,
                                "error": _error_shape(code, message, details)})

    # ------------------------------------------------------------------ handshake
    async def _on_handshake_frame(self, conn: Connection, frame: Any, envelope_errors: list[str]) -> None:
        is_request = not envelope_errors
        if not is_request or frame.get("method") != "connect":
            message = ("invalid handshake: first request must be connect" if is_request
                       else "invalid request frame")
            conn._failed = True
            if is_request:
                err = _error_shape("INVALID_REQUEST", message)
                conn.error = err
                await self._send(conn, {"type": "res", "id": frame["id"], "ok": False, "error": err})
            self._emit("connect.rejected", connId=conn.id, code="INVALID_REQUEST", detailsCode=None,
                       message=message)
            await self._close(conn, 1008, message)
            return

        conn.connect_received = True
        conn.connect_frame = frame
        params = frame.get("params")
        conn.connect_params = params if isinstance(params, dict) else None
        try:
            hello = self._decide_connect(conn, frame)
        except _ConnectRejected as rej:
            conn._failed = True
            conn.error = rej.error
            details = rej.error.get("details")
            self._emit("connect.rejected", connId=conn.id, deviceId=conn.device_id,
                       code=rej.error["code"], message=rej.error["message"],
                       detailsCode=details.get("code") if isinstance(details, dict) else None,
                       requestId=details.get("requestId") if isinstance(details, dict) else None)
            await self._send(conn, {"type": "res", "id": frame["id"], "ok": False, "error": rej.error})
            if rej.close_code is None:
                # Let the client close first (e.g. 1013 "gateway starting"); close after a grace.
                self._spawn(conn, self._close_later(conn, 2.0, 1013, "gateway starting"))
            else:
                await self._close(conn, rej.close_code, rej.close_reason)
            return

        # Record the hello before sending it, so observers never lag behind the node.
        conn.hello = True
        conn.hello_payload = hello
        previous = self._nodes.get(conn.device_id)
        self._nodes[conn.device_id] = conn
        if previous is not None and previous is not conn:
            log.info("node %s re-registered (old conn %s)", conn.device_id, previous.id)
        await self._send(conn, {"type": "res", "id": frame["id"], "ok": True, "payload": hello})
        self._spawn(conn, self._tick_loop(conn, hello["policy"]["tickIntervalMs"]))
        if self.surface_approval and conn.device_id not in self.approved_surfaces:
            await self._file_surface_request(conn)
        client = conn.connect_params.get("client") or {}
        self._emit("hello", connId=conn.id, deviceId=conn.device_id, protocol=conn.protocol,
                   displayName=client.get("displayName"), platform=client.get("platform"),
                   signatureVersion=conn.signature_version, authMethod=conn.auth_method,
                   commands=conn.connect_params.get("commands"), caps=conn.connect_params.get("caps"))

    async def _close_later(self, conn: Connection, delay: float, code: int, reason: str) -> None:
        try:
            await asyncio.sleep(delay)
            if conn.open:
                await self._close(conn, code, reason)
        except asyncio.CancelledError:
            return

    def _decide_connect(self, conn: Connection, frame: dict) -> dict:
        """Run the §10 connect checks in order. Returns the hello-ok payload or raises
        :class:`_ConnectRejected`."""
        params = frame.get("params")

        # 3 (computed first: the claimed protocol selects the schema).
        p_min = params.get("minProtocol") if isinstance(params, dict) else None
        p_max = params.get("maxProtocol") if isinstance(params, dict) else None
        protocol = None
        if isinstance(p_min, int) and isinstance(p_max, int):
            for candidate in sorted(self.server_protocols, reverse=True):
                if p_min <= candidate <= p_max:
                    protocol = candidate
                    break

        # 2. closed-schema validation
        schema_errors = self.schema.connect_errors(params, v4=(protocol is not None and protocol >= 4))
        if schema_errors:
            self._violation(conn, "ConnectParams", "connect", schema_errors, frame)
            if self.strict_connect_schema or not isinstance(params, dict):
                message = "invalid connect params: " + "; ".join(schema_errors)
                raise _ConnectRejected(_error_shape("INVALID_REQUEST", message), 1008, message)

        # Fault injection: gateway still starting.
        if self._startup_unavailable:
            retry_after = self._startup_unavailable.pop(0)
            raise _ConnectRejected(
                _error_shape("UNAVAILABLE", "gateway starting; retry shortly",
                             {"reason": "startup-sidecars"}, retryable=True,
                             retry_after_ms=retry_after),
                None, "")
        # Fault injection: arbitrary failure.
        if self._injected_failures:
            inj = self._injected_failures.pop(0)
            raise _ConnectRejected(
                _error_shape(inj["code"], inj["message"], inj["details"], retryable=inj["retryable"],
                             retry_after_ms=inj["retry_after_ms"]),
                inj["close_code"], inj["close_reason"] if inj["close_reason"] is not None else inj["message"])

        # 3. protocol pick
        if protocol is None:
            expected = max(self.server_protocols)
            raise _ConnectRejected(
                _error_shape("INVALID_REQUEST", "protocol mismatch", {"expectedProtocol": expected}),
                1002, "protocol mismatch")
        conn.protocol = protocol

        role = params.get("role") if params.get("role") is not None else "operator"
        if role != "node":
            raise _ConnectRejected(_error_shape("INVALID_REQUEST", "invalid role"), 1008, "invalid role")
        client = params.get("client") if isinstance(params.get("client"), dict) else {}
        if client.get("mode") != "node" or client.get("id") != "node-host":
            message = "invalid client: this test gateway only admits client.id node-host with client.mode node"
            raise _ConnectRejected(_error_shape("INVALID_REQUEST", message), 1008, message)
        scopes = params.get("scopes") if isinstance(params.get("scopes"), list) else []

        # 4. device checks
        device = params.get("device")
        if not isinstance(device, dict):
            raise _ConnectRejected(
                _error_shape("NOT_PAIRED", "device identity required", {"code": "DEVICE_IDENTITY_REQUIRED"}),
                1008, "device identity required")

        def device_fail(reason: str) -> _ConnectRejected:
            code, message = DEVICE_AUTH_FAILURES[reason]
            return _ConnectRejected(_error_shape("INVALID_REQUEST", message, {"code": code, "reason": reason}),
                                    1008, message)

        device_id = device.get("id")
        derived = derive_device_id(device.get("publicKey"))
        if not derived or derived != device_id:
            raise device_fail("device-id-mismatch")
        conn.device_id = device_id
        signed_at = device.get("signedAt")
        gateway_now = now_ms() + self.clock_offset_ms
        if (not isinstance(signed_at, int) or isinstance(signed_at, bool)
                or abs(gateway_now - signed_at) > DEVICE_SIGNATURE_SKEW_MS):
            raise device_fail("device-signature-stale")
        nonce = js_trim(device["nonce"]) if isinstance(device.get("nonce"), str) else ""
        if not nonce:
            raise device_fail("device-nonce-missing")
        if self._force_nonce_mismatch > 0:
            self._force_nonce_mismatch -= 1
            raise device_fail("device-nonce-mismatch")
        if nonce != conn.nonce:
            raise device_fail("device-nonce-mismatch")
        version = resolve_signature_version(
            device, params, role, scopes, signed_at, nonce,
            allow_v3=not self.reject_v3_signatures)
        if self._reject_next_signature > 0:
            self._reject_next_signature -= 1
            version = None
        if not version:
            raise device_fail("device-signature")
        public_key = normalize_public_key_base64url(device.get("publicKey"))
        if not public_key:
            raise device_fail("device-public-key")
        conn.signature_version = version

        # 5. auth
        paired = self.store.get_paired(device_id)
        paired_same_key = paired if paired and paired.get("publicKey") == public_key else None
        bootstrap = self._redeem_bootstrap(params)
        conn.auth_method = "bootstrap-token" if bootstrap else self._authorize(params, paired_same_key)

        # 6. pairing (a valid bootstrap token pairs the device: that is what a setup code is for)
        if paired_same_key is None and bootstrap:
            req, _ = self.store.request(device_id=device_id, public_key=public_key, reason="not-paired",
                                        client=client, role=role, scopes=scopes)
            self._approve_now(req["requestId"], auto=True)
        elif paired_same_key is None:
            self._require_pairing(conn, "not-paired", device_id, public_key, client, role, scopes, None)
        else:
            platform = normalize_device_metadata(client.get("platform"))
            family = normalize_device_metadata(client.get("deviceFamily"))
            if platform != paired_same_key.get("platform") or family != paired_same_key.get("deviceFamily"):
                self._require_pairing(conn, "metadata-upgrade", device_id, public_key, client, role,
                                      scopes, paired_same_key)

        # 8. hello-ok
        rec = self.store.ensure_token(device_id)
        self.store.update(device_id, displayName=client.get("displayName"), lastSeenAtMs=now_ms())
        features: dict[str, Any] = {"methods": list(GATEWAY_METHODS), "events": list(GATEWAY_EVENTS)}
        if protocol >= 4:
            features["capabilities"] = list(self.server_capabilities)
        return {
            "type": "hello-ok",
            "protocol": protocol,
            "server": {"version": self.server_version, "connId": conn.id},
            "features": features,
            "snapshot": {"presence": [], "health": {}, "stateVersion": {"presence": 0, "health": 0},
                         "uptimeMs": max(0, now_ms() - self._started_at_ms)},
            "auth": {"deviceToken": rec["token"], "role": "node", "scopes": [],
                     "issuedAtMs": rec.get("tokenIssuedAtMs") or now_ms()},
            "policy": {"maxPayload": MAX_PAYLOAD_BYTES, "maxBufferedBytes": MAX_BUFFERED_BYTES,
                       "tickIntervalMs": self.tick_interval_ms},
        }

    def _authorize(self, params: dict, paired: dict | None) -> str:
        """§10.5. Returns the auth method (``none``/``token``/``password``/``device-token``)
        or raises :class:`_ConnectRejected`."""
        auth = params.get("auth") if isinstance(params.get("auth"), dict) else {}
        tok, dtok, pw = auth.get("token"), auth.get("deviceToken"), auth.get("password")
        candidate = dtok if dtok is not None else tok
        issued = (paired or {}).get("token")
        device_token_ok = bool(candidate and issued and _consteq(candidate, issued))

        if self.token is None and self.password is None:
            if device_token_ok:
                return "device-token"
            if self.check_device_tokens and paired is not None and candidate:
                self._auth_fail("device_token_mismatch", auth)
            return "none"
        if self.token is not None and tok and _consteq(tok, self.token):
            return "token"
        if self.password is not None and pw and _consteq(pw, self.password):
            return "password"
        if device_token_ok:
            return "device-token"
        if self.token is not None:
            if dtok:
                reason = "device_token_mismatch"
            elif tok:
                reason = "token_mismatch"
            elif self.password is not None and pw:
                reason = "password_mismatch"
            else:
                reason = "token_missing"
        else:
            if pw:
                reason = "password_mismatch"
            elif dtok or (tok and paired is not None):
                reason = "device_token_mismatch"
            else:
                reason = "password_missing"
        self._auth_fail(reason, auth)
        raise AssertionError("unreachable")

    def _auth_fail(self, reason: str, auth: dict) -> None:
        code, message = AUTH_FAILURES[reason]
        if not self.upstream_auth_details:
            details = {"code": code, "authReason": reason, "canRetryWithDeviceToken": False,
                       "recommendedNextStep": "update_auth_credentials"}
        else:
            provided = ("password" if auth.get("password") else "token" if auth.get("token")
                        else "bootstrap-token" if auth.get("bootstrapToken")
                        else "device-token" if auth.get("deviceToken") else "none")
            can_retry = reason == "token_mismatch" and provided == "token" and not auth.get("deviceToken")
            if can_retry:
                step = "retry_with_device_token"
            elif reason in ("token_missing", "password_missing"):
                step = "update_auth_configuration"
            else:
                step = "update_auth_credentials"
            details = {"code": code, "authReason": reason, "authProvided": provided,
                       "canRetryWithDeviceToken": can_retry, "recommendedNextStep": step}
        raise _ConnectRejected(_error_shape("INVALID_REQUEST", message, details), 1008, message)

    def _require_pairing(self, conn: Connection, reason: str, device_id: str, public_key: str,
                         client: dict, role: str, scopes: list[str], paired: dict | None) -> None:
        """§10.6: create/reuse the pending request and fail the connect (unless auto-approve)."""
        req, created = self.store.request(device_id=device_id, public_key=public_key, reason=reason,
                                          client=client, role=role, scopes=scopes)
        if created:
            self._emit("pairing.requested", requestId=req["requestId"], deviceId=device_id, reason=reason,
                       displayName=client.get("displayName"), platform=client.get("platform"),
                       deviceFamily=client.get("deviceFamily"))
        if self.auto_approve:
            self._approve_now(req["requestId"], auto=True)
            return
        requirement, hint = PAIRING_REASONS[reason]
        message = f"pairing required: {requirement}"
        details: dict[str, Any] = {"code": "PAIRING_REQUIRED", "reason": reason,
                                   "requestId": req["requestId"]}
        if self.remediation_hint:
            details["remediationHint"] = hint
        if self.pairing_retry_hints:
            details["recommendedNextStep"] = "wait_then_retry"
            details["retryable"] = True
            details["pauseReconnect"] = False
        details["deviceId"] = device_id
        details["requestedRole"] = role
        details["requestedScopes"] = list(scopes)
        if paired is not None:
            details["approvedRoles"] = [paired.get("role") or "node"]
            if paired.get("scopes"):
                details["approvedScopes"] = list(paired["scopes"])
        raise _ConnectRejected(_error_shape("NOT_PAIRED", message, details), 1008,
                               f"{message} (requestId: {req['requestId']})")

    def _approve_now(self, request_id: str, auto: bool = False) -> dict:
        rec = self.store.approve(request_id)
        self._emit("pairing.approved", requestId=request_id, deviceId=rec["deviceId"], auto=auto)
        payload = {"requestId": request_id, "deviceId": rec["deviceId"], "decision": "approved", "ts": now_ms()}
        self._broadcast_soon("device.pair.resolved", payload)
        return rec

    def _broadcast_soon(self, event: str, payload: Any) -> None:
        loop = self._loop
        if loop is None or not self._running:
            return
        targets = [c for c in self.connections if c.open and c.hello]

        async def go():
            for c in targets:
                await self._send_event(c, event, payload, seq=True)

        loop.call_soon_threadsafe(lambda: loop.create_task(go()))

    # ------------------------------------------------------------------ post-hello requests
    async def _dispatch(self, conn: Connection, frame: dict) -> None:
        method, req_id, params = frame["method"], frame["id"], frame.get("params")
        if method == "connect":
            await self._reply_error(conn, req_id, "INVALID_REQUEST", "connect is only valid as the first request")
            return
        if method in self.method_handlers:
            self.requests.append({"connId": conn.id, "method": method, "params": params})
            ok, result = self.method_handlers[method](params, conn)
            if ok:
                await self._reply_ok(conn, req_id, result)
            else:
                await self._send(conn, {"type": "res", "id": req_id, "ok": False, "error": result})
            return
        if method == "node.invoke.result":
            await self._on_invoke_result(conn, req_id, params)
        elif method == "node.event":
            errors = self.schema.errors("NodeEventParams", params)
            if errors:
                self._violation(conn, "NodeEventParams", method, errors, frame)
                await self._reply_error(conn, req_id, "INVALID_REQUEST",
                                        "invalid node.event params: " + "; ".join(errors))
                return
            self.node_events.append(params)
            self._emit("node.event", connId=conn.id, deviceId=conn.device_id, name=params.get("event"))
            if conn.protocol and conn.protocol >= 4 and self.node_event_v4_reply:
                await self._reply_ok(conn, req_id, {"ok": True, "event": params["event"], "handled": True})
            else:
                await self._reply_ok(conn, req_id, {"ok": True})
        elif method == "skills.bins":
            self.requests.append({"connId": conn.id, "method": method, "params": params})
            await self._reply_ok(conn, req_id, {"bins": list(self.skills_bins)})
        elif method == "node.invoke.progress":
            self.invoke_progress.append(params)
            await self._reply_ok(conn, req_id, {"ok": True})
        elif method == "node.runnerInventory.update":
            await self._on_runner_inventory(conn, req_id, params)
        elif method == "node.skills.update":
            self.requests.append({"connId": conn.id, "method": method, "params": params})
            problem = node_skills_problem(params)
            if problem:
                self._violation(conn, "NodeSkillsUpdateParams", method, [problem], params)
                await self._reply_error(conn, req_id, "INVALID_REQUEST", f"invalid node.skills.update params: {problem}")
                return
            self.skills_updates.append({"connId": conn.id, "deviceId": conn.device_id, "skills": params["skills"], "atMs": now_ms()})
            await self._reply_ok(conn, req_id, {"nodeId": conn.device_id, "skills": params["skills"]})
        elif method == "node.pluginTools.update":
            self.requests.append({"connId": conn.id, "method": method, "params": params})
            if self.plugin_tools_answer == "unknown":
                await self._reply_error(conn, req_id, "INVALID_REQUEST", f"unknown method: {method}")
                return
            if self.plugin_tools_answer:
                await self._reply_error(conn, req_id, self.plugin_tools_answer, "plugin tools unavailable")
                return
            problem = node_plugin_tools_problem(params)
            if problem:
                self._violation(conn, "NodePluginToolsUpdateParams", method, [problem], params)
                await self._reply_error(conn, req_id, "INVALID_REQUEST", f"invalid node.pluginTools.update params: {problem}")
                return
            self.plugin_tools_updates.append({"connId": conn.id, "deviceId": conn.device_id, "tools": params["tools"], "atMs": now_ms()})
            await self._reply_ok(conn, req_id, {"nodeId": conn.device_id, "tools": params["tools"]})
        else:
            self.requests.append({"connId": conn.id, "method": method, "params": params})
            await self._reply_error(conn, req_id, "INVALID_REQUEST", f"unknown method: {method}")

    # ------------------------------------------------------------------ setup codes
    def _redeem_bootstrap(self, params: dict) -> bool:
        """``auth.bootstrapToken`` alone (no token, password or device token): single use,
        10 minutes. An unknown, used or expired one is upstream's AUTH_BOOTSTRAP_TOKEN_INVALID."""
        auth = params.get("auth") if isinstance(params.get("auth"), dict) else {}
        token = auth.get("bootstrapToken")
        if not token or auth.get("token") or auth.get("password") or auth.get("deviceToken"):
            return False
        self.bootstrap_attempts.append(token)
        entry = self.bootstrap_tokens.get(token)
        if entry is None or entry["used"] or entry["expiresAtMs"] <= now_ms():
            message = "unauthorized: bootstrap token invalid or expired (scan a fresh setup code)"
            raise _ConnectRejected(_error_shape("INVALID_REQUEST", message,
                                                {"code": "AUTH_BOOTSTRAP_TOKEN_INVALID", "authReason": "bootstrap_token_invalid"}),
                                   1008, message)
        entry["used"] = True
        return True

    def issue_setup_code(self, *, url: str | None = None, urls: list[str] | None = None, ttl_ms: int = 600_000,
                         tls_fingerprint: str | None = None, prefix: bool = False, token: str | None = None) -> str:
        """A setup code as upstream's gateway issues it (base64url JSON, no padding), with a fresh
        single-use bootstrap token; ``prefix`` gives the ``oc-pair://`` form."""
        token = token or base64url_encode(os.urandom(24))
        expires = now_ms() + ttl_ms
        self.bootstrap_tokens[token] = {"expiresAtMs": expires, "used": False}
        payload: dict[str, Any] = {"url": url or self.url, "bootstrapToken": token, "expiresAtMs": expires}
        if urls:
            payload["urls"] = list(urls)
        if tls_fingerprint:
            payload["tlsFingerprint"] = tls_fingerprint
        code = base64url_encode(json.dumps(payload, separators=(",", ":")).encode())
        return ("oc-pair://" if prefix else "") + code

    def issue_join_url(self, **kwargs: Any) -> str:
        """A join URL (``http(s)://host:port/j/<22 chars>``) whose single GET returns the setup
        payload (then 404, as upstream's device_pairing_join_codes)."""
        code = base64url_encode(os.urandom(16))
        payload = json.loads(base64url_decode(self.issue_setup_code(**kwargs)) or b"{}")
        self.join_codes[code] = payload
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/j/{code}"

    def _process_http(self, connection: Any, request: Any) -> Any:
        """Plain HTTP on the gateway's port: ``GET /j/<code>`` (upstream's join endpoint)."""
        path = request.path or ""
        if request.headers.get("Upgrade", "").lower() == "websocket" or not path.startswith("/j/"):
            return None
        self.join_requests.append({"path": path, "headers": dict(request.headers.raw_items())})
        code = path[len("/j/"):]
        payload = self.join_codes.pop(code, None) if "?" not in code else None
        status, body = (200, payload) if payload is not None else (404, {"error": "not_found"})
        from websockets.datastructures import Headers
        from websockets.http11 import Response
        data = json.dumps(body).encode()
        return Response(status, "OK" if status == 200 else "Not Found",
                        Headers([("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                 ("Content-Length", str(len(data)))]), data)

    # ------------------------------------------------------------------ command surface
    async def _file_surface_request(self, conn: Connection) -> None:
        """upstream's reconcileNodePairingOnConnect: one pending request per device, reused."""
        req = next((r for r in self.surface_requests.values() if r["nodeId"] == conn.device_id), None)
        if req is None:
            req = {"requestId": f"np-{uuid.uuid4().hex[:12]}", "nodeId": conn.device_id,
                   "commands": list(conn.connect_params.get("commands") or []),
                   "caps": list(conn.connect_params.get("caps") or []), "ts": now_ms()}
            self.surface_requests[req["requestId"]] = req
            self._emit("surface.requested", requestId=req["requestId"], deviceId=conn.device_id)
        if self.notify_node_pairing:
            await self._send_event(conn, "node.pair.requested", dict(req), seq=True)

    async def _on_runner_inventory(self, conn: Connection, req_id: str, params: Any) -> None:
        """upstream's nodes.read.ts handler: the declaration checked, then the surface's state."""
        call = {"connId": conn.id, "deviceId": conn.device_id, "params": params, "atMs": now_ms(), "ok": False}
        self.inventory_calls.append(call)
        if conn.protocol is not None and conn.protocol < 4:
            code, message = "INVALID_REQUEST", "unauthorized role: node"
        elif parse_runner_inventory(params) is None:
            code, message = "INVALID_REQUEST", "invalid node runner inventory"
        elif params["protocolFeatures"] and params["protocolFeatures"][0] != NODE_WORKER_SUPERVISOR_FEATURE:
            code, message = "INVALID_REQUEST", (f"device worker node {conn.device_id} requires an update before it can host "
                                                "sessions; run openclaw update, then reconnect it (for a headless node, run "
                                                "openclaw node restart)")
        elif self.surface_approval and conn.device_id not in self.approved_surfaces:
            req = next((r for r in self.surface_requests.values() if r["nodeId"] == conn.device_id), None)
            code = "UNAVAILABLE"
            if req is None or self.legacy_surface_message:
                message = "node runner inventory publication is not current; retry after pairing completes"
            else:
                message = (f"node capability surface is awaiting operator approval; run `openclaw nodes approve "
                           f"{req['requestId']}` (see `openclaw nodes pending`), then this node retries automatically")
        else:
            call["ok"] = True
            await self._reply_ok(conn, req_id, {"nodeId": conn.device_id})
            return
        call["error"] = {"code": code, "message": message}
        await self._reply_error(conn, req_id, code, message)

    def approve_surface(self, request_id: str, notify: bool | None = None) -> dict:
        """``openclaw nodes approve <requestId>``: the device's surface is approved in place (no
        reconnect). With ``notify`` (default :attr:`notify_node_pairing`), the node's connection
        gets ``node.pair.resolved {requestId, nodeId, decision:"approved", ts}``."""
        return self._resolve_surface(request_id, "approved", notify)

    def reject_surface(self, request_id: str, notify: bool | None = None) -> dict:
        """``openclaw nodes reject <requestId>``: the request is dropped (a reconnect files a new one)."""
        return self._resolve_surface(request_id, "rejected", notify)

    def _resolve_surface(self, request_id: str, decision: str, notify: bool | None) -> dict:
        async def go():
            req = self.surface_requests.pop(request_id)
            if decision == "approved":
                self.approved_surfaces.add(req["nodeId"])
            self._emit(f"surface.{decision}", requestId=request_id, deviceId=req["nodeId"])
            conn = self._nodes.get(req["nodeId"])
            if (self.notify_node_pairing if notify is None else notify) and conn is not None and conn.open:
                await self._send_event(conn, "node.pair.resolved", {"requestId": request_id, "nodeId": req["nodeId"],
                                                                    "decision": decision, "ts": now_ms()}, seq=True)
            return req
        return self._call(go)

    def wait_for_surface_request(self, timeout: float = 10.0, device_id: str | None = None) -> str:
        """The id of a pending command-surface request (of ``device_id``, if given)."""
        def pred():
            return next((rid for rid, r in self.surface_requests.items() if device_id in (None, r["nodeId"])), None)
        return self.wait_for(pred, timeout=timeout, message="no command-surface request")

    async def _on_invoke_result(self, conn: Connection, req_id: str, params: Any) -> None:
        errors = self.schema.errors("NodeInvokeResultParams", params)
        if errors:
            self._violation(conn, "NodeInvokeResultParams", "node.invoke.result", errors, params)
            if isinstance(params, dict):
                self.invoke_results.append({**params, "_rejected": "schema"})
            await self._reply_error(conn, req_id, "INVALID_REQUEST",
                                    "invalid node.invoke.result params: " + "; ".join(errors))
            return
        if params["nodeId"] != conn.device_id:
            self.invoke_results.append({**params, "_rejected": "nodeId mismatch"})
            await self._reply_error(conn, req_id, "INVALID_REQUEST", "nodeId mismatch")
            return
        pending = self._pending_invokes.get(params["id"])
        if pending is None or pending.node_id != conn.device_id:
            self.invoke_results.append({**params, "_ignored": True})
            self._emit("invoke.result", id=params["id"], nodeId=params["nodeId"], ok=params["ok"],
                       ignored=True)
            await self._reply_ok(conn, req_id, {"ok": True, "ignored": True})
            return
        del self._pending_invokes[params["id"]]
        if pending.sent_at:
            self.invoke_round_trips_ms.append((time.perf_counter() - pending.sent_at) * 1000)
            if conn._rx_at > pending.sent_at:
                self.invoke_arrivals_ms.append((conn._rx_at - pending.sent_at) * 1000)
        result = dict(params)
        self.invoke_results.append(dict(result))
        if not pending.future.done():
            pending.future.set_result(result)
        self._emit("invoke.result", id=params["id"], nodeId=params["nodeId"], command=pending.command,
                   ok=params["ok"], error=params.get("error"),
                   durationMs=now_ms() - pending.sent_at_ms)
        await self._reply_ok(conn, req_id, {"ok": True})

    def _resolve_invoke_locally(self, pending: _PendingInvoke, code: str, message: str) -> None:
        self._pending_invokes.pop(pending.id, None)
        if not pending.future.done():
            pending.future.set_result({"id": pending.id, "nodeId": pending.node_id, "ok": False,
                                       "error": {"code": code, "message": message}})
        self._emit("invoke.result", id=pending.id, nodeId=pending.node_id, command=pending.command,
                   ok=False, error={"code": code, "message": message}, local=True)

    # ================================================================== public API
    # ---------------------------------------------------------------- invoke
    def invoke(self, command: str, params: Any = None, timeout_ms: int | None = DEFAULT_INVOKE_TIMEOUT_MS,
               params_json: str | None = None, *, node_id: str | None = None,
               idempotency_key: str | None = None, invoke_id: str | None = None,
               payload_overrides: dict | None = None) -> dict:
        """Send ``node.invoke.request`` to a connected node and block until its result.

        ``paramsJSON`` is ``params_json`` verbatim if given, else ``json.dumps(params)``,
        else ``null``. ``timeout_ms=None`` omits ``timeoutMs`` (the gateway still waits
        30 000 ms). Returns the ``node.invoke.result`` params (``id, nodeId, ok,
        payload/payloadJSON, error``); on the gateway timer it returns
        ``ok:false, error {code:"TIMEOUT"}``; without a node ``NOT_CONNECTED``.
        ``payload_overrides`` is merged into the request payload (``OMIT`` drops a key).
        """
        fut = self.invoke_async(command, params, timeout_ms, params_json, node_id=node_id,
                                idempotency_key=idempotency_key, invoke_id=invoke_id,
                                payload_overrides=payload_overrides)
        wait = (timeout_ms if timeout_ms is not None else DEFAULT_INVOKE_TIMEOUT_MS) / 1000 + 10
        return fut.result(timeout=wait)

    def invoke_async(self, command: str, params: Any = None,
                     timeout_ms: int | None = DEFAULT_INVOKE_TIMEOUT_MS, params_json: str | None = None,
                     *, node_id: str | None = None, idempotency_key: str | None = None,
                     invoke_id: str | None = None,
                     payload_overrides: dict | None = None) -> concurrent.futures.Future:
        """Like :meth:`invoke` but returns a ``concurrent.futures.Future`` of the result."""
        if not self._running:
            raise RuntimeError("gateway is not running")
        if params_json is None and params is not None:
            params_json = json.dumps(params)
        return asyncio.run_coroutine_threadsafe(
            self._async_invoke(command, params_json, timeout_ms, node_id, idempotency_key, invoke_id,
                               payload_overrides), self._loop)

    def invoke_many(self, command: str, params: Any, total: int, concurrency: int,
                    timeout_ms: int = DEFAULT_INVOKE_TIMEOUT_MS) -> dict:
        """Load generation: ``total`` invokes with at most ``concurrency`` in flight, issued from
        the gateway's own loop (no thread hop per invoke, unlike :meth:`invoke_async`).
        Returns ``{"elapsed_s", "ok", "failures": [first few failed results]}``."""
        params_json = json.dumps(params)

        async def run() -> dict:
            semaphore = asyncio.Semaphore(concurrency)
            failures: list[dict] = []
            ok = 0

            async def one() -> None:
                nonlocal ok
                async with semaphore:
                    result = await self._async_invoke(command, params_json, timeout_ms, None, None, None, None)
                if result.get("ok"):
                    ok += 1
                elif len(failures) < 5:
                    failures.append(result)

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(total)))
            return {"elapsed_s": time.perf_counter() - start, "ok": ok, "failures": failures}

        wait = total * (timeout_ms / 1000) + 30
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=wait)

    async def _async_invoke(self, command, params_json, timeout_ms, node_id, idempotency_key,
                            invoke_id, overrides) -> dict:
        if node_id is None:
            hello_nodes = sorted(self._nodes.values(), key=lambda c: c.index)
            conn = hello_nodes[-1] if hello_nodes else None
        else:
            conn = self._nodes.get(node_id)
        inv_id = invoke_id or str(uuid.uuid4())
        if conn is None or not conn.open:
            return {"id": inv_id, "nodeId": node_id or "", "ok": False,
                    "error": {"code": "NOT_CONNECTED", "message": "node not connected"}}
        if self.surface_approval and conn.device_id not in self.approved_surfaces:
            return {"id": inv_id, "nodeId": conn.device_id, "ok": False,
                    "error": {"code": "INVALID_REQUEST", "message": f"node command not allowed: {command}"}}
        payload: dict[str, Any] = {"id": inv_id, "nodeId": conn.device_id, "command": command,
                                   "paramsJSON": params_json}
        if timeout_ms is not None:
            payload["timeoutMs"] = timeout_ms
        payload["idempotencyKey"] = idempotency_key or str(uuid.uuid4())
        for k, v in (overrides or {}).items():
            if v is OMIT:
                payload.pop(k, None)
            else:
                payload[k] = v
        fut = asyncio.get_running_loop().create_future()
        pending = _PendingInvoke(inv_id, conn.device_id, command, conn, fut, now_ms())
        self._pending_invokes[inv_id] = pending
        self._emit("invoke.request", id=inv_id, nodeId=conn.device_id, command=command)
        await self._send_event(conn, "node.invoke.request", payload, seq=False)
        pending.sent_at = time.perf_counter()
        wait_s = (timeout_ms if timeout_ms is not None else DEFAULT_INVOKE_TIMEOUT_MS) / 1000
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout=wait_s)
        except asyncio.TimeoutError:
            if self._pending_invokes.get(inv_id) is not pending:
                return fut.result() if fut.done() else {"id": inv_id, "nodeId": conn.device_id, "ok": False,
                                                        "error": {"code": "TIMEOUT", "message": "node invoke timed out"}}
            self._resolve_invoke_locally(pending, "TIMEOUT", "node invoke timed out")
            if self.cancel_on_timeout and conn.open:
                await self._send_event(conn, "node.invoke.cancel", {"invokeId": inv_id, "nodeId": conn.device_id}, seq=False)
            return fut.result()

    def cancel_invoke(self, invoke_id: str) -> bool:
        """Cancel a pending invoke as upstream's gateway does when its caller aborts: answer the
        caller ``ABORTED "node invoke cancelled"`` and send the node
        ``node.invoke.cancel {invokeId, nodeId}`` (sent for an unknown id too, to the newest node)."""
        async def go():
            pending = self._pending_invokes.get(invoke_id)
            if pending is not None:
                self._resolve_invoke_locally(pending, "ABORTED", "node invoke cancelled")
                conn = pending.conn
            else:
                targets = self._targets(None, False)
                conn = targets[0] if targets else None
            if conn is None or not conn.open:
                return False
            self._emit("invoke.cancel", id=invoke_id, nodeId=conn.device_id)
            return await self._send_event(conn, "node.invoke.cancel", {"invokeId": invoke_id, "nodeId": conn.device_id},
                                          seq=False)
        return self._call(go)

    def results_for(self, invoke_id: str) -> list[dict]:
        """Every ``node.invoke.result`` the node sent for ``invoke_id`` (answered, ignored or rejected)."""
        return [r for r in self.invoke_results if r.get("id") == invoke_id]

    def pending_invokes(self) -> list[str]:
        """Ids of invokes still waiting for a result."""
        return list(self._pending_invokes)

    # ---------------------------------------------------------------- pairing
    def approve(self, request_id: str) -> dict:
        """Approve a pending pairing request: mark the device paired, pin its normalized
        platform/deviceFamily, mint a device token (kept on re-approval) and broadcast
        ``device.pair.resolved`` to connected sockets. Returns the paired record.
        Raises ``KeyError`` for an unknown request id."""
        return self._call(lambda: self._approve_now(request_id))

    def approve_all(self) -> list[dict]:
        """Approve every pending request; returns the paired records."""
        return [self.approve(rid) for rid in list(self.store.pending_requests())]

    def reject(self, request_id: str) -> dict:
        """Drop a pending request and broadcast ``device.pair.resolved`` with ``decision:"rejected"``."""
        def go():
            req = self.store.reject(request_id)
            self._emit("pairing.rejected", requestId=request_id, deviceId=req["deviceId"])
            self._broadcast_soon("device.pair.resolved", {"requestId": request_id, "deviceId": req["deviceId"],
                                                          "decision": "rejected", "ts": now_ms()})
            return req
        return self._call(go)

    def pending_requests(self) -> dict[str, str]:
        """Pending pairing requests: ``requestId -> deviceId``."""
        return self.store.pending_requests()

    def paired_devices(self) -> dict[str, dict]:
        """Paired devices: ``deviceId -> record`` (includes the issued ``token``)."""
        return self.store.paired_devices()

    def unpair(self, device_id: str) -> bool:
        """Forget a device; its next connect needs pairing again."""
        return self.store.unpair(device_id)

    def rotate_device_token(self, device_id: str) -> str:
        """Issue a new device token; the old one then fails device-token auth."""
        return self.store.rotate_token(device_id)

    def pair_device(self, device_id: str, public_key: str, platform: str | None = None,
                    device_family: str | None = None, token: str | None = None) -> dict:
        """Pre-pair a device without a connect attempt (test setup helper)."""
        req, _ = self.store.request(device_id=device_id, public_key=normalize_public_key_base64url(public_key),
                                    reason="not-paired",
                                    client={"platform": platform, "deviceFamily": device_family},
                                    role="node", scopes=[])
        rec = self.store.approve(req["requestId"])
        if token:
            self.store.update(device_id, token=token)
            rec["token"] = token
        return rec

    # ---------------------------------------------------------------- fault knobs
    def stop_ticks(self) -> None:
        """Stop sending ticks on every connection (the node's watchdog should fire after 2 × interval)."""
        self._ticks_enabled = False

    def resume_ticks(self) -> None:
        """Resume ticks."""
        self._ticks_enabled = True

    @property
    def ticks_enabled(self) -> bool:
        return self._ticks_enabled

    def close_all(self, code: int = 1000, reason: str = "") -> int:
        """Close every open connection with ``code``/``reason``; returns how many."""
        async def go():
            targets = [c for c in self.connections if c.open]
            await asyncio.gather(*(self._close(c, code, reason) for c in targets))
            return len(targets)
        return self._call(go)

    def send_shutdown_event_and_close(self, code: int = 1012, reason: str = "service restart",
                                      restart_expected_ms: int | None = None,
                                      shutdown_reason: str = "gateway restarting") -> int:
        """Broadcast ``shutdown {reason, restartExpectedMs?}`` then close every connection."""
        payload: dict[str, Any] = {"reason": shutdown_reason}
        if restart_expected_ms is not None:
            payload["restartExpectedMs"] = restart_expected_ms

        async def go():
            targets = [c for c in self.connections if c.open]
            for c in targets:
                if c.hello:
                    await self._send_event(c, "shutdown", payload, seq=True)
            await asyncio.gather(*(self._close(c, code, reason) for c in targets))
            return len(targets)
        return self._call(go)

    def startup_unavailable(self, retry_after_ms: int = 1000, count: int = 1) -> None:
        """Answer the next ``count`` connects with retryable ``UNAVAILABLE``
        (``details.reason:"startup-sidecars"``, ``retryAfterMs``). The gateway then waits
        2 s for the client to close (it should use 1013 ``gateway starting``) before
        closing with 1013 itself."""
        self._startup_unavailable.extend([int(retry_after_ms)] * count)

    def fail_next_connect(self, code: str = "INVALID_REQUEST", message: str = "injected failure",
                          details: Any = None, *, details_code: str | None = None,
                          close_code: int = 1008, close_reason: str | None = None,
                          retryable: bool | None = None, retry_after_ms: int | None = None,
                          count: int = 1) -> None:
        """Make the next ``count`` connects (after schema validation) fail with an arbitrary
        error. ``details_code`` is a shortcut for ``details={"code": details_code}``. The
        close reason defaults to ``message``."""
        if details is None and details_code is not None:
            details = {"code": details_code}
        for _ in range(count):
            self._injected_failures.append(dict(code=code, message=message, details=details,
                                                close_code=close_code, close_reason=close_reason,
                                                retryable=retryable, retry_after_ms=retry_after_ms))

    def reject_next_signature(self, count: int = 1) -> None:
        """Fail the next ``count`` signature checks with ``DEVICE_AUTH_SIGNATURE_INVALID``."""
        self._reject_next_signature += count

    def force_nonce_mismatch(self, count: int = 1) -> None:
        """Fail the next ``count`` nonce checks with ``DEVICE_AUTH_NONCE_MISMATCH``."""
        self._force_nonce_mismatch += count

    def send_event(self, event: str, payload: Any = None, *, node_id: str | None = None,
                   seq: bool = False, all_connections: bool = False) -> int:
        """Send an arbitrary event to the (latest / given) node, or to every hello'd socket."""
        async def go():
            targets = self._targets(node_id, all_connections)
            for c in targets:
                await self._send_event(c, event, payload, seq=seq)
            return len(targets)
        return self._call(go)

    def send_raw(self, text: str | bytes, *, node_id: str | None = None, all_connections: bool = False) -> int:
        """Send a raw text/binary frame (malformed-input tests)."""
        async def go():
            targets = self._targets(node_id, all_connections)
            for c in targets:
                await self._send_raw(c, text)
            return len(targets)
        return self._call(go)

    def _targets(self, node_id: str | None, all_connections: bool) -> list[Connection]:
        if all_connections:
            return [c for c in self.connections if c.open]
        if node_id is not None:
            c = self._nodes.get(node_id)
            return [c] if c and c.open else []
        nodes = sorted(self._nodes.values(), key=lambda c: c.index)
        return [nodes[-1]] if nodes else []

    # ---------------------------------------------------------------- observability
    @property
    def connection_count(self) -> int:
        """Number of currently open WebSocket connections."""
        return sum(1 for c in self.connections if c.open)

    @property
    def last_connection(self) -> Connection | None:
        return self.connections[-1] if self.connections else None

    def mark(self) -> int:
        """Current length of :attr:`connections` (pass as ``since=`` to the waiters)."""
        return len(self.connections)

    def connected_nodes(self) -> dict[str, Connection]:
        """``deviceId -> Connection`` of nodes that completed hello and are still open."""
        return {k: v for k, v in self._nodes.items() if v.open}

    def state(self) -> dict:
        """JSON-friendly snapshot: pending requests, paired devices, connected nodes."""
        return {
            "url": self.url, "port": self.port, "running": self._running, "tls": self.tls,
            "fingerprint": self.cert_fingerprint_sha256,
            "pending": self.pending_requests(),
            "pendingDetails": self.store.pending_details(),
            "paired": self.paired_devices(),
            "nodes": {k: v.summary() for k, v in self.connected_nodes().items()},
            "connectionCount": self.connection_count,
            "connections": [c.summary() for c in self.connections[-20:]],
            "ticksEnabled": self._ticks_enabled,
            "schemaViolations": len(self.schema_violations),
            "pendingInvokes": self.pending_invokes(),
        }

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02,
                 message: str | None = None) -> Any:
        """Poll ``predicate`` until it returns a truthy value (returned) or raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(message or f"condition not met within {timeout} s")
            time.sleep(interval)

    def wait_for_hello(self, timeout: float = 10.0, since: int | None = None,
                       device_id: str | None = None) -> Connection:
        """Wait for a connection that completed hello.

        Without ``since``: the most recent *open* hello'd connection. With ``since`` (see
        :meth:`mark`): the first hello'd connection at index ``>= since``, open or not.
        """
        def pred():
            if since is None:
                for c in reversed(self.connections):
                    if c.hello and c.open and (device_id is None or c.device_id == device_id):
                        return c
                return None
            for c in self.connections[since:]:
                if c.hello and (device_id is None or c.device_id == device_id):
                    return c
            return None
        return self.wait_for(pred, timeout, message=f"no hello within {timeout} s")

    def wait_for_pending_request(self, timeout: float = 10.0, device_id: str | None = None) -> str:
        """Wait until a pairing request is pending (for ``device_id`` if given); return its requestId."""
        def pred():
            for rid, did in self.pending_requests().items():
                if device_id is None or did == device_id:
                    return rid
            return None
        return self.wait_for(pred, timeout, message=f"no pending pairing request within {timeout} s")

    def wait_for_connection(self, since: int = 0, timeout: float = 10.0,
                            predicate: Callable[[Connection], bool] | None = None) -> Connection:
        """Wait for a connection at index ``>= since`` matching ``predicate``."""
        def pred():
            for c in self.connections[since:]:
                if predicate is None or predicate(c):
                    return c
            return None
        return self.wait_for(pred, timeout, message=f"no matching connection within {timeout} s")

    def wait_for_close(self, conn: Connection, timeout: float = 10.0) -> Connection:
        """Wait until ``conn`` is closed; returns it (close fields filled)."""
        self.wait_for(lambda: not conn.open, timeout, message=f"connection {conn.id} still open")
        return conn

    def wait_for_node_event(self, name: str, timeout: float = 10.0, since: int = 0) -> dict:
        """Wait for a ``node.event`` with ``event == name`` (index ``>= since`` in :attr:`node_events`)."""
        def pred():
            for ev in self.node_events[since:]:
                if ev.get("event") == name:
                    return ev
            return None
        return self.wait_for(pred, timeout, message=f"no node.event {name!r} within {timeout} s")


def _consteq(a: Any, b: Any) -> bool:
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# --------------------------------------------------------------------------------------
# HTTP control API (loopback only)
# --------------------------------------------------------------------------------------


class GatewayControlServer:
    """A tiny loopback HTTP API to drive a :class:`TestGateway` from scripts.

    - ``GET  /state``                          -> :meth:`TestGateway.state`
    - ``GET  /events?since=N``                 -> ``{"events": [...], "next": M}``
    - ``POST /approve?requestId=ID``           -> paired record (404 if unknown)
    - ``POST /approve-all``                    -> ``{"approved": [records]}``
    - ``POST /reject?requestId=ID``
    - ``POST /invoke``  body ``{command, params?, paramsJSON?, timeoutMs?, nodeId?}`` -> result
    - ``POST /ticks/stop``, ``POST /ticks/resume``
    - ``POST /close-all?code=N&reason=R``
    - ``POST /shutdown?code=1012&restartExpectedMs=N``  (shutdown event, then close)
    - ``POST /restart?downMs=N``
    - ``POST /startup-unavailable?retryAfterMs=N``
    - ``POST /rotate-device-token?deviceId=ID``, ``POST /unpair?deviceId=ID``
    """

    def __init__(self, gateway: TestGateway, port: int = 0):
        self.gateway = gateway
        gw = gateway

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "openclaw-test-gateway-control"

            def log_message(self, fmt, *args):  # route to logging, keep stdout clean
                log.debug("control: " + fmt, *args)

            def _reply(self, status: int, obj: Any) -> None:
                body = (_json_dumps(obj) + "\n").encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _parse(self) -> tuple[str, dict[str, str]]:
                parsed = urllib.parse.urlsplit(self.path)
                query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                return parsed.path.rstrip("/") or "/", query

            def do_GET(self):  # noqa: N802
                path, q = self._parse()
                try:
                    if path == "/state":
                        return self._reply(200, gw.state())
                    if path == "/events":
                        since = int(q.get("since", "0"))
                        evs = gw.events[since:]
                        return self._reply(200, {"events": evs, "next": since + len(evs)})
                    return self._reply(404, {"error": f"unknown path {path}"})
                except Exception as exc:  # pragma: no cover
                    return self._reply(500, {"error": str(exc)})

            def do_POST(self):  # noqa: N802
                path, q = self._parse()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw.strip() else {}
                except ValueError:
                    return self._reply(400, {"error": "body is not JSON"})
                try:
                    if path == "/approve":
                        rid = q.get("requestId") or body.get("requestId")
                        if not rid:
                            return self._reply(400, {"error": "requestId required"})
                        try:
                            return self._reply(200, gw.approve(rid))
                        except KeyError:
                            return self._reply(404, {"error": f"unknown requestId {rid}"})
                    if path == "/approve-all":
                        return self._reply(200, {"approved": gw.approve_all()})
                    if path == "/reject":
                        rid = q.get("requestId") or body.get("requestId")
                        try:
                            return self._reply(200, gw.reject(rid))
                        except KeyError:
                            return self._reply(404, {"error": f"unknown requestId {rid}"})
                    if path == "/invoke":
                        command = body.get("command")
                        if not isinstance(command, str) or not command:
                            return self._reply(400, {"error": "command required"})
                        timeout_ms = body.get("timeoutMs", DEFAULT_INVOKE_TIMEOUT_MS)
                        result = gw.invoke(command, body.get("params"), timeout_ms,
                                           body.get("paramsJSON"), node_id=body.get("nodeId"))
                        return self._reply(200, result)
                    if path == "/ticks/stop":
                        gw.stop_ticks()
                        return self._reply(200, {"ok": True})
                    if path == "/ticks/resume":
                        gw.resume_ticks()
                        return self._reply(200, {"ok": True})
                    if path == "/close-all":
                        n = gw.close_all(int(q.get("code", "1000")), q.get("reason", ""))
                        return self._reply(200, {"closed": n})
                    if path == "/shutdown":
                        rem = q.get("restartExpectedMs")
                        n = gw.send_shutdown_event_and_close(int(q.get("code", "1012")),
                                                             restart_expected_ms=int(rem) if rem else None)
                        return self._reply(200, {"closed": n})
                    if path == "/restart":
                        gw.restart(down_s=int(q.get("downMs", "0")) / 1000)
                        return self._reply(200, {"ok": True, "url": gw.url})
                    if path == "/startup-unavailable":
                        gw.startup_unavailable(int(q.get("retryAfterMs", "1000")))
                        return self._reply(200, {"ok": True})
                    if path == "/rotate-device-token":
                        return self._reply(200, {"token": gw.rotate_device_token(q["deviceId"])})
                    if path == "/unpair":
                        return self._reply(200, {"unpaired": gw.unpair(q["deviceId"])})
                    return self._reply(404, {"error": f"unknown path {path}"})
                except Exception as exc:
                    log.exception("control request failed")
                    return self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "GatewayControlServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="gateway-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run a standalone test gateway; print one JSON line per notable event on stdout."""
    ap = argparse.ArgumentParser(description="OpenClaw test gateway (loopback only)")
    ap.add_argument("--port", type=int, default=18789, help="WebSocket port (0 = any free port)")
    ap.add_argument("--token", help="shared gateway token")
    ap.add_argument("--password", help="shared gateway password")
    ap.add_argument("--tls", action="store_true", help="serve wss:// with a self-signed certificate")
    ap.add_argument("--tick-ms", type=int, default=DEFAULT_TICK_INTERVAL_MS, help="tick interval (ms)")
    ap.add_argument("--auto-approve", action="store_true", help="approve pairing requests silently")
    ap.add_argument("--state", help="JSON file keeping the pairing store across restarts")
    ap.add_argument("--control-port", type=int, help="serve the HTTP control API on this loopback port")
    ap.add_argument("--no-pairing-retry-hints", action="store_true",
                    help="omit wait_then_retry/pauseReconnect:false from PAIRING_REQUIRED")
    ap.add_argument("--handshake-timeout-ms", type=int, default=int(DEFAULT_HANDSHAKE_TIMEOUT_S * 1000))
    ap.add_argument("--check-device-tokens", action="store_true",
                    help="without shared secrets, still verify presented device tokens")
    ap.add_argument("--protocols", default="3,4", help="comma-separated protocol versions served")
    ap.add_argument("--verbose", "-v", action="store_true", help="debug logging on stderr")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out_lock = threading.Lock()

    def print_event(ev: dict) -> None:
        if ev["event"] in ("connection.open",) and not args.verbose:
            return
        with out_lock:
            sys.stdout.write(_json_dumps(ev) + "\n")
            sys.stdout.flush()

    gw = TestGateway(
        token=args.token, password=args.password, tls=args.tls, tick_interval_ms=args.tick_ms,
        port=args.port, state_path=args.state, auto_approve=args.auto_approve,
        pairing_retry_hints=not args.no_pairing_retry_hints,
        handshake_timeout_s=args.handshake_timeout_ms / 1000,
        check_device_tokens=args.check_device_tokens,
        server_protocols=[int(p) for p in args.protocols.split(",") if p.strip()],
        on_event=print_event,
    )
    control = None
    stop_event = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop_event.set())
    try:
        if args.control_port is not None:
            control = GatewayControlServer(gw, args.control_port).start()
            log.info("control API on %s", control.url)
        gw.start()
        if control is not None:
            print_event({"event": "control", "url": control.url, "port": control.port, "ts": now_ms()})
        stop_event.wait()
    finally:
        if control is not None:
            control.stop()
        gw.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
