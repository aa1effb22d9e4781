"""Issue 18: one paste to join. A gateway's setup code (bare or `oc-pair://`), `run --pair` /
`--pair-if-needed`, and `connect <code | oc-pair:// | join URL>` with `--target-file`: the
bootstrap token goes in `auth.bootstrapToken` on the first connect only, the endpoint is saved,
and the token never reaches a file or a log."""
import base64
import json
import os
import re
import subprocess
import time

from conftest import binary, free_port, gateway_args


def cli(state_dir, *args, timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["OPENCLAW_STATE_DIR"] = str(state_dir)
    return subprocess.run([binary("openclaw-node"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def code_token(code: str) -> str:
    raw = code.removeprefix("oc-pair://")
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["bootstrapToken"]


def files_text(state_dir) -> str:
    return "".join(p.read_text(errors="replace") for p in state_dir.rglob("*") if p.is_file() and p.suffix in (".json", ".env", ""))


def test_run_pair_presents_the_bootstrap_token_once_and_keeps_none_of_it(make_gateway, nodes, state_dir):
    gw = make_gateway()
    code = gw.issue_setup_code(prefix=True)
    token = code_token(code)
    node = nodes(state_dir, ["--pair", code])
    conn = gw.wait_for_hello(timeout=30)
    assert conn.connect_params["auth"] == {"bootstrapToken": token}
    assert conn.auth_method == "bootstrap-token"
    saved = json.loads((state_dir / "node.json").read_text())
    assert saved["gateway"] == {"host": "127.0.0.1", "port": gw.port, "tls": False}
    device_token = gw.paired_devices()[conn.device_id]["token"]
    auth_file = state_dir / "identity" / "device-auth.json"
    gw.wait_for(lambda: auth_file.exists() and device_token in auth_file.read_text(), timeout=10, message="device token stored")
    # Spent: a reconnect of the same process presents the device token instead.
    mark = gw.mark()
    gw.close_all(1012, "service restart")
    again = gw.wait_for_hello(timeout=30, since=mark)
    assert "bootstrapToken" not in again.connect_params["auth"]
    node.stop()
    assert token not in files_text(state_dir) and token not in "".join(node.lines)
    # A later plain run uses the saved endpoint and the device token.
    mark = gw.mark()
    nodes(state_dir, [])
    later = gw.wait_for_hello(timeout=30, since=mark)
    assert later.connect_params["auth"].get("token") == device_token


def test_a_bad_expired_or_spent_code_is_refused_with_upstreams_words(make_gateway, nodes, state_dir, tmp_path):
    out = cli(state_dir, "run", "--pair", "not a code!")
    assert out.returncode == 1 and out.stderr == "Invalid pairing setup code or URL.\n"
    gw = make_gateway()
    expired = gw.issue_setup_code(ttl_ms=-1000)
    out = cli(state_dir, "run", "--pair", expired)
    assert out.returncode == 1 and out.stderr == "Pairing setup code has expired.\n"
    bad_payload = base64.urlsafe_b64encode(json.dumps({"url": "wss://GW.example:443/", "bootstrapToken": "t"}).encode()).decode().rstrip("=")
    out = cli(state_dir, "run", "--pair", bad_payload)
    assert out.returncode == 1 and out.stderr == "Invalid pairing setup payload.\n"
    # Spent on another device first: the gateway refuses it, and the node exits 1 for its supervisor.
    code = gw.issue_setup_code()
    (tmp_path / "first").mkdir(mode=0o700)
    first = nodes(tmp_path / "first", ["--pair", code])
    gw.wait_for_hello(timeout=30)
    first.stop()
    second = nodes(state_dir, ["--pair", code])
    assert second.wait_exit(timeout=30) == 1
    second.wait_log(re.escape("unauthorized: bootstrap token invalid or expired (scan a fresh setup code)"))
    second.wait_log("AUTH_BOOTSTRAP_TOKEN_INVALID")


def test_explicit_flags_override_the_codes_endpoint(make_gateway, nodes, state_dir):
    gw = make_gateway()
    dead = free_port()
    code = gw.issue_setup_code(url=f"ws://127.0.0.1:{dead}")
    nodes(state_dir, ["--pair", code, "--port", str(gw.port)])
    conn = gw.wait_for_hello(timeout=30)
    assert conn.connect_params["auth"] == {"bootstrapToken": code_token(code)}
    assert json.loads((state_dir / "node.json").read_text())["gateway"]["port"] == gw.port


def test_pair_if_needed_uses_a_stored_device_token_first(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw))
    gw.wait_for_hello(timeout=30)
    node.stop()
    code = gw.issue_setup_code()
    mark = gw.mark()
    node = nodes(state_dir, ["--pair-if-needed", code])
    conn = gw.wait_for_hello(timeout=30, since=mark)
    assert "bootstrapToken" not in conn.connect_params["auth"] and conn.connect_params["auth"].get("token")
    assert gw.bootstrap_attempts == []
    node.stop()
    # An expired code is no error while the device token makes it unnecessary.
    mark = gw.mark()
    nodes(state_dir, ["--pair-if-needed", gw.issue_setup_code(ttl_ms=-1000)])
    assert "bootstrapToken" not in gw.wait_for_hello(timeout=30, since=mark).connect_params["auth"]
    out = cli(state_dir, "run", "--pair", "x", "--pair-if-needed", "y")
    assert out.returncode == 64 and "Error: --pair-if-needed cannot be combined with --pair" in out.stderr


def test_connect_with_a_join_url_fetches_it_once_through_the_network_worker(make_gateway, state_dir, tmp_path):
    gw = make_gateway()
    join = gw.issue_join_url()
    target = tmp_path / "target"
    target.write_text(join + "\n")
    target.chmod(0o600)
    proc = subprocess.Popen([binary("openclaw-node"), "connect", "--target-file", str(target), "--exec-user", "root"],
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")},
                                 "OPENCLAW_STATE_DIR": str(state_dir)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        conn = gw.wait_for_hello(timeout=30)
        assert "bootstrapToken" in conn.connect_params["auth"]
        assert not target.exists(), "the target file is removed once read"
        assert len(gw.join_requests) == 1 and gw.join_requests[0]["path"] == "/" + join.split("/", 3)[3]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 143
    # Single use: the same join URL is gone.
    out = cli(state_dir, "connect", join)
    assert out.returncode == 1 and out.stderr == "Gateway join code was not found or has expired.\n"


def test_connect_refuses_what_it_cannot_use(state_dir, tmp_path):
    for args, message in ((["https://gw.example/j/short"], "Join URL must end with the exact /j/<shortcode> form."),
                          (["http://gw.example/j/" + "a" * 22], "Plain HTTP join URLs are allowed only for loopback gateways."),
                          ([], "Connect target is required."),
                          (["x", "--target-file", "/nonexistent"], "Provide the connect target or --target-file, not both."),
                          (["garbage!"], "Invalid pairing setup code or URL.")):
        out = cli(state_dir, "connect", *args)
        assert out.returncode == 1 and out.stderr == message + "\n", (args, out.stderr)
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    out = cli(state_dir, "connect", "--target-file", str(empty))
    assert out.returncode == 1 and out.stderr == "Connect target file is empty.\n" and empty.exists()
    out = cli(state_dir, "connect", "--target-file", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr == f"Could not read --target-file {tmp_path} (max 65536 bytes): path must be a regular file\n"


def test_a_codes_urls_are_tried_in_order_and_the_winner_is_saved(make_gateway, nodes, state_dir):
    gw = make_gateway()
    dead = free_port()
    code = gw.issue_setup_code(url=f"ws://127.0.0.1:{dead}", urls=[f"ws://127.0.0.1:{dead}", gw.url])
    node = nodes(state_dir, ["--pair", code])
    conn = gw.wait_for_hello(timeout=30)
    assert conn.connect_params["auth"] == {"bootstrapToken": code_token(code)}
    node.wait_log("saved the gateway endpoint that answered")
    assert json.loads((state_dir / "node.json").read_text())["gateway"] == {"host": "127.0.0.1", "port": gw.port, "tls": False}


def test_cloudflare_access_headers_go_on_the_tls_upgrade_only(make_gateway, nodes, state_dir, tmp_path):
    gw = make_gateway(tls=True, auto_approve=True)
    access = {"CF_ACCESS_CLIENT_ID": "client-id.access", "CF_ACCESS_CLIENT_SECRET": "s3cret"}
    nodes(state_dir, gateway_args(gw) + ["--tls-fingerprint", gw.cert_fingerprint_sha256], env=access)
    conn = gw.wait_for_hello(timeout=30)
    headers = {k.lower(): v for k, v in conn.request_headers.items()}
    assert headers["cf-access-client-id"] == "client-id.access" and headers["cf-access-client-secret"] == "s3cret"
    plain = tmp_path / "plain"
    plain.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")} | access | {"OPENCLAW_STATE_DIR": str(plain)}
    out = subprocess.run([binary("openclaw-node"), "run", "--port", "1"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 78 and "Cloudflare Access credentials require a TLS Gateway connection" in out.stdout + out.stderr
    env.pop("CF_ACCESS_CLIENT_SECRET")
    out = subprocess.run([binary("openclaw-node"), "run", "--port", "1", "--tls"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 78
    assert "CF_ACCESS_CLIENT_ID and CF_ACCESS_CLIENT_SECRET must be configured together" in out.stdout + out.stderr
