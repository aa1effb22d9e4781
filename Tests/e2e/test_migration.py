"""Issue 18: a paired official node is replaced without re-pairing. Its state database
(`<state>/state/openclaw.sqlite`: device_identities, device_auth_tokens, config_machine_state
`nodeHost.config`, exec_approvals_config) is imported read-only on the first run; the node
connects as the same device with the same token, and `doctor` shows what was imported."""
import base64
import hashlib
import json
import os
import sqlite3
import subprocess

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import binary

SCHEMA = """
CREATE TABLE device_identities (identity_key TEXT NOT NULL PRIMARY KEY, device_id TEXT NOT NULL, public_key_pem TEXT NOT NULL,
  private_key_pem TEXT NOT NULL, created_at_ms INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL) STRICT;
CREATE TABLE device_auth_tokens (device_id TEXT NOT NULL, role TEXT NOT NULL, token TEXT NOT NULL, scopes_json TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL, PRIMARY KEY (device_id, role)) STRICT;
CREATE TABLE config_machine_state (state_key TEXT NOT NULL PRIMARY KEY, value_json TEXT NOT NULL, updated_at_ms INTEGER NOT NULL) STRICT;
CREATE TABLE exec_approvals_config (config_key TEXT NOT NULL PRIMARY KEY, raw_json TEXT NOT NULL, socket_path TEXT,
  has_socket_token INTEGER NOT NULL, default_security TEXT, default_ask TEXT, default_ask_fallback TEXT, auto_allow_skills INTEGER,
  agent_count INTEGER NOT NULL, allowlist_count INTEGER NOT NULL, updated_at_ms INTEGER NOT NULL) STRICT;
"""


def official_node(state_dir, gw):
    """The database a paired official node host leaves behind, and its device id and key."""
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    device_id = hashlib.sha256(raw).hexdigest()
    public_b64 = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    gw.pair_device(device_id, public_b64, platform="linux", device_family="Linux", token="official-device-token")
    (state_dir / "state").mkdir(mode=0o700)
    db = sqlite3.connect(state_dir / "state" / "openclaw.sqlite")
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    pem = lambda k, enc, fmt: k.private_bytes(enc, fmt, serialization.NoEncryption()).decode()
    db.execute("INSERT INTO device_identities VALUES ('primary', ?, ?, ?, 1700000000000, 1700000000000)",
               (device_id, key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
                pem(key, serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8)))
    db.execute("INSERT INTO device_auth_tokens VALUES (?, 'node', 'official-device-token', '[]', 1700000000000)", (device_id,))
    config = {"version": 1, "nodeId": "official-node-id", "displayName": "nas",
              "gateway": {"host": "127.0.0.1", "port": gw.port, "tls": False}, "commands": ["system.run", "system.which"]}
    db.execute("INSERT INTO config_machine_state VALUES ('nodeHost.config', ?, 1700000000000)", (json.dumps(config),))
    approvals = {"version": 1, "defaults": {"security": "full", "ask": "off"}, "agents": {}}
    db.execute("INSERT INTO exec_approvals_config VALUES ('current', ?, NULL, 0, 'full', 'off', NULL, NULL, 0, 0, 1700000000000)",
               (json.dumps(approvals, indent=2) + "\n",))
    db.commit()
    db.close()
    return device_id, public_b64


def snapshot(state_dir):
    return {p.name: p.read_bytes() for p in (state_dir / "state").iterdir()}


def test_a_paired_official_node_is_taken_over_without_pairing_again(make_gateway, nodes, state_dir):
    gw = make_gateway(check_device_tokens=True)
    device_id, public_b64 = official_node(state_dir, gw)
    before = snapshot(state_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["OPENCLAW_STATE_DIR"] = str(state_dir)
    # `identity` answers for the device the node will take over, before anything is imported.
    out = subprocess.run([binary("openclaw-node"), "identity", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout) == {"deviceId": device_id, "publicKey": public_b64}
    assert not (state_dir / "identity" / "device.json").exists()

    node = nodes(state_dir, [])
    conn = gw.wait_for_hello(timeout=30)
    assert conn.device_id == device_id
    assert conn.connect_params["auth"].get("token") == "official-device-token"
    assert conn.connect_params["commands"] == ["system.run", "system.which"]
    assert conn.connect_params["client"]["instanceId"] == "official-node-id"
    assert gw.pending_requests() == {}
    node.wait_log("imported the official node")
    assert gw.invoke("system.run", {"command": ["/bin/echo", "same node"]})["ok"] is True
    node.stop()
    # Read-only: the official database is byte for byte what it was, with no sidecar left.
    assert snapshot(state_dir) == before
    report = json.loads((state_dir / "imported-from-openclaw.json").read_text())
    assert report["deviceId"] == device_id
    assert report["imported"] == ["identity", "deviceToken", "nodeConfig", "execApprovals"]
    doctor = json.loads(subprocess.run([binary("openclaw-node"), "doctor", "--json", "--skip-self-test"], env=env,
                                       capture_output=True, text=True, timeout=60).stdout)
    check = next(c for c in doctor["checks"] if c["name"] == "import")
    assert check["status"] == "ok"
    assert check["detail"].startswith(f"imported from {state_dir}/state/openclaw.sqlite: identity, deviceToken, nodeConfig, execApprovals; "
                                      f"device {device_id}")
    # Once ours exists, the database is not read again.
    mark = gw.mark()
    nodes(state_dir, [])
    assert gw.wait_for_hello(timeout=30, since=mark).device_id == device_id
