"""Issue 20 (MCP): `nodeHost.mcp.servers` stdio servers run by the McpWorker as the exec user;
their tools published with `node.pluginTools.update` (upstream's names, filter, dedup and
sanitising); `mcp.tools.call.v1` answers in the structured `payload`; a crashed server's tools
are withdrawn and come back; a cancelled call publishes nothing; upstream's messages."""
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import gateway_args, wait_until

SERVER = Path(__file__).with_name("mcp_test_server.py")



@pytest.fixture
def public_dir():
    """A folder the exec user can write (the server's call log)."""
    path = Path(tempfile.mkdtemp(prefix="ocn-mcp-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mcp_node(make_gateway, nodes, state_dir, public_dir):
    def start(servers, args=(), answer=None):
        (state_dir / "openclaw.json").write_text(json.dumps({"nodeHost": {"mcp": {"servers": servers}}}))
        gw = make_gateway(auto_approve=True)
        gw.plugin_tools_answer = answer
        node = nodes(state_dir, gateway_args(gw) + list(args), default_exec_user=True)
        gw.wait_for_hello(timeout=30)
        return gw, node
    return start


def docs_server(public_dir, **extra):
    return {"command": "python3", "args": [str(SERVER)], "env": {"MCP_TEST_LOG": str(public_dir / "calls.log")}, **extra}


def names(update):
    return [tool["name"] for tool in update["tools"]]


def latest_tools(gw):
    return gw.plugin_tools_updates[-1]["tools"] if gw.plugin_tools_updates else None


def call(gw, server, tool, arguments=None, **kwargs):
    params = {"server": server, "tool": tool}
    if arguments is not None:
        params["arguments"] = arguments
    return gw.invoke("mcp.tools.call.v1", params, **kwargs)


def error_of(result):
    assert result["ok"] is False, result
    return result["error"]["code"], result["error"]["message"]


def server_log(public_dir):
    path = public_dir / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


EXPECTED = ["docs_add_tool", "docs_big", "docs_crash", "docs_echo", "docs_env", "docs_fail", "docs_hostile", "docs_image", "docs_slow"]


def test_a_stdio_servers_tools_are_published_and_called_with_upstreams_shapes(mcp_node, public_dir):
    gw, node = mcp_node({
        "docs": docs_server(public_dir, toolFilter={"exclude": ["nothing*"]}, env={"MCP_TEST_LOG": str(public_dir / "calls.log"),
                                                                                  "LD_PRELOAD": "/tmp/x.so", "GH_TOKEN": "t0ken", "N": 5}),
        "off": {"command": "false", "enabled": False},
        "oauthy": {"url": "https://mcp.example.invalid/mcp", "transport": "streamable-http", "auth": "oauth"},
    })
    hello = gw.last_connection.connect_params
    assert "mcp" in hello["caps"] and "mcp.tools.call.v1" in hello["commands"]
    update = wait_until(lambda: next((u for u in gw.plugin_tools_updates if u["tools"]), None), what="the MCP tools published")
    assert names(update) == EXPECTED, "duplicates dropped, task-only tools hidden, sorted"
    echo = next(t for t in update["tools"] if t["name"] == "docs_echo")
    assert echo == {"pluginId": "node-mcp", "name": "docs_echo", "description": "Echoes text",
                    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
                    "command": "mcp.tools.call.v1", "mcp": {"server": "docs", "tool": "echo"}}
    env_tool = next(t for t in update["tools"] if t["name"] == "docs_env")
    assert env_tool["description"] == "[redacted MCP metadata instruction] and show the environment"
    node.wait_log(re.escape('node host MCP server \\"oauthy\\" skipped: OAuth is not supported'))
    node.wait_log(re.escape('bundle-mcp: server \\"docs\\": env \\"LD_PRELOAD\\" is blocked for stdio startup safety and was ignored.'))
    assert gw.schema_violations == []

    echoed = call(gw, "docs", "echo", {"text": "hi"})
    assert echoed["ok"] is True and "payloadJSON" not in echoed, echoed
    assert echoed["payload"] == {"content": [{"type": "text", "text": "hi"}]}
    image = call(gw, "docs", "image")
    assert image["payload"]["content"][0]["type"] == "image" and image["payload"]["content"][1] == {"type": "text", "text": "a pixel"}
    failed = call(gw, "docs", "fail")
    assert failed["ok"] is True and failed["payload"] == {"content": [{"type": "text", "text": "bad query"}], "isError": True}

    # A server's error text is redacted as upstream's redactMcpDiagnosticError does, then cut.
    leaky = ("GET https://bob:pw@api.example/v1?page=2&token=secret-value refused: Bearer abcdefghijklmnopqrstuvwxyz0123, "
             "OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwx " + "x" * 2000)
    code, message = error_of(call(gw, "docs", "echo", {"raise": leaky}))
    assert code == "MCP_TOOL_ERROR"
    assert message == ("MCP error -32602: GET https://***:***@api.example/v1?page=2&token=*** refused: Bearer abcdef…0123, "
                       "OPENAI_API_KEY=sk-abc…uvwx " + "x" * 2000)[:1024]
    assert "secret-value" not in message and ":pw@" not in message

    assert error_of(call(gw, "docs", "nope")) == ("MCP_TOOL_UNAVAILABLE", 'MCP tool "nope" is unavailable on server "docs"')
    assert error_of(call(gw, "docs", "search")) == ("MCP_TOOL_UNAVAILABLE", 'MCP tool "search" is unavailable on server "docs"')
    assert error_of(call(gw, "docs", "tasky")) == ("MCP_TOOL_UNAVAILABLE", 'MCP tool "tasky" is unavailable on server "docs"')
    assert error_of(call(gw, "zzz", "echo")) == ("MCP_SERVER_UNAVAILABLE", 'MCP server "zzz" is unavailable')
    assert error_of(call(gw, "off", "echo")) == ("MCP_SERVER_UNAVAILABLE", 'MCP server "off" is unavailable')
    assert error_of(gw.invoke("mcp.tools.call.v1", {"server": " ", "tool": "echo"})) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: server and tool required")
    assert error_of(call(gw, "docs", "echo", [])) == ("INVALID_REQUEST", "Error: INVALID_REQUEST: arguments must be an object")
    assert error_of(gw.invoke("mcp.tools.call.v1", params_json="[1]")) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: MCP tool params must be an object")

    # The server runs as the exec user, from upstream's default environment plus its own.
    shown = json.loads(call(gw, "docs", "env")["payload"]["content"][0]["text"])
    exec_uid = json.loads(gw.invoke("system.run", {"command": ["id", "-u"]}).get("payloadJSON") or "{}").get("stdout", "").strip()
    if os.geteuid() == 0:
        assert shown["uid"] != 0
        if exec_uid:
            assert str(shown["uid"]) == exec_uid
    assert "LD_PRELOAD" not in shown["env"] and shown["env"]["GH_TOKEN"] == "t0ken" and shown["env"]["N"] == "5"
    assert set(shown["env"]) <= {"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "MCP_TEST_LOG", "GH_TOKEN", "N", "LC_CTYPE"}
    assert [entry["initialize"]["clientInfo"]["name"] for entry in server_log(public_dir) if "initialize" in entry] == ["openclaw-node-host"]


def test_a_listing_change_republishes_and_a_crash_withdraws_the_tools_until_the_server_is_back(mcp_node, public_dir):
    gw, node = mcp_node({"docs": docs_server(public_dir)})
    wait_until(lambda: latest_tools(gw) and names({"tools": latest_tools(gw)}) == EXPECTED, what="the tools")
    assert call(gw, "docs", "add_tool")["ok"] is True
    wait_until(lambda: "docs_extra" in names({"tools": latest_tools(gw)}), what="the added tool published")
    count = len(gw.plugin_tools_updates)
    crashed = call(gw, "docs", "crash")
    assert error_of(crashed) == ("MCP_SERVER_UNAVAILABLE", 'MCP server "docs" disconnected')
    wait_until(lambda: any(u["tools"] == [] for u in gw.plugin_tools_updates[count:]), what="the tools withdrawn")
    back = wait_until(lambda: latest_tools(gw), what="the tools back after a restart")
    assert names({"tools": back}) == EXPECTED, "a fresh server lists its own tools again"
    assert call(gw, "docs", "echo", {"text": "again"})["payload"] == {"content": [{"type": "text", "text": "again"}]}


def test_a_cancelled_call_is_abandoned_and_publishes_nothing(mcp_node, public_dir):
    gw, node = mcp_node({"docs": docs_server(public_dir)})
    wait_until(lambda: latest_tools(gw), what="the tools")
    gw.invoke_async("mcp.tools.call.v1", {"server": "docs", "tool": "slow", "arguments": {"seconds": 20}},
                    timeout_ms=60_000, invoke_id="inv-slow")
    wait_until(lambda: any(e.get("call") == "slow" for e in server_log(public_dir)), what="the slow call started")
    assert gw.cancel_invoke("inv-slow")
    wait_until(lambda: any("cancelled" in e for e in server_log(public_dir)), what="the server told to cancel")
    time.sleep(0.5)
    assert gw.results_for("inv-slow") == []
    assert call(gw, "docs", "echo", {"text": "next"})["ok"] is True


def test_a_call_past_its_deadline_is_mcp_tool_timeout(mcp_node, public_dir):
    gw, node = mcp_node({"docs": docs_server(public_dir, requestTimeoutMs=700)})
    wait_until(lambda: latest_tools(gw), what="the tools")
    result = call(gw, "docs", "slow", {"seconds": 10})
    assert error_of(result) == ("MCP_TOOL_TIMEOUT", "MCP error -32001: Request timed out")


def test_mcp_is_advertised_without_servers_and_a_gateway_without_the_method_is_left_alone(mcp_node):
    gw, node = mcp_node({})
    hello = gw.last_connection.connect_params
    assert "mcp" in hello["caps"] and "mcp.tools.call.v1" in hello["commands"]
    wait_until(lambda: gw.plugin_tools_updates, what="the empty catalogue")
    assert gw.plugin_tools_updates[0]["tools"] == []
    assert error_of(call(gw, "docs", "echo")) == ("MCP_SERVER_UNAVAILABLE", 'MCP server "docs" is unavailable')
    assert "openclaw-node-mcp" not in node.log
    node.stop()

    gw2, node2 = mcp_node({}, answer="unknown")
    wait_until(lambda: any(r["method"] == "node.pluginTools.update" for r in gw2.requests), what="one attempt")
    time.sleep(0.6)
    assert sum(r["method"] == "node.pluginTools.update" for r in gw2.requests) == 1
    assert "plugin tool publish failed" not in node2.log


def proc_status(pid):
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def pids_named(comm):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == comm:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_the_mcp_worker_and_its_servers_are_confined_as_the_kernel_reports(mcp_node, public_dir):
    gw, node = mcp_node({"docs": docs_server(public_dir)})
    wait_until(lambda: latest_tools(gw), what="the tools")
    [worker] = [pid for pid in pids_named("openclaw-node-m") if proc_status(pid)["PPid"] == str(node.proc.pid)]
    def parent(pid):
        try:
            return proc_status(pid).get("PPid")
        except OSError:
            return None
    [server] = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and parent(entry.name) == str(worker)]
    assert str(SERVER).encode() in Path(f"/proc/{server}/cmdline").read_bytes()
    for pid in (worker, server):
        status = proc_status(pid)
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1", (pid, status)
        assert status["CapEff"] == "0000000000000000" and status["CapPrm"] == "0000000000000000"
        if os.geteuid() == 0:
            assert status["Uid"].split()[0] != "0"
    node.wait_log(re.escape("mcp worker ready"))


@pytest.fixture
def http_server(public_dir):
    import subprocess
    port_file = public_dir / "port"
    env = dict(os.environ, MCP_TEST_LOG=str(public_dir / "calls.log"))
    process = subprocess.Popen(["python3", str(SERVER), "--http", str(port_file)], env=env)
    wait_until(lambda: port_file.exists() and port_file.read_text(), what="the HTTP MCP server")
    yield f"http://127.0.0.1:{port_file.read_text()}/mcp"
    process.kill()
    process.wait()


def test_a_streamable_http_server_on_loopback_and_its_expired_session(mcp_node, public_dir, http_server):
    gw, node = mcp_node({"web": {"url": http_server, "transport": "streamable-http", "headers": {"X-Api-Key": "k1", "N": 2}}})
    update = wait_until(lambda: latest_tools(gw), what="the HTTP server's tools")
    # HTTP servers only: the McpWorker may connect to their port and nothing else (Landlock).
    node.wait_log(r'mcp worker ready.*landlock=active')
    assert [t["name"] for t in update][:3] == ["web_add_tool", "web_big", "web_crash"]
    assert call(gw, "web", "echo", {"text": "over http"})["payload"] == {"content": [{"type": "text", "text": "over http"}]}
    posts = [e for e in server_log(public_dir) if "http" in e]
    assert all(e["headers"].get("x-api-key") == "k1" and e["headers"].get("n") == "2" for e in posts)
    later = [e for e in posts if e["http"] != "initialize"]
    assert later and all(e["headers"].get("mcp-session-id") and e["headers"].get("mcp-protocol-version") for e in later)
    # The session expires: the failing call is not replayed, the tools go and come back.
    import urllib.request
    urllib.request.urlopen(urllib.request.Request(http_server.replace("/mcp", "/expire"), data=b"{}", method="POST")).read()
    count = len(gw.plugin_tools_updates)
    expired = call(gw, "web", "echo", {"text": "lost"})
    assert error_of(expired) == ("MCP_TOOL_ERROR", "Streamable HTTP error: Error POSTing to endpoint: [redacted response body]")
    wait_until(lambda: any(u["tools"] == [] for u in gw.plugin_tools_updates[count:]), what="the tools withdrawn")
    wait_until(lambda: latest_tools(gw), what="the tools back with a new session")
    assert [e["arguments"] for e in server_log(public_dir) if e.get("call") == "echo"] == [{"text": "over http"}]
    assert call(gw, "web", "echo", {"text": "new session"})["ok"] is True


def test_a_hostile_server_cannot_take_the_worker_down(mcp_node, public_dir):
    """Replies to no request (an id of 1e300, -1e19, a string, null), a 100 kB stderr line, a
    result past upstream's bounds: the call is answered, the worker stays the same process."""
    gw, node = mcp_node({"docs": docs_server(public_dir)})
    wait_until(lambda: latest_tools(gw), what="the tools")
    [worker] = [pid for pid in pids_named("openclaw-node-m") if proc_status(pid)["PPid"] == str(node.proc.pid)]
    assert call(gw, "docs", "hostile")["payload"] == {"content": [{"type": "text", "text": "still here"}]}
    big = call(gw, "docs", "big", {"bytes": 3 * 1024 * 1024})
    [text] = big["payload"]["content"]
    assert text["text"].endswith("\n[truncated: MCP text content exceeded 1 MB]") and len(text["text"].encode()) == 1024 * 1024
    assert call(gw, "docs", "echo", {"text": "ok"})["ok"] is True
    assert [pid for pid in pids_named("openclaw-node-m") if proc_status(pid)["PPid"] == str(node.proc.pid)] == [worker]


def client_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed client certificate (clientAuth) and its key, as PEM files in `folder`."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openclaw-node test client")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "client.pem", folder / "client.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_https_servers_honour_ssl_verify_and_present_the_client_certificate(mcp_node, public_dir, tmp_path):
    """upstream's HTTPS options: the server's certificate is verified unless `sslVerify: false`;
    `clientCert` / `clientKey` (PEM files, read by the Supervisor, 0600 root's here) are
    presented to a server that requires one. A server without them, or one whose certificate
    cannot be verified, fails and publishes nothing."""
    import subprocess
    from openclaw_test_gateway import generate_self_signed_certificate
    cert, key, _ = generate_self_signed_certificate()
    (tmp_path / "server.pem").write_bytes(cert)
    (tmp_path / "server.key").write_bytes(key)
    client_cert, client_key = client_certificate(tmp_path)
    port_file = public_dir / "port"
    process = subprocess.Popen(["python3", str(SERVER), "--http", str(port_file), str(tmp_path / "server.pem"),
                                str(tmp_path / "server.key"), str(client_cert)],
                               env=dict(os.environ, MCP_TEST_LOG=str(public_dir / "calls.log")))
    try:
        wait_until(lambda: port_file.exists() and port_file.read_text(), what="the HTTPS MCP server")
        url = f"https://127.0.0.1:{port_file.read_text()}/mcp"
        gw, node = mcp_node({
            "strict": {"url": url, "transport": "streamable-http", "clientCert": str(client_cert), "clientKey": str(client_key)},
            "nocert": {"url": url, "transport": "streamable-http", "sslVerify": False},
            "lax": {"url": url, "transport": "streamable-http", "sslVerify": False,
                    "clientCert": f" {client_cert} ", "clientKey": str(client_key)},
            "half": {"url": url, "transport": "streamable-http", "clientCert": str(client_cert)},
        })
        update = wait_until(lambda: latest_tools(gw), what="the HTTPS server's tools")
        assert {t["mcp"]["server"] for t in update} == {"lax"}
        assert call(gw, "lax", "echo", {"text": "over https"})["payload"] == {"content": [{"type": "text", "text": "over https"}]}
        node.wait_log(re.escape('node host MCP server \\"lax\\": sslVerify is false; its TLS certificate is not verified'))
        node.wait_log(re.escape('node host MCP server \\"half\\" skipped: clientCert and clientKey must be set together'))
        node.wait_log(re.escape('node host MCP server \\"strict\\" failed: '))
        node.wait_log(re.escape('node host MCP server \\"nocert\\" failed: '))
        assert error_of(call(gw, "strict", "echo", {"text": "x"}))[0] == "MCP_SERVER_UNAVAILABLE"
        assert "BEGIN PRIVATE KEY" not in node.log
    finally:
        process.kill()
        process.wait()
