"""Issue 14 finding 1: commands never run as uid 0 by default when the node runs as root."""
import json
import os
import pwd
import tempfile

import pytest

from conftest import gateway_args
from test_doctor import check, doctor
from test_system_run import approvals_file, run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the exec user applies when the node runs as root")


def dedicated_exists():
    try:
        pwd.getpwnam("openclaw")
        return True
    except KeyError:
        return False


@pytest.fixture
def root_file():
    """A root-owned, world-readable file outside every private directory."""
    fd, path = tempfile.mkstemp(prefix="openclaw-e2e-rootfile-", dir="/tmp")
    os.write(fd, b"root's\n")
    os.close(fd)
    os.chmod(path, 0o644)
    yield path
    os.unlink(path)


def start(make_gateway, nodes, state_dir, *args):
    (state_dir / "exec-approvals.json").write_text(json.dumps(approvals_file()))
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw) + list(args), default_exec_user=True)
    gw.wait_for_hello(timeout=20)
    return gw, node


def test_without_exec_user_commands_run_as_the_dedicated_user_or_nobody(make_gateway, nodes, state_dir, root_file):
    gw, node = start(make_gateway, nodes, state_dir)
    expected = "openclaw" if dedicated_exists() else "nobody"
    user = pwd.getpwnam(expected)
    _, payload = run(gw, {"command": ["/bin/sh", "-c", 'id -un; id -u; echo "$HOME $USER"']})
    assert payload["stdout"].split("\n")[:3] == [expected, str(user.pw_uid), f"{user.pw_dir} {expected}"]
    # Root's files are out of reach: the write fails and the file is unchanged.
    _, payload = run(gw, {"command": ["/bin/sh", "-c", f"echo pwned >> {root_file}"]})
    assert payload["exitCode"] != 0 and "Permission denied" in payload["stderr"]
    assert open(root_file).read() == "root's\n"
    if expected == "nobody":
        line = node.wait_log("there is no user openclaw: commands run as nobody")
        assert "useradd --system --user-group --home-dir /var/lib/openclaw-node/home" in line
    node.wait_log(r'msg="exec worker ready".*uid=%d user=active' % user.pw_uid)


def test_exec_user_root_is_an_explicit_logged_opt_in(make_gateway, nodes, state_dir, root_file):
    gw, node = start(make_gateway, nodes, state_dir, "--exec-user", "root")
    line = node.wait_log(r"commands run as uid 0 \(--exec-user root\)")
    assert "level=warning" in line and "authorized_keys" in line
    _, payload = run(gw, {"command": ["/usr/bin/id", "-u"]})
    assert payload["stdout"] == "0\n"


def test_doctor_warns_about_the_exec_user(state_dir):
    _, report = doctor(state_dir, "--port", "9", "--skip-self-test", "--exec-user", "root")
    exec_user = check(report, "exec-user")
    assert exec_user["status"] == "warn" and exec_user["detail"].startswith("commands run as uid 0 (--exec-user root)")
    assert exec_user["fix"].startswith("drop --exec-user root")
    _, report = doctor(state_dir, "--port", "9", "--skip-self-test")
    exec_user = check(report, "exec-user")
    if dedicated_exists():
        assert exec_user["status"] == "ok" and exec_user["detail"].startswith("commands run as openclaw (uid ")
    else:
        assert exec_user["status"] == "warn"
        assert exec_user["detail"].startswith("there is no user openclaw: commands run as nobody, which other services and")
        assert exec_user["fix"].startswith("create the dedicated user: useradd --system")
