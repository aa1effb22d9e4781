"""Issue 2: three processes that really run, survive each other's crashes and stop cleanly."""
import os
import signal
import subprocess
import time

import pytest

from conftest import binary, forged_worker, gateway_args


def test_supervisor_runs_exactly_two_workers_of_the_right_executables(gateway, nodes, state_dir):
    node = nodes(state_dir, gateway_args(gateway))
    node.wait_log('msg="net worker ready"')
    node.wait_log('msg="exec worker ready"')
    children = node.children()
    # The long-lived workers; the uploads' start clean-up may run beside them in a one-shot files worker.
    assert sorted(n for n in children.values() if n != "openclaw-node-files") == ["openclaw-node-exec", "openclaw-node-net"], children
    # One binary (issue 16): each worker executes the Supervisor's own file, under its role's
    # name, and the kernel's short name says the role too.
    supervisor_exe = os.stat(f"/proc/{node.pid}/exe")
    for pid, name in children.items():
        exe = os.stat(f"/proc/{pid}/exe")
        assert (exe.st_dev, exe.st_ino) == (supervisor_exe.st_dev, supervisor_exe.st_ino), name
        assert open(f"/proc/{pid}/comm").read().strip() == name[:15]


def test_workers_inherit_only_the_ipc_socket(gateway, nodes, state_dir):
    node = nodes(state_dir, gateway_args(gateway))
    node.wait_log('msg="exec worker ready"')
    exec_pid = node.worker_pid("exec")
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{exec_pid}/fd"))
    targets = {fd: os.readlink(f"/proc/{exec_pid}/fd/{fd}") for fd in fds}
    assert targets[0] == "/dev/null"
    assert targets[3].startswith("socket:")
    # Beyond stdio and fd 3, only descriptors the worker opened itself (its event loop).
    inherited = [fd for fd, target in targets.items() if fd > 3 and target.startswith("socket:")]
    assert inherited == [], targets


@pytest.mark.parametrize("kind", ["net", "exec"])
def test_killed_worker_comes_back_with_a_new_pid(gateway, nodes, state_dir, kind):
    node = nodes(state_dir, gateway_args(gateway))
    node.wait_log(f'msg="{kind} worker ready"')
    old = node.worker_pid(kind)
    mark = gateway.mark()
    os.kill(old, signal.SIGKILL)
    node.wait_log(f'msg="{kind} worker ready"', count=2)
    new = node.worker_pid(kind)
    assert new != old
    assert node.proc.poll() is None, "the Supervisor is still running"
    assert sorted(n for n in node.children().values() if n != "openclaw-node-files") == ["openclaw-node-exec", "openclaw-node-net"]
    if kind == "net":
        # and it still answers: the new NetWorker's connect is signed by the Supervisor
        conn = gateway.wait_for_connection(since=mark, timeout=15, predicate=lambda c: c.connect_received)
        assert conn.error_code == "NOT_PAIRED", conn.summary()


@pytest.mark.parametrize("mode,reason", [
    ("garbage", "frame of .* bytes exceeds|not valid UTF-8|not JSON"),
    ("oversize", "exceeds the 26279936-byte limit"),
    ("zero-length", "zero-length frame"),
    ("unknown-type", 'unknown message type \\\\"please.run.this\\\\"'),
    ("out-of-state", '\\\\"invoke\\\\" is not allowed while the link is awaitingReady'),
])
def test_misbehaving_net_worker_is_killed_and_respawned(tmp_path, nodes, state_dir, mode, reason):
    node = nodes(state_dir, ["--port", "9"], net_worker=forged_worker(tmp_path, mode))
    line = node.wait_log('msg="worker protocol violation; killing it"')
    assert "worker=net" in line
    import re
    assert re.search(reason, line), line
    node.wait_log('msg="worker started".*worker=net', count=2)
    assert node.proc.poll() is None


@pytest.mark.parametrize("mode,reason", [
    ("exec-out-of-state", '\\\\"run.finished\\\\" is not allowed while the exec worker is awaitingReady'),
    ("unknown-run", 'run.finished for unknown run'),
])
def test_misbehaving_exec_worker_is_killed_and_respawned(tmp_path, nodes, state_dir, mode, reason):
    node = nodes(state_dir, ["--port", "9"], exec_worker=forged_worker(tmp_path, mode))
    line = node.wait_log('msg="worker protocol violation; killing it"')
    assert "worker=exec" in line
    assert reason.replace("\\\\", "\\") in line, line
    node.wait_log('msg="worker started".*worker=exec', count=2)
    assert node.proc.poll() is None


@pytest.mark.parametrize("mode", ["sign-forged-nonce", "sign-stale"])
def test_forged_signature_requests_are_refused(tmp_path, nodes, state_dir, mode):
    node = nodes(state_dir, ["--port", "9"], net_worker=forged_worker(tmp_path, mode))
    node.wait_log("refused to sign")
    assert node.proc.poll() is None


def test_a_second_signature_in_one_connect_attempt_is_a_violation(tmp_path, nodes, state_dir):
    """Issue 16: the NetWorker's menu admits one sign.request per connect attempt."""
    node = nodes(state_dir, ["--port", "9"], net_worker=forged_worker(tmp_path, "sign-twice"))
    line = node.wait_log('msg="worker protocol violation; killing it"')
    assert "worker=net" in line
    assert 'reason="\\"sign.request\\" may come once while the link is linking; it came again"' in line, line
    node.wait_log('msg="worker started".*worker=net', count=2)
    assert node.proc.poll() is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_everything_with_upstreams_exit_code_within_5_seconds(gateway, nodes, state_dir, sig):
    node = nodes(state_dir, gateway_args(gateway))
    node.wait_log('msg="exec worker ready"')
    node.wait_log('msg="net worker ready"')
    # The long-lived workers (a one-shot clean-up may run beside them at start).
    workers = [pid for pid, name in node.children().items() if name in ("openclaw-node-net", "openclaw-node-exec")]
    assert len(workers) == 2
    started = time.monotonic()
    assert node.stop(sig) == 128 + sig  # upstream: SIGINT 130, SIGTERM 143
    assert time.monotonic() - started < 5
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@pytest.mark.parametrize("worker", ["openclaw-node-net", "openclaw-node-exec", "openclaw-node-browser"])
def test_a_worker_started_by_hand_explains_itself_instead_of_crashing(worker):
    # The one binary started under a worker's name (as the Supervisor starts it).
    out = subprocess.run([worker], executable=binary("openclaw-node"), capture_output=True, text=True, timeout=20,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 64
    assert f"{worker}: no IPC socket on fd 3; run `openclaw-node run` instead" in out.stderr
    assert "Fatal error" not in out.stderr
    helped = subprocess.run([worker, "--help"], executable=binary("openclaw-node"), capture_output=True, text=True, timeout=20)
    assert helped.returncode == 0 and "a worker process of openclaw-node" in helped.stdout
