"""Issue 17: pairing in two steps, as current gateways run it. First the device
(`openclaw devices approve <id>`: `connect` is refused with PAIRING_REQUIRED), then its command
surface (`openclaw nodes approve <id>`: the connect succeeds, but the gateway routes none of the
node's commands and answers `node.runnerInventory.update` with UNAVAILABLE naming the request).
Each state is logged once with the operator's next command, shown in `status --json` and on the
metrics, and a pending surface is asked about on a slow backoff, never every 5 s forever."""
import json
import os
import re
import subprocess
import time
import urllib.request

from conftest import binary, free_port, gateway_args, wait_until

DEVICE_LINE = "pairing required: approve this node on the gateway with: openclaw devices approve {}"
SURFACE_LINE = ("device paired; command surface pending approval: run 'openclaw nodes approve {}' on the gateway host "
                "(see 'openclaw nodes pending')")
APPROVED_LINE = "command surface approved; the gateway now routes this node's commands"


def write_approvals(state_dir):
    path = state_dir / "exec-approvals.json"
    path.write_text(json.dumps({"version": 1, "defaults": {"security": "full", "ask": "off"}, "agents": {}}))
    path.chmod(0o600)


def status(state_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["OPENCLAW_STATE_DIR"] = str(state_dir)
    out = subprocess.run([binary("openclaw-node"), "status", "--json"], env=env, capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)["node"]


def metrics(port) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def series(body: str, name: str) -> dict[str, float]:
    """`{labels: value}` of every sample of `name`."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", body, re.M)}



def test_device_then_surface_then_approved_end_to_end(make_gateway, nodes, state_dir):
    write_approvals(state_dir)
    gw = make_gateway(surface_approval=True)
    port = free_port()
    node = nodes(state_dir, gateway_args(gw) + ["--metrics-port", str(port)])

    # Step 1: the device.
    device_request = gw.wait_for_pending_request(timeout=30)
    node.wait_log(re.escape(DEVICE_LINE.format(device_request)))
    live = wait_until(lambda: (s := status(state_dir)) and s["pairing"]["state"] == "device-pending" and s, what="device-pending")
    assert live["pairing"] == {"state": "device-pending", "deviceRequestId": device_request, "surfaceRequestId": None}
    assert live["pendingRequestId"] == device_request and live["paired"] is False and live["connected"] is False
    body = metrics(port)
    assert series(body, "openclaw_node_pairing_state") == {
        'state="unknown"': 0, 'state="device-pending"': 1, 'state="surface-pending"': 0, 'state="paired"': 0}
    assert series(body, "openclaw_node_pairing_request") == {f'step="device",request_id="{device_request}"': 1}
    assert re.search(r"^openclaw_node_pairing_pending 1", body, re.M)

    # Step 2: the command surface, after the device's approval (the node reconnects by itself).
    gw.approve(device_request)
    surface_request = gw.wait_for_surface_request(timeout=30)
    node.wait_log(re.escape(SURFACE_LINE.format(surface_request)), timeout=15)
    assert gw.inventory_calls[0]["params"] == {"protocolFeatures": []}
    assert gw.inventory_calls[0]["error"]["code"] == "UNAVAILABLE"
    live = status(state_dir)
    assert live["pairing"] == {"state": "surface-pending", "deviceRequestId": None, "surfaceRequestId": surface_request}
    assert live["connected"] is True and live["paired"] is True and live["pendingRequestId"] is None
    body = metrics(port)
    assert series(body, "openclaw_node_pairing_state")['state="surface-pending"'] == 1
    assert series(body, "openclaw_node_pairing_request") == {f'step="surface",request_id="{surface_request}"': 1}
    text = subprocess.run([binary("openclaw-node"), "status"], env={**os.environ, "OPENCLAW_STATE_DIR": str(state_dir)},
                          capture_output=True, text=True, timeout=30).stdout
    assert f"command surface waiting for approval: openclaw nodes approve {surface_request}" in text, text

    # Approved on the gateway without any event to the node: the first invoke the gateway
    # routes tells the node, which asks at once.
    gw.approve_surface(surface_request, notify=False)
    result = gw.invoke("system.run", {"command": ["/bin/echo", "routed"]})
    assert result["ok"] is True, result
    node.wait_log(re.escape(APPROVED_LINE), timeout=10)
    live = status(state_dir)
    assert live["pairing"] == {"state": "paired", "deviceRequestId": None, "surfaceRequestId": None}
    body = metrics(port)
    assert series(body, "openclaw_node_pairing_state")['state="paired"'] == 1
    assert series(body, "openclaw_node_pairing_request") == {}
    assert re.search(r"^openclaw_node_pairing_pending 0", body, re.M)
    # Each state was logged once.
    for line in (DEVICE_LINE.format(device_request), SURFACE_LINE.format(surface_request), APPROVED_LINE):
        assert node.count(re.escape(line)) == 1, line


def test_a_pending_surface_is_asked_about_on_a_doubling_pace_and_logged_once(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True, surface_approval=True)
    node = nodes(state_dir, gateway_args(gw) + ["--pairing-retry-ms", "300"])
    surface_request = gw.wait_for_surface_request(timeout=30)
    wait_until(lambda: len(gw.inventory_calls) >= 5, timeout=15, what="five inventory calls")
    times = [call["atMs"] for call in gw.inventory_calls[:5]]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # 300, 600, 1200, 2400 ms: each pause about twice the one before (never a steady spin).
    for earlier, later in zip(gaps, gaps[1:]):
        assert later >= 1.6 * earlier, gaps
    assert 250 <= gaps[0] <= 1500, gaps
    assert node.count(re.escape(SURFACE_LINE.format(surface_request))) == 1
    assert all(call["params"] == {"protocolFeatures": []} for call in gw.inventory_calls)


def test_node_pair_resolved_for_this_node_makes_it_ask_at_once(make_gateway, nodes, state_dir):
    """A gateway that tells the node (`node.pair.resolved`): the node asks again at once, not
    at its next retry (5 s away here)."""
    gw = make_gateway(auto_approve=True, surface_approval=True, notify_node_pairing=True)
    node = nodes(state_dir, gateway_args(gw))
    surface_request = gw.wait_for_surface_request(timeout=30)
    node.wait_log(re.escape(SURFACE_LINE.format(surface_request)), timeout=15)
    # The line may come from the hello, before the first answer to the surface question.
    wait_until(lambda: gw.inventory_calls, what="the first surface question")
    time.sleep(0.2)
    calls = len(gw.inventory_calls)
    # Another node's approval changes nothing.
    gw.send_event("node.pair.resolved", {"requestId": "np-other", "nodeId": "someone-else", "decision": "approved", "ts": 1})
    time.sleep(0.5)
    assert len(gw.inventory_calls) == calls
    approved_at = time.monotonic()
    gw.approve_surface(surface_request)
    node.wait_log(re.escape(APPROVED_LINE), timeout=10)
    assert time.monotonic() - approved_at < 3.0
    assert gw.inventory_calls[-1]["ok"] is True
    assert status(state_dir)["pairing"]["state"] == "paired"


def test_a_rejected_surface_is_logged_with_the_way_forward(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True, surface_approval=True, notify_node_pairing=True)
    node = nodes(state_dir, gateway_args(gw))
    surface_request = gw.wait_for_surface_request(timeout=30)
    node.wait_log(re.escape(SURFACE_LINE.format(surface_request)), timeout=15)
    gw.reject_surface(surface_request)
    node.wait_log(re.escape(f"command surface request {surface_request} was rejected on the gateway; this node's commands "
                            "stay unavailable until an operator approves a new request"), timeout=10)
    assert node.proc.poll() is None


def test_an_older_gateways_pending_message_names_the_listing_command(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True, surface_approval=True, legacy_surface_message=True)
    node = nodes(state_dir, gateway_args(gw))
    node.wait_log(re.escape("device paired; command surface pending approval: run 'openclaw nodes pending' on the gateway "
                            "host, then 'openclaw nodes approve <requestId>'"), timeout=30)
    assert status(state_dir)["pairing"] == {"state": "surface-pending", "deviceRequestId": None, "surfaceRequestId": None}


def test_an_approved_surface_and_a_protocol_3_gateway_mean_paired_without_noise(make_gateway, nodes, state_dir):
    for protocols in ((3, 4), (3,)):
        gw = make_gateway(auto_approve=True, server_protocols=protocols)
        sub = state_dir / f"p{len(protocols)}"
        sub.mkdir(mode=0o700)
        node = nodes(sub, gateway_args(gw))
        wait_until(lambda: gw.inventory_calls, timeout=30, what="the inventory call")
        call = gw.inventory_calls[0]
        if protocols == (3,):
            assert call["error"] == {"code": "INVALID_REQUEST", "message": "unauthorized role: node"}
        else:
            assert call["ok"] is True
        wait_until(lambda: status(sub)["pairing"]["state"] == "paired", timeout=10, what="paired")
        time.sleep(0.5)
        assert len(gw.inventory_calls) == 1, "asked once, not again"
        assert node.count("command surface") == 0 and node.count("runnerInventory") == 0
        node.stop()


def test_the_gateways_session_facts_are_read_from_hello(make_gateway, nodes, state_dir):
    """`hello-ok.features.capabilities` (all upstream's node host reads of `features`), the
    protocol and the server version, shown in `status --json`."""
    gw = make_gateway(auto_approve=True)
    gw.server_capabilities = ["node.worker.bundleRetention.v1", "x" * 300]
    nodes(state_dir, gateway_args(gw))
    gw.wait_for_hello(timeout=30)
    live = wait_until(lambda: (s := status(state_dir)) and s["connected"] and s, what="connected")
    assert live["gateway"] == {"protocol": 4, "serverVersion": gw.server_version,
                               "capabilities": ["node.worker.bundleRetention.v1", "x" * 128]}


def test_a_challenge_without_a_valid_ts_fails_closed_and_waits_before_trying_again(make_gateway, nodes, state_dir):
    """upstream's client: no connect frame, close 1008 "connect failed", the log line, and no new
    socket soon after (upstream stops for good; a daemon waits 30 s, then tries again)."""
    from openclaw_test_gateway import OMIT
    for value in (OMIT, "1700000000000", -5, 1.5):
        gw = make_gateway(auto_approve=True)
        gw.challenge_ts_value = value
        sub = state_dir / f"ts{len(gw.connections)}{abs(hash(str(value))) % 1000}"
        sub.mkdir(mode=0o700)
        node = nodes(sub, gateway_args(gw))
        conn = wait_until(lambda: gw.connections and not gw.connections[0].open and gw.connections[0], timeout=20,
                          what="the first connection closed")
        assert conn.connect_received is False, value
        assert (conn.client_close_code, conn.client_close_reason) == (1008, "connect failed"), value
        node.wait_log(re.escape("node host gateway connect failed: gateway connect challenge timestamp invalid"))
        time.sleep(2.0)
        assert len(gw.connections) == 1, f"{value}: reconnected at once"
        node.stop()
