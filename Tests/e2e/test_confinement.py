"""Issue 5: the workers' confinement, proven by death tests and by what the kernel reports."""
import json
import os
import re
import subprocess

import pytest

from conftest import probe, binary, forged_worker, gateway_args

IS_ROOT = os.geteuid() == 0


def status(pid: int) -> dict:
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


@pytest.fixture
def running(make_gateway, nodes, state_dir):
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw))
    gw.wait_for_hello(timeout=20)
    return gw, node


# ------------------------------------------------------------------ death tests (NetWorker)

def test_net_worker_cannot_execve():
    assert probe("net", "execve") == "probe execve: refused Operation not permitted"


def test_net_worker_cannot_fork():
    assert probe("net", "fork") == "probe fork: refused Operation not permitted"


@pytest.mark.parametrize("path", ["/tmp/openclaw-probe-write", "/dev/shm/openclaw-probe", "/var/tmp/openclaw-probe"])
def test_net_worker_cannot_open_a_file_for_writing(path):
    assert probe("net", "write", path) == "probe write: refused Permission denied"
    assert not os.path.exists(path)


def test_net_worker_cannot_read_the_state_dir(state_dir):
    (state_dir / "identity").mkdir()
    (state_dir / "identity" / "device.json").write_text("{}")
    assert probe("net", "read", str(state_dir)) == "probe read: refused Permission denied"
    assert probe("net", "read", str(state_dir / "identity" / "device.json")) == "probe read: refused Permission denied"


def test_net_worker_may_connect_only_to_the_gateway_port():
    assert probe("net", "connect", "22", options=("--connect-port", "18789")) == "probe connect: refused Permission denied"


def test_probes_are_allowed_without_the_protection(tmp_path):
    # The death tests above fail if the protection is removed: the same probes succeed.
    assert probe("net", "read", "/etc/hosts") == "probe read: allowed"
    unconfined = ("--unconfined", "landlock", "--unconfined", "seccomp", "--unconfined", "user")
    target = tmp_path / "written"
    assert probe("net", "write", str(target), options=unconfined) == "probe write: allowed"
    assert target.exists()
    assert probe("net", "fork", options=unconfined) == "probe fork: allowed"


# ------------------------------------------------------------------ death tests (files worker, issue 20)

@pytest.fixture
def public_dir():
    """A folder every user can reach (pytest's tmp_path is root's 0700): the probes run as nobody."""
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="openclaw-files-probe-", dir="/tmp")
    os.chmod(path, 0o777)
    yield __import__("pathlib").Path(path)
    shutil.rmtree(path, ignore_errors=True)


def files_probe(mode, *words, root=None):
    options = ("--files-mode", mode) + (("--files-root", str(root)) if root else ())
    return probe("files", *words, options=options)


def test_a_listing_files_worker_reads_directories_and_nothing_else(public_dir):
    tmp_path = public_dir
    assert files_probe("list", "read", "/etc") == "probe read: allowed"
    assert files_probe("list", "read", "/etc/hosts") == "probe read: refused Permission denied"
    for target in (tmp_path / "x", "/tmp/openclaw-files-probe"):
        assert files_probe("list", "write", str(target)) == "probe write: refused Permission denied"
        assert not os.path.exists(target)
    assert files_probe("list", "mkdir", str(tmp_path / "d")) == "probe mkdir: refused Permission denied"
    assert files_probe("list", "execve") == "probe execve: refused Operation not permitted"
    assert files_probe("list", "fork") == "probe fork: refused Operation not permitted"
    assert files_probe("list", "connect", "22") == "probe connect: refused Permission denied"


def test_a_staging_files_worker_writes_only_beneath_the_uploads_root(public_dir):
    tmp_path = public_dir
    root = tmp_path / "uploads"
    root.mkdir(mode=0o1777)
    root.chmod(0o1777)
    assert files_probe("stage", "mkdir", str(root / "openclaw-terminal-upload-probe"), root=root) == "probe mkdir: allowed"
    assert files_probe("stage", "write", str(tmp_path / "outside"), root=root) == "probe write: refused Permission denied"
    assert not (tmp_path / "outside").exists()
    assert files_probe("stage", "read", "/etc/hosts", root=root) == "probe read: refused Permission denied"
    (root / "kept").write_text("x")
    assert files_probe("stage", "unlink", str(root / "kept"), root=root) == "probe unlink: refused Permission denied"
    assert files_probe("stage", "execve", root=root) == "probe execve: refused Operation not permitted"


def test_a_clean_up_files_worker_removes_only_beneath_the_uploads_root(public_dir):
    tmp_path = public_dir
    root = tmp_path / "uploads"
    root.mkdir()
    root.chmod(0o777)  # no sticky bit: only Landlock decides
    (root / "old").write_text("x")
    (root / "old").chmod(0o666)
    (tmp_path / "outside").write_text("x")
    (tmp_path / "outside").chmod(0o666)
    assert files_probe("sweep", "unlink", str(tmp_path / "outside"), root=root) == "probe unlink: refused Permission denied"
    assert (tmp_path / "outside").exists()
    assert files_probe("sweep", "write", str(root / "new"), root=root) == "probe write: refused Permission denied"
    assert files_probe("sweep", "unlink", str(root / "old"), root=root) == "probe unlink: allowed"
    assert not (root / "old").exists()


def test_a_files_worker_whose_confinement_the_kernel_denies_never_gets_the_request(make_gateway, nodes, state_dir, tmp_path):
    """The Supervisor checks the files worker's report against /proc before it writes the
    request: a stand-in that claims every step but has no seccomp filter gets nothing."""
    received = tmp_path / "received"
    report = {"entries": [{"step": step, "state": "active"} for step in
                          ("user", "capabilities", "no-new-privs", "landlock", "seccomp")]}
    script = tmp_path / "fake-files"
    script.write_text("#!/bin/sh\n"
                      f"printf '%s\\n' '{json.dumps({'confinement': report, 'ok': True})}'\n"
                      f"cat > '{received}'\n"
                      "printf '%s\\n' '{\"ok\":true,\"payloadJSON\":\"{}\"}'\n")
    script.chmod(0o755)
    tmp_path.chmod(0o755)
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw) + ["--files-worker-path", str(script)])
    gw.wait_for_hello(timeout=30)
    result = gw.invoke("fs.listDir", {"path": "/"})
    assert result["ok"] is False
    assert result["error"] == {"code": "UNAVAILABLE",
                               "message": "files worker claims a seccomp filter but the kernel shows Seccomp: 0"}
    assert not received.exists() or received.read_text() == ""
    node.wait_log(re.escape("files worker claims a seccomp filter but the kernel shows Seccomp: 0; its request is refused"))


# ------------------------------------------------------------------ what the kernel shows

def test_running_workers_are_confined_as_the_kernel_reports(running):
    _, node = running
    net = status(node.worker_pid("net"))
    execw = status(node.worker_pid("exec"))
    for fields in (net, execw):
        assert fields["Seccomp"] == "2"
        assert fields["NoNewPrivs"] == "1"
        assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    if IS_ROOT:
        assert int(net["CapBnd"], 16) == 0
        assert net["Uid"].split()[0] != "0"
    node.wait_log(r'msg="net worker ready".*landlock=active.*seccomp=active')


def test_net_worker_holds_nothing_from_the_state_dir(running, state_dir):
    _, node = running
    pid = node.worker_pid("net")
    targets = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    assert not [t for t in targets if t.startswith(str(state_dir))], targets


def test_exec_worker_has_no_tcp_socket(running):
    _, node = running
    pid = node.worker_pid("exec")
    inodes = {re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}")).group(1)
              for fd in os.listdir(f"/proc/{pid}/fd") if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")}
    tcp = set()
    for table in ("tcp", "tcp6"):
        for line in open(f"/proc/{pid}/net/{table}").readlines()[1:]:
            tcp.add(line.split()[9])
    assert inodes and not inodes & tcp


# ------------------------------------------------------------------ commands under the ExecWorker filter

SYSCALLS = r"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return 0 if result >= 0 else ctypes.get_errno()
print(json.dumps({
    "unshare": errno_of(libc.unshare(0x10000000)),
    "mount": errno_of(libc.mount(None, b"/nonexistent-openclaw", b"tmpfs", 0, None)),
    "ptrace": errno_of(libc.ptrace(0, 0, None, None)),
    "bpf": errno_of(libc.syscall(321, 0, None, 0)),
    "keyctl": errno_of(libc.syscall(250, 0, -1, 0, 0, 0)),
}))
"""


def run_syscalls(gw):
    result = gw.invoke("system.run", {"command": ["python3", "-c", SYSCALLS]})
    payload = json.loads(result["payloadJSON"])
    assert payload["success"], payload
    return json.loads(payload["stdout"])


def write_full_approvals(state_dir):
    (state_dir / "exec-approvals.json").write_text(json.dumps({"version": 1, "defaults": {"security": "full", "ask": "off"}}))


def test_commands_get_eperm_for_kernel_attack_surface(make_gateway, nodes, state_dir):
    write_full_approvals(state_dir)
    gw = make_gateway(auto_approve=True)
    nodes(state_dir, gateway_args(gw))
    gw.wait_for_hello(timeout=20)
    assert run_syscalls(gw) == {"unshare": 1, "mount": 1, "ptrace": 1, "bpf": 1, "keyctl": 1}


@pytest.mark.skipif(not IS_ROOT, reason="the control needs root's capabilities to tell seccomp's EPERM apart")
def test_without_the_filter_the_same_calls_are_not_eperm(make_gateway, nodes, state_dir):
    write_full_approvals(state_dir)
    gw = make_gateway(auto_approve=True)
    nodes(state_dir, gateway_args(gw) + ["--unconfined", "exec:seccomp", "--unconfined", "exec:capabilities"])
    gw.wait_for_hello(timeout=20)
    results = run_syscalls(gw)
    assert results["ptrace"] != 1 and results["keyctl"] != 1 and results["mount"] != 1 and results["bpf"] != 1, results


def test_ordinary_commands_still_work(make_gateway, nodes, state_dir, tmp_path):
    write_full_approvals(state_dir)
    gw = make_gateway(auto_approve=True)
    nodes(state_dir, gateway_args(gw))
    gw.wait_for_hello(timeout=20)
    work = tmp_path / "work"
    work.mkdir()
    (work / "f.txt").write_text("one\ntwo\nthree\n")
    script = f"ls {work} && cat {work}/f.txt | grep t | wc -l && sleep 0.1 && echo done"
    payload = json.loads(gw.invoke("system.run", {"command": ["/bin/sh", "-c", script]})["payloadJSON"])
    assert payload["success"] and payload["stdout"] == "f.txt\n2\ndone\n", payload


# ------------------------------------------------------------------ failures and opt-outs

@pytest.mark.skipif(not IS_ROOT, reason="the user step only applies when started as root")
def test_a_failed_step_stops_the_node_with_71_naming_it(nodes, state_dir):
    node = nodes(state_dir, ["--port", "9", "--net-user", "no-such-user-openclaw"])
    assert node.wait_exit(timeout=15) == 71
    assert ("net worker could not apply confinement step user: no such user: no-such-user-openclaw; "
            "refusing to run without it (to accept that risk: --unconfined net:user") in node.log


def test_unknown_unconfined_step_is_a_usage_error(nodes, state_dir):
    node = nodes(state_dir, ["--port", "9", "--unconfined", "net:everything"])
    assert node.wait_exit(timeout=10) == 64
    assert "--unconfined net:everything: expected [net:|exec:|browser:|files:|mcp:]<step>" in node.log


def test_doctor_reports_each_worker():
    out = subprocess.run([binary("openclaw-node"), "doctor", "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True
    net = {e["step"]: e["state"] for e in report["workers"]["net"]}
    execw = {e["step"]: e["state"] for e in report["workers"]["exec"]}
    assert net == {"user": "active" if IS_ROOT else "not-needed", "capabilities": "active", "no-new-privs": "active",
                   "landlock": "active", "seccomp": "active"}
    assert execw["seccomp"] == "active" and execw["no-new-privs"] == "active" and execw["landlock"] == "not-needed"
    files = {e["step"]: e["state"] for e in report["workers"]["files"]}
    assert files == {"user": "active" if IS_ROOT else "not-needed", "capabilities": "active", "no-new-privs": "active",
                     "landlock": "active", "seccomp": "active"}
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["confinement.files"]["status"] == "ok"
    mcp = {e["step"]: e["state"] for e in report["workers"]["mcp"]}
    assert mcp["seccomp"] == "active" and mcp["no-new-privs"] == "active" and mcp["landlock"] == "not-needed"
    assert checks["confinement.mcp"]["status"] == "ok"


# ------------------------------------------------------------------ a compromised NetWorker

@pytest.mark.parametrize("mode, approvals, logged", [
    ("invoke-approved-no-plan", {"security": "allowlist", "ask": "on-miss"}, 'reason="systemRunPlan invalid"'),
    ("invoke-forged-plan", {"security": "deny", "ask": "off"}, 'reason="security=deny"'),
    ("invoke-plain", {"security": "deny", "ask": "off"}, 'reason="security=deny"'),
    ("invoke-plain", {"security": "allowlist", "ask": "on-miss"}, "reason=approval-required"),
])
def test_forged_invokes_run_nothing(tmp_path, nodes, state_dir, mode, approvals, logged):
    (state_dir / "exec-approvals.json").write_text(json.dumps({"version": 1, "defaults": approvals}))
    marker = tmp_path / "must-not-exist"
    node = nodes(state_dir, ["--port", "9"], net_worker=forged_worker(tmp_path, mode, str(marker)))
    node.wait_log(logged, timeout=15)
    node.wait_log(r'forged worker received: (?=.*"type":"invoke.result")(?=.*"ok":false)', timeout=10)
    assert not marker.exists()
