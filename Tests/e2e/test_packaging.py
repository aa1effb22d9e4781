"""Issue 6: the .deb and the units it ships."""
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, ROOT


@pytest.fixture(scope="module")
def deb_root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    built = subprocess.run([str(ROOT / "packaging" / "build-deb"), "--bin-dir", str(BUILD), "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    deb = Path(built.stdout.strip())
    assert deb.name == "openclaw-node_0.1.0_" + subprocess.check_output(["dpkg", "--print-architecture"], text=True).strip() + ".deb"
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Depends"], capture_output=True, text=True, check=True)
    assert "Package: openclaw-node" in info.stdout and "libseccomp2" in info.stdout
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_deb_layout(deb_root):
    expected = {
        "usr/bin/openclaw-node": 0o755,
        "usr/lib/systemd/system/openclaw-node.service": 0o644,
        "usr/lib/systemd/user/openclaw-node.service": 0o644,
        "usr/lib/sysusers.d/openclaw-node.conf": 0o644,
        "usr/lib/tmpfiles.d/openclaw-node.conf": 0o644,
        "usr/share/doc/openclaw-node/README.md": 0o644,
        "usr/share/doc/openclaw-node/security.md": 0o644,
        "usr/share/doc/openclaw-node/operations.md": 0o644,
    }
    for relative, wanted in expected.items():
        path = deb_root / relative
        assert path.is_file(), relative
        assert mode(path) == wanted, (relative, oct(mode(path)))
    users = (deb_root / "usr/lib/sysusers.d/openclaw-node.conf").read_text()
    assert "u openclaw-net " in users and "u openclaw-browser " in users
    # Issue 14: commands run as `openclaw`, whose home is in the (searchable) state dir.
    assert 'u openclaw - "OpenClaw node commands" /var/lib/openclaw-node/home /usr/sbin/nologin' in users
    dirs = (deb_root / "usr/lib/tmpfiles.d/openclaw-node.conf").read_text()
    assert "d /var/lib/openclaw-node 0711 root root" in dirs
    assert "d /var/lib/openclaw-node/home 0700 openclaw openclaw" in dirs
    unit = (deb_root / "usr/lib/systemd/system/openclaw-node.service").read_text()
    assert "ProtectHome=yes\n" in unit and "--exec-user" not in unit


def test_the_openclaw_shim_forwards_node_commands(deb_root, tmp_path):
    """Issue 18: gateways verify a new node over SSH with `openclaw node identity --json`."""
    shim = deb_root / "usr/bin/openclaw"
    assert shim.is_symlink() and os.readlink(shim) == "../lib/openclaw-node/openclaw"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OPENCLAW_STATE_DIR": str(tmp_path / "state")}
    out = subprocess.run([str(shim), "node", "identity", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and out.stderr.startswith("no node device identity found"), out.stderr
    (tmp_path / "state").mkdir(mode=0o700)
    subprocess.run([str(deb_root / "usr/bin/openclaw-node"), "run", "--port", "1", "--commands", "none"], env=env,
                   capture_output=True, timeout=30)
    out = subprocess.run([str(shim), "node", "identity", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and set(json.loads(out.stdout)) == {"deviceId", "publicKey"}, out.stderr
    out = subprocess.run([str(shim), "agent", "--help"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "only 'openclaw node ...'" in out.stderr


def test_one_binary_is_every_worker(deb_root):
    """Issue 16: the .deb ships one executable, as `swift build` makes it; the Supervisor
    re-executes it under a worker's name (argv[0])."""
    executables = sorted(str(p.relative_to(deb_root)) for p in deb_root.rglob("*")
                         if p.is_file() and not p.is_symlink() and p.stat().st_mode & 0o111 and "DEBIAN" not in p.parts)
    assert executables == ["usr/bin/openclaw-node", "usr/lib/openclaw-node/openclaw"], executables
    assert (deb_root / "usr/lib/openclaw-node/openclaw").read_text().startswith("#!/bin/sh\n"), "the shim is a script"
    assert not (deb_root / "usr/libexec").exists()
    # Started under a worker's name, the binary is that worker (it confines itself and reports).
    out = subprocess.run(["openclaw-node-exec", "--confinement-report"], executable=str(deb_root / "usr/bin/openclaw-node"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert {entry["step"] for entry in json.loads(out.stdout)["entries"]} == {"user", "capabilities", "no-new-privs", "landlock", "seccomp"}


def test_installed_binary_runs_its_workers(deb_root):
    out = subprocess.run([str(deb_root / "usr/bin/openclaw-node"), "doctor", "--json"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr + out.stdout
    assert json.loads(out.stdout)["ok"] is True


def test_packaged_system_unit(deb_root):
    text = (deb_root / "usr/lib/systemd/system/openclaw-node.service").read_text()
    assert "ExecStart=/usr/bin/openclaw-node run --host 127.0.0.1 --port 18789 --net-user openclaw-net --browser-user openclaw-browser\n" in text
    assert "EnvironmentFile=-/var/lib/openclaw-node/node.systemd.env\n" in text
    assert "TOKEN" not in text and "PASSWORD" not in text


def test_system_unit_security_score_is_ok(deb_root):
    unit = deb_root / "usr/lib/systemd/system/openclaw-node.service"
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True, text=True)
    score = re.search(r"Overall exposure level for openclaw-node\.service: (\d+\.\d+)", out.stdout + out.stderr)
    assert score, out.stdout + out.stderr
    assert float(score.group(1)) <= 2.5, out.stdout
