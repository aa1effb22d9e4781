"""Issue 17: an invoke's life as upstream's node host lives it — `node.invoke.cancel`, the
connection's loss (`cancelAll`), a redelivered id. A cancelled invoke's command tree is killed
and nothing is published for it (no result, no exec.finished)."""
import json
import os
import re
import subprocess
import time

import pytest

from conftest import gateway_args, wait_until


def write_approvals(state_dir):
    path = state_dir / "exec-approvals.json"
    path.write_text(json.dumps({"version": 1, "defaults": {"security": "full", "ask": "off"}, "agents": {}}))
    path.chmod(0o600)


@pytest.fixture
def linked(make_gateway, nodes, state_dir):
    def start(*args):
        write_approvals(state_dir)
        gw = make_gateway(auto_approve=True)
        node = nodes(state_dir, gateway_args(gw) + list(args))
        gw.wait_for_hello(timeout=30)
        node.wait_log('msg="node host gateway connected"', timeout=15)
        return gw, node
    return start


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:  # gone (ENOENT, or ESRCH while it is being reaped)
        return False



def tree_command(tmp_path, tag):
    """A shell whose background grandchild and main command both outlive any deadline here;
    their pids land in files."""
    return ["/bin/sh", "-c", f"sleep 300 & echo $! > {tmp_path}/{tag}.child; echo $$ > {tmp_path}/{tag}.main; exec sleep 301"]


def pids(tmp_path, tag):
    wait_until(lambda: (tmp_path / f"{tag}.child").exists() and (tmp_path / f"{tag}.main").exists(), what=f"{tag} started")
    wait_until(lambda: (tmp_path / f"{tag}.main").read_text().strip() and (tmp_path / f"{tag}.child").read_text().strip())
    return int((tmp_path / f"{tag}.main").read_text()), int((tmp_path / f"{tag}.child").read_text())


def exec_finished(gw):
    return [e for e in gw.node_events if e.get("event") == "exec.finished"]


def test_cancel_kills_the_whole_tree_and_publishes_nothing(linked, tmp_path):
    gw, node = linked()
    gw.invoke_async("system.run", {"command": tree_command(tmp_path, "a")}, timeout_ms=120_000, invoke_id="inv-a")
    main, child = pids(tmp_path, "a")
    assert alive(main) and alive(child)
    assert gw.cancel_invoke("inv-a")
    wait_until(lambda: not alive(main) and not alive(child), timeout=5, what="the command tree killed")
    node.wait_log('msg="system.run cancelled"', timeout=5)
    time.sleep(1.0)
    assert gw.results_for("inv-a") == []
    assert exec_finished(gw) == []
    # The node goes on serving.
    result = gw.invoke("system.run", {"command": ["/bin/echo", "still here"]})
    assert result["ok"] is True and json.loads(result["payloadJSON"])["stdout"] == "still here\n"


def test_cancel_of_a_queued_run_means_it_never_starts(linked, tmp_path):
    gw, node = linked("--max-concurrent-runs", "1")
    gw.invoke_async("system.run", {"command": tree_command(tmp_path, "first")}, timeout_ms=120_000, invoke_id="inv-first")
    main, child = pids(tmp_path, "first")
    marker = tmp_path / "queued-ran"
    gw.invoke_async("system.run", {"command": ["/usr/bin/touch", str(marker)]}, timeout_ms=120_000, invoke_id="inv-queued")
    wait_until(lambda: "inv-queued" in gw.pending_invokes(), what="the queued invoke sent")
    time.sleep(0.5)
    assert gw.cancel_invoke("inv-queued")
    time.sleep(0.5)
    assert gw.cancel_invoke("inv-first")
    wait_until(lambda: not alive(main) and not alive(child), timeout=5, what="the running tree killed")
    time.sleep(1.0)
    assert not marker.exists(), "the cancelled queued run started"
    assert gw.results_for("inv-queued") == [] and gw.results_for("inv-first") == []
    result = gw.invoke("system.run", {"command": ["/bin/echo", "next"]})
    assert result["ok"] is True, result


def test_a_cancel_for_an_unknown_invoke_is_harmless(linked):
    gw, node = linked()
    mark = gw.mark()
    assert gw.cancel_invoke("no-such-invoke")
    time.sleep(0.5)
    result = gw.invoke("system.which", {"bins": ["sh"]})
    assert result["ok"] is True, result
    assert node.proc.poll() is None
    assert gw.mark() == mark, "the link was not dropped"
    assert "protocol violation" not in node.log


def test_losing_the_connection_kills_the_runs_it_asked_for(linked, tmp_path):
    gw, node = linked()
    gw.invoke_async("system.run", {"command": tree_command(tmp_path, "lost")}, timeout_ms=120_000, invoke_id="inv-lost")
    main, child = pids(tmp_path, "lost")
    mark = gw.mark()
    gw.close_all(1012, "service restart")
    wait_until(lambda: not alive(main) and not alive(child), timeout=5, what="the tree killed on connection loss")
    node.wait_log('msg="gateway connection lost; cancelled its invokes".*count=1', timeout=5)
    gw.wait_for_hello(timeout=30, since=mark)
    time.sleep(1.0)
    assert gw.results_for("inv-lost") == [], "nothing is replayed after the reconnect"
    assert exec_finished(gw) == []


def test_a_redelivered_invoke_id_replaces_the_original(linked, tmp_path):
    gw, node = linked()
    gw.invoke_async("system.run", {"command": tree_command(tmp_path, "orig")}, timeout_ms=120_000, invoke_id="inv-dup")
    main, child = pids(tmp_path, "orig")
    second = gw.invoke_async("system.run", {"command": ["/bin/echo", "replacement"]}, timeout_ms=30_000, invoke_id="inv-dup")
    result = second.result(timeout=30)
    assert result["ok"] is True and json.loads(result["payloadJSON"])["stdout"] == "replacement\n", result
    wait_until(lambda: not alive(main) and not alive(child), timeout=5, what="the original's tree killed")
    time.sleep(1.0)
    assert len(gw.results_for("inv-dup")) == 1, gw.results_for("inv-dup")
    assert len(exec_finished(gw)) == 1


def test_past_its_own_deadline_an_invoke_is_answered_unavailable_and_its_tree_killed(linked, tmp_path):
    """The invoke's `timeoutMs` is the node's deadline too (upstream's node session, #1357):
    a structured error instead of the gateway's timeout. Here the gateway waits longer."""
    gw, node = linked()
    started = time.monotonic()
    future = gw.invoke_async("system.run", {"command": tree_command(tmp_path, "slow")}, timeout_ms=20_000,
                             invoke_id="inv-slow", payload_overrides={"timeoutMs": 1_500})
    main, child = pids(tmp_path, "slow")
    result = future.result(timeout=20)
    assert result["ok"] is False and result["error"] == {"code": "UNAVAILABLE", "message": "node invoke timed out"}, result
    assert time.monotonic() - started < 10
    wait_until(lambda: not alive(main) and not alive(child), timeout=5, what="the tree killed at the deadline")
    assert len(gw.results_for("inv-slow")) == 1


def test_an_invoke_timeout_of_zero_means_no_deadline(linked):
    gw, node = linked()
    result = gw.invoke("system.run", {"command": ["/bin/sh", "-c", "sleep 2; echo done"]}, timeout_ms=20_000,
                       payload_overrides={"timeoutMs": 0})
    assert result["ok"] is True and json.loads(result["payloadJSON"])["stdout"] == "done\n", result


def test_a_run_timeout_of_null_is_accepted_and_independent_of_the_invoke_deadline(linked):
    """The gateway rewrites a run's `timeoutMs` <= 0 to null (no expiry)."""
    gw, node = linked()
    result = gw.invoke("system.run", {"command": ["/bin/echo", "ok"], "timeoutMs": None})
    assert result["ok"] is True and json.loads(result["payloadJSON"])["stdout"] == "ok\n", result
    short = gw.invoke("system.run", {"command": ["/bin/sleep", "5"], "timeoutMs": 500}, timeout_ms=20_000)
    payload = json.loads(short["payloadJSON"])
    assert short["ok"] is True and payload["timedOut"] is True, short


def meminfo_bytes(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def test_host_stats_arrive_after_hello_and_on_schedule_with_this_machines_values(linked):
    """Issue 17: `node.host.stats` as upstream's node host sends it (here every 500 ms instead of 60 s)."""
    gw, node = linked("--host-stats-interval-ms", "500")
    def stats():
        return [e for e in gw.node_events if e.get("event") == "node.host.stats"]
    wait_until(lambda: len(stats()) >= 1, timeout=5, what="the first stats after hello")
    wait_until(lambda: len(stats()) >= 3, timeout=5, what="stats on schedule")
    payload = json.loads(stats()[-1]["payloadJSON"])
    assert set(payload) <= {"cpuCount", "loadAverage", "memoryTotalBytes", "memoryFreeBytes", "diskTotalBytes", "diskAvailableBytes"}
    assert payload["cpuCount"] == os.sysconf("SC_NPROCESSORS_ONLN")
    assert payload["memoryTotalBytes"] == meminfo_bytes("MemTotal")
    assert abs(payload["memoryFreeBytes"] - meminfo_bytes("MemAvailable")) < 512 * 1024 * 1024
    assert 0 <= payload["memoryFreeBytes"] <= payload["memoryTotalBytes"]
    home = os.statvfs(os.environ.get("HOME", "/"))
    assert payload["diskTotalBytes"] == home.f_frsize * home.f_blocks
    assert 0 <= payload["diskAvailableBytes"] <= payload["diskTotalBytes"]
    if "loadAverage" in payload:
        assert len(payload["loadAverage"]) == 3 and all(0 <= value <= 100_000 for value in payload["loadAverage"])
    for value in ("cpuCount", "memoryTotalBytes", "memoryFreeBytes", "diskTotalBytes", "diskAvailableBytes"):
        assert isinstance(payload[value], int), value


def test_the_advertised_surface_is_logged_once_and_shown_by_status_and_doctor(linked, state_dir):
    """Issue 17: upstream's start-up line, and the same surface in `status --json` and `doctor`."""
    gw, node = linked()
    params = gw.last_connection.connect_params
    commands, caps = params["commands"], params["caps"]
    assert commands[:5] == ["system.which", "system.run.prepare", "system.run", "system.execApprovals.get", "system.execApprovals.set"]
    lines = [l for l in node.lines if "node-host: advertised commands:" in l]
    assert len(lines) == 1, lines
    assert 'msg="node-host: advertised commands: ' + ", ".join(commands) + '" caps=' + ",".join(caps) in lines[0], lines[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env["OPENCLAW_STATE_DIR"] = str(state_dir)
    from conftest import binary
    status = json.loads(subprocess.run([binary("openclaw-node"), "status", "--json"], env=env, capture_output=True,
                                       text=True, timeout=30).stdout)
    assert status["node"]["advertised"] == {"commands": commands, "caps": caps}, status
    doctor = json.loads(subprocess.run([binary("openclaw-node"), "doctor", "--json", "--skip-self-test"], env=env,
                                       capture_output=True, text=True, timeout=60).stdout)
    surface = next(c for c in doctor["checks"] if c["name"] == "surface")
    assert surface["detail"] == (f"advertised by the running node (pid {node.pid}): commands " + ", ".join(commands)
                                 + "; caps " + ", ".join(caps)), surface


def test_a_protocol_3_only_gateway_still_works(make_gateway, nodes, state_dir):
    """Issue 17: the node announces 3..4; a gateway that speaks only 3 gets a v3 session, and
    the invoke path works there (frames checked against the v3 schema by the fixture)."""
    write_approvals(state_dir)
    gw = make_gateway(auto_approve=True, server_protocols=(3,))
    node = nodes(state_dir, gateway_args(gw))
    conn = gw.wait_for_hello(timeout=30)
    assert conn.protocol == 3
    node.wait_log('msg="node host gateway connected".*protocol=3', timeout=15)
    result = gw.invoke("system.run", {"command": ["/bin/echo", "v3"]})
    assert result["ok"] is True and json.loads(result["payloadJSON"])["stdout"] == "v3\n", result


def test_unknown_fields_and_traceparent_on_frames_are_tolerated(linked):
    gw, node = linked()
    mark = gw.mark()
    frame = {"type": "event", "event": "node.invoke.request", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
             "payload": {"id": "inv-extra", "nodeId": gw.last_connection.device_id, "command": "system.which",
                         "paramsJSON": json.dumps({"bins": ["sh"]}), "timeoutMs": 30000, "sessionKey": "agent:main",
                         "futureField": {"x": 1}}}
    gw.send_raw(json.dumps(frame))
    wait_until(lambda: gw.results_for("inv-extra"), timeout=10, what="the result")
    assert gw.results_for("inv-extra")[0]["ok"] is True
    gw.send_event("tick", {"ts": 1, "traceparent": "x", "extra": True})
    time.sleep(0.3)
    assert gw.mark() == mark and node.proc.poll() is None
