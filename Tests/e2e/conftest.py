"""End-to-end harness: the real openclaw-node binaries against the project's test gateway."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "gateway"))

from openclaw_test_gateway import TestGateway  # noqa: E402

BUILD = Path(os.environ.get("OPENCLAW_NODE_BUILD", ROOT / ".build" / "debug"))


def binary(name: str) -> str:
    path = BUILD / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `swift build` first")
    return str(path)


class Node:
    """One `openclaw-node run` process with its log captured line by line.

    Run as root, the node would run commands as `openclaw` or `nobody` (issue 14), and most
    tests run commands in pytest's private temporary directories: unless a test names an exec
    user or asks for `default_exec_user`, they opt in to `--exec-user root` explicitly. The tests
    of the default identity are in test_exec_identity.py."""

    def __init__(self, state_dir: Path, args=(), env=None, net_worker=None, exec_worker=None, default_exec_user=False):
        self.state_dir = state_dir
        self.args = list(args)
        if os.geteuid() == 0 and not default_exec_user and "--exec-user" not in self.args:
            self.args += ["--exec-user", "root"]
        self.env = dict(os.environ)
        for key in ("OPENCLAW_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_PASSWORD", "OPENCLAW_CONFIG_PATH",
                    "OPENCLAW_ALLOW_INSECURE_PRIVATE_WS"):
            self.env.pop(key, None)
        self.env["OPENCLAW_STATE_DIR"] = str(state_dir)
        self.env.update(env or {})
        self.net_worker = net_worker
        self.exec_worker = exec_worker
        self.lines: list[str] = []
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> "Node":
        argv = [binary("openclaw-node"), "run", *self.args]
        if self.net_worker:
            argv += ["--net-worker-path", self.net_worker]
        if self.exec_worker:
            argv += ["--exec-worker-path", self.exec_worker]
        self.proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        return self

    def _pump(self):
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    @property
    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._lock:
            return sum(1 for line in self.lines if regex.search(line))

    def wait_log(self, pattern: str, timeout: float = 15.0, count: int = 1) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                hits = [line for line in self.lines if regex.search(line)]
            if len(hits) >= count:
                return hits[count - 1]
            if self.proc and self.proc.poll() is not None and len(hits) < count:
                time.sleep(0.2)
                with self._lock:
                    hits = [line for line in self.lines if regex.search(line)]
                if len(hits) >= count:
                    return hits[count - 1]
                raise AssertionError(f"node exited ({self.proc.returncode}) before /{pattern}/:\n{self.log}")
            time.sleep(0.05)
        raise AssertionError(f"no /{pattern}/ (x{count}) within {timeout} s:\n{self.log}")

    def children(self) -> dict[int, str]:
        """pid -> process name (argv[0]) of the Supervisor's direct children: the role a
        worker runs as (all of them execute the one binary)."""
        pids = []
        for task in Path(f"/proc/{self.pid}/task").glob("*"):
            try:
                pids += map(int, (task / "children").read_text().split())
            except (FileNotFoundError, ProcessLookupError):
                pass
        result = {}
        for pid in pids:
            try:
                result[pid] = os.path.basename(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
            except OSError:
                pass
        return result

    def worker_pid(self, kind: str, timeout: float = 10.0) -> int:
        """pid of the live worker `kind` ('net' or 'exec') as the log last announced it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                lines = [line for line in self.lines if "msg=\"worker started\"" in line and f"worker={kind}" in line]
            if lines:
                pid = int(re.search(r"pid=(\d+)", lines[-1]).group(1))
                if pid in self.children():
                    return pid
            time.sleep(0.05)
        raise AssertionError(f"no live {kind} worker:\n{self.log}")

    def wait_exit(self, timeout: float = 10.0) -> int:
        assert self.proc
        return self.proc.wait(timeout=timeout)

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode if self.proc else 0


@pytest.fixture
def state_dir(tmp_path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def make_gateway():
    """Starts test gateways for a test; at the end, every frame the node sent must have been
    schema-valid (protocol.schema.json), whatever else the test checked."""
    started: list[TestGateway] = []

    def make(**kwargs) -> TestGateway:
        gw = TestGateway(**kwargs).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.close()
    for gw in started:
        assert gw.schema_violations == [], gw.schema_violations


@pytest.fixture
def gateway(make_gateway):
    return make_gateway(tick_interval_ms=30000)


@pytest.fixture
def nodes():
    """Starts nodes for a test and makes sure none outlives it."""
    started: list[Node] = []

    def make(*args, **kwargs) -> Node:
        node = Node(*args, **kwargs).start()
        started.append(node)
        return node

    yield make
    for node in started:
        try:
            node.stop(signal.SIGKILL)
        except Exception:
            pass


def forged_worker(tmp_path: Path, mode: str, param: str = "") -> str:
    """A worker executable that runs the test-only forged worker in `mode` (with the
    Supervisor's confinement arguments passed on)."""
    script = tmp_path / f"forged-{mode}"
    script.write_text(f"#!/bin/sh\nexec '{binary('ForgedWorker')}' {mode} '{param}' \"$@\"\n")
    script.chmod(0o755)
    return str(script)


def worker_argv(worker: str, *args: str) -> list[str]:
    """The argv that starts the one binary as `worker` (run it with executable=binary("openclaw-node")):
    the Supervisor starts its workers this way, with the role's name as argv[0]."""
    return [f"openclaw-node-{worker}", *args]


def probe(worker: str, *words: str, options=("--connect-port", "9")) -> str:
    """Runs a worker binary confined as under `run`, then one forbidden action (debug builds)."""
    out = subprocess.run(worker_argv(worker, *options, "--probe", *words), executable=binary("openclaw-node"),
                         capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    return out.stdout.strip()


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout=10.0, what="condition"):
    """Polls `predicate` every 50 ms; returns its first truthy value, or fails naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


def gateway_args(gw: TestGateway) -> list[str]:
    return ["--host", "127.0.0.1", "--port", str(gw.port)]
