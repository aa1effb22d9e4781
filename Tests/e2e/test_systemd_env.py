"""Self-test of systemd_env: a real systemd (user and system manager) in a private namespace."""
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

from systemd_env import (  # noqa: F401,F811  (systemd_user, systemd_system are pytest fixtures)
    SystemManager, UserManager, security_exposure, system_manager_available, systemd_system,
    systemd_user, user_manager_available, verify_unit)

SLEEPER = """\
[Unit]
Description=systemd_env self-test sleeper

[Service]
ExecStart=/bin/sleep 300
Restart=always
RestartSec=1

[Install]
WantedBy={target}
"""


def sleep300_processes() -> list[int]:
    """Every process on the machine (any namespace) running `/bin/sleep 300`: host pids."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes() == b"/bin/sleep\x00300\x00":
                    found.append(int(entry))
            except OSError:
                pass
    return found


def exercise_restart(m, target: str) -> None:
    """The common scenario: install, enable --now, kill -9, see systemd restart it, stop, disable,
    then end the manager and find nothing left."""
    unit = m.write_unit("e2e-sleeper.service", SLEEPER.format(target=target))
    m.systemctl("daemon-reload", check=True)
    m.systemctl("enable", "--now", "e2e-sleeper.service", check=True)
    assert (unit.parent / f"{target}.wants" / "e2e-sleeper.service").is_symlink()
    assert m.systemctl("is-active", "e2e-sleeper.service").stdout.strip() == "active"
    old = m.main_pid("e2e-sleeper.service")
    assert old > 0
    ours = {m.host_pid(old)}                        # host pids of this manager's sleepers
    assert m.processes()[m.host_pid(old)][1] == "/bin/sleep 300"

    killed = m.run(["kill", "-9", str(old)])        # a pid inside the namespace
    assert killed.returncode == 0, killed.stderr
    new = m.wait_for(lambda: (p := m.main_pid("e2e-sleeper.service")) not in (0, old) and p,
                     timeout=10, what="a restarted sleeper")
    ours.add(m.host_pid(new))
    assert m.systemctl("is-active", "e2e-sleeper.service").stdout.strip() == "active"
    assert m.show("e2e-sleeper.service", "NRestarts") == "1"
    assert "Main process exited, code=killed, status=9/KILL" in m.journal("e2e-sleeper.service")

    m.systemctl("stop", "e2e-sleeper.service", check=True)
    assert m.systemctl("is-active", "e2e-sleeper.service").stdout.strip() == "inactive"
    m.systemctl("enable", "--now", "e2e-sleeper.service", check=True)   # running again at stop()
    m.systemctl("disable", "e2e-sleeper.service", check=True)
    assert not (unit.parent / f"{target}.wants" / "e2e-sleeper.service").exists()
    ours.add(m.host_pid(m.main_pid("e2e-sleeper.service")))
    sleepers = [pid for pid, (_, cmd) in m.processes().items() if cmd == "/bin/sleep 300"]
    assert len(sleepers) == 1 and set(sleepers) <= set(sleep300_processes())

    cgroup = m.cgroup
    m.stop()
    assert m.processes() == {}
    # No `/bin/sleep 300` of ours is left anywhere on the machine (other test runs may have
    # their own, so match the host pids this manager's sleepers had).
    assert not ours & set(sleep300_processes()), "a sleeper outlived the manager"
    assert cgroup is not None and not cgroup.exists(), "the instance cgroup was not removed"


def test_user_manager_restarts_a_killed_service_and_leaves_nothing(systemd_user):
    m = systemd_user
    assert m.unit_dir == m.home / ".config" / "systemd" / "user"
    assert not str(m.unit_dir).startswith(os.path.expanduser("~/.config"))
    env = m.run(["sh", "-c", 'echo "$HOME $XDG_CONFIG_HOME $XDG_RUNTIME_DIR"; cat /proc/self/cgroup'])
    home, config, runtime = env.stdout.split("\n")[0].split()
    assert (home, config, runtime) == (str(m.home), str(m.config_home), "/run/user/0")
    assert "0::/user.slice/user-0.slice/session.scope" in env.stdout
    exercise_restart(m, "default.target")


def test_system_manager_restarts_a_killed_service_and_leaves_nothing(systemd_system):
    m = systemd_system
    host_units = sorted(os.listdir("/etc/systemd/system"))
    assert m.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert m.systemctl("is-system-running").stdout.strip() == "running"
    exercise_restart(m, "multi-user.target")
    assert sorted(os.listdir("/etc/systemd/system")) == host_units, "host /etc/systemd/system changed"
    assert (m.unit_dir / "e2e-sleeper.service").is_file()   # the units stay readable after stop()


def test_manager_restart_is_a_reboot_and_the_object_can_be_entered_again(tmp_path):
    ok, why = user_manager_available()
    if not ok:
        pytest.skip(why)
    manager = UserManager(tmp_path / "user")        # a given root is kept between entries
    with manager as m:
        m.write_unit("e2e-sleeper.service", SLEEPER.format(target="default.target"))
        m.systemctl("daemon-reload", check=True)
        m.systemctl("enable", "e2e-sleeper.service", check=True)   # enabled, not started
        assert m.systemctl("is-active", "e2e-sleeper.service").stdout.strip() == "inactive"
        first_pid = m.pid
        m.restart()                                      # same files, fresh namespace
        assert m.pid != first_pid
        assert m.systemctl("is-active", "e2e-sleeper.service").stdout.strip() == "active"
        sleeper = m.host_pid(m.main_pid("e2e-sleeper.service"))
    assert not manager.running and manager.pid is None
    assert sleeper not in sleep300_processes()
    with manager as m:                                   # entered again: boots again
        assert m.systemctl("is-active", "e2e-sleeper.service").stdout.strip() == "active"
        m.systemctl("disable", "--now", "e2e-sleeper.service", check=True)
    with manager as m:
        assert m.systemctl("is-active", "e2e-sleeper.service").stdout.strip() == "inactive"


def test_unit_with_a_binary_outside_reaches_a_loopback_server_outside(systemd_user, tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(15)
    received = []

    def accept():
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(100))
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    script = tmp_path / "client.py"               # lives on the shared filesystem
    script.write_text("import socket, sys\n"
                      "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
                      "s.sendall(b'hello from a unit'); print('sent')\n")
    systemd_user.write_unit("e2e-client.service", f"[Service]\nType=oneshot\n"
                            f"ExecStart={sys.executable} {script} {server.getsockname()[1]}\n")
    systemd_user.systemctl("daemon-reload", check=True)
    started = systemd_user.systemctl("start", "e2e-client.service")
    assert started.returncode == 0, systemd_user.journal("e2e-client.service")
    thread.join(15)
    server.close()
    assert received == [b"hello from a unit"]
    systemd_user.wait_journal("e2e-client.service", r"\bsent$")


def test_systemd_analyze_verify_and_security_on_unit_files(tmp_path):
    good = tmp_path / "good.service"
    good.write_text(SLEEPER.format(target="multi-user.target"))
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nExecStart=/bin/sleep 300\nRestart=sometimes\nFrobnicate=yes\n")
    for user in (False, True):
        ok = verify_unit(good, user=user)
        assert (ok.returncode, ok.stderr) == (0, ""), ok
        ko = verify_unit(bad, user=user)
        assert ko.returncode != 0
        assert "Unknown key 'Frobnicate'" in ko.stderr and "restart specifier" in ko.stderr, ko.stderr
        score, report = security_exposure(good, user=user)
        assert 9.0 < score <= 10.0, report                       # an unhardened unit is UNSAFE
    hardened = tmp_path / "hardened.service"
    hardened.write_text("[Service]\nExecStart=/bin/sleep 300\nDynamicUser=yes\nProtectSystem=strict\n"
                        "ProtectHome=yes\nPrivateDevices=yes\nPrivateNetwork=yes\nNoNewPrivileges=yes\n"
                        "CapabilityBoundingSet=\nSystemCallFilter=@system-service\n")
    assert security_exposure(hardened)[0] < security_exposure(good)[0]


def test_systemd_analyze_inside_the_managers(systemd_user, tmp_path):
    ok, why = system_manager_available()
    if not ok:
        pytest.skip(why)
    unit = systemd_user.write_unit("e2e-sleeper.service", SLEEPER.format(target="default.target"))
    r = systemd_user.analyze("verify", "--man=no", "--recursive-errors=no", str(unit))
    assert (r.returncode, r.stderr) == (0, ""), r
    with SystemManager(tmp_path / "system") as system:
        system.write_unit("e2e-sleeper.service", SLEEPER.format(target="multi-user.target"))
        r = system.analyze("verify", "--man=no", "--recursive-errors=no",
                           "/etc/systemd/system/e2e-sleeper.service")
        assert (r.returncode, r.stderr) == (0, ""), r


def test_system_installs_stay_in_the_namespace(systemd_system):
    """Users, /etc and /var/lib changes of an installer land in the overlays, not on the host."""
    m = systemd_system
    created = m.run(["systemd-sysusers", "--inline", "u e2e-svc - \"systemd_env self-test\""])
    assert created.returncode == 0, created.stderr
    m.write_unit("e2e-state.service", "[Service]\nType=oneshot\nUser=e2e-svc\n"
                 "StateDirectory=e2e-state\nConfigurationDirectory=e2e-state\n"
                 "ExecStart=/bin/sh -c 'id -un > /var/lib/e2e-state/who'\n")
    m.systemctl("daemon-reload", check=True)
    started = m.systemctl("start", "e2e-state.service")
    assert started.returncode == 0, m.journal("e2e-state.service")
    assert m.run(["cat", "/var/lib/e2e-state/who"]).stdout == "e2e-svc\n"
    assert (m.overlay_upper("/var") / "lib/e2e-state/who").read_text() == "e2e-svc\n"
    assert (m.overlay_upper("/etc") / "e2e-state").is_dir()
    assert "e2e-svc:" in (m.overlay_upper("/etc") / "passwd").read_text()
    assert not os.path.exists("/var/lib/e2e-state") and not os.path.exists("/etc/e2e-state")
    assert "e2e-svc:" not in Path("/etc/passwd").read_text()
