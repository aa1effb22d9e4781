"""A real systemd, user or system manager, in a private namespace, for end-to-end tests.

The machines this project runs on (Debian 12, root, no systemd as PID 1) can still run a real
systemd: each manager here lives in its own mount + PID + cgroup + UTS namespace, started with
`unshare`, and the test reaches it with `nsenter`. The network namespace and the filesystem are
shared (apart from the directories listed below), so a unit's ExecStart= binary from the build
tree runs as is and a unit can connect to a loopback server the test started outside.

    with UserManager() as m:                 # `systemd --user`, units in m.unit_dir
        m.write_unit("demo.service", "...")
        m.systemctl("daemon-reload", check=True)
        m.systemctl("enable", "--now", "demo.service", check=True)
        m.run(["openclaw-node", "status"])   # any command, inside, with the user-session env
        print(m.journal("demo.service"))
    # leaving the block ends every process of the namespace and checks none survived

    with SystemManager() as m:               # `systemd --system` booted as PID 1
        ...                                  # unit_dir is /etc/systemd/system inside

In pytest: the fixtures `systemd_user` / `systemd_system` (import them into the test module);
they skip, with the reason, only where the machine cannot run a namespaced systemd at all
(`user_manager_available()` / `system_manager_available()`). For unit files without a manager:
`verify_unit()` and `security_exposure()` (systemd-analyze verify / security --offline).

What is private to the namespace, and why (each point is a pitfall met while building this):

* cgroups. Started as in the naive recipe (unshare --mount --pid, tmpfs on /run, systemd
  --user), the manager takes the cgroup it finds itself in as its own: here the host's root. It
  then creates app.slice/init.scope at the top of every v1 hierarchy and moves itself out of the
  sandbox's memory cgroup, two managers at once share app.slice/<unit>.service, and systemd as
  PID 1 even mounts every v1 controller. So each instance gets a cgroup of its own in the host's
  cgroup2 hierarchy (`<own cgroup>/openclaw-e2e-<pid>-<n>-<boot id>`), the namespace's first
  process joins it before `unshare --cgroup`, and inside the namespace a fresh cgroup2-only
  mount replaces /sys/fs/cgroup: systemd sees a pure unified hierarchy rooted at that cgroup and
  never touches a v1 one. On this machine's hybrid setup no controller is delegated there, so
  MemoryMax=, CPUQuota= and the like load but are not enforced. run() puts its processes in a
  leaf cgroup too (user: /user.slice/user-0.slice/session.scope, like a login session).
* Kernel-wide knobs: /proc/sys, /proc/sysrq-trigger and /sys are read-only inside (as in
  systemd-nspawn). systemd as PID 1 writes kernel.core_pattern and fs.* sysctls, which are
  global; those writes now fail harmlessly.
* /run is a private tmpfs: XDG_RUNTIME_DIR=/run/user/0, /run/systemd, journald's volatile
  journal. Mounts are made with `mount -n`: otherwise util-linux creates /run/mount/utab on the
  host's /run before the private one is in place.
* Boot id: /proc/sys/kernel/random/boot_id inside is a fresh random id, so the PrivateTmp=
  directories systemd makes on the shared /tmp and /var/tmp are named
  systemd-private-<that id>-* and stop() removes exactly this instance's ones.
* Journal: a journald of its own (user mode: started next to the manager; system mode: a unit)
  with Storage=volatile and ReadKMsg=no; there is no /dev/log socket (its Symlinks=/dev/log
  would land in the host's /dev, which is shared).
* System manager unit path. SYSTEMD_UNIT_PATH is /run/systemd/system.control,
  /run/systemd/transient, /etc/systemd/system, /run/systemd/system and a curated directory: the
  plain targets, journald and the system D-Bus. The usual /lib/systemd/system is left out on
  purpose: its sysinit.target pulls systemd-tmpfiles-setup (which would empty the shared /tmp at
  "boot"), udev-trigger, sysctl, modules-load, random-seed..., all acting on the real machine.
  Generators are off (SYSTEMD_GENERATOR_PATH is an empty directory), `container=openclaw-e2e`
  tells systemd it is in a container and /dev/console is a log file (`manager_log()`).
* System manager files. /etc and /var are overlayfs mounts whose changes land in
  `overlay_upper("/etc")` / `overlay_upper("/var")` (users added by systemd-sysusers,
  StateDirectory=, /etc/<app>/...), and /etc/systemd/system is an empty per-instance directory
  bind-mounted on top: an installer that writes /etc/systemd/system/x.service and runs
  `systemctl enable --now x` works unchanged, the test reads the result in `unit_dir`, and the
  host's /etc/systemd/system is never written. (Writing units to /run/systemd/system instead
  would not test what `install` really does, and loses them at each restart().)
* The user manager gets HOME=<root>/home and XDG_CONFIG_HOME=<root>/home/.config, so its units
  are in <root>/home/.config/systemd/user, never in the real ~/.config.
* Stopping. stop() first asks the manager to stop its units (`systemctl --user exit`; for the
  system manager `systemctl stop` of every active service/socket/timer/path unit; never
  `poweroff`/`exit`, which run systemd-shutdown), for at most stop_timeout seconds. It then
  SIGKILLs the namespace's PID 1 through a pidfd, which makes the kernel kill every process in
  the namespace, checks that no process of that PID namespace is left (raising if one is) and
  removes the instance cgroup.
* If the test process dies, nothing goes on running: `unshare` gets SIGKILL when its parent
  dies (PR_SET_PDEATHSIG) and `unshare --kill-child` passes that on to the namespace's PID 1.
  The next start() removes the cgroups, PrivateTmp= and temporary directories such dead
  processes left.
* Entering: `nsenter --target <pid> --mount --pid --cgroup --uts --wd=<cwd>`. Without --wd the
  command starts in / (setns into a mount namespace resets the working directory). Talking to
  the manager from outside through /proc/<pid>/root/run/user/0 does not work: systemctl reports
  "offline" and "Transport endpoint is not connected". A timed-out run() kills its whole
  process group, since killing nsenter alone would leave the command running inside.
"""
from __future__ import annotations

import ctypes
import functools
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

SYSTEMD = "/lib/systemd/systemd"
JOURNALD = "/lib/systemd/systemd-journald"
SYSTEM_UNIT_DIR = "/lib/systemd/system"

# Targets the system manager may load from /lib/systemd/system: each only orders or groups
# units and pulls in nothing that acts on the machine (their .wants/ directories are not read,
# since /lib/systemd/system is not in the unit path).
_SAFE_SYSTEM_UNITS = (
    "basic.target", "sysinit.target", "local-fs.target", "local-fs-pre.target", "swap.target",
    "sockets.target", "timers.target", "paths.target", "slices.target", "multi-user.target",
    "graphical.target", "network.target", "network-pre.target", "network-online.target",
    "nss-lookup.target", "nss-user-lookup.target", "remote-fs.target", "remote-fs-pre.target",
    "time-set.target", "time-sync.target", "shutdown.target", "umount.target", "final.target",
    "user.slice", "machine.slice",
    # The system D-Bus (package dbus): `systemctl start --wait`, busctl and anything else that
    # needs the full bus instead of systemd's private socket.
    "dbus.socket", "dbus.service",
)

# journald without the /dev/log socket (its Symlinks=/dev/log would land in the host's /dev)
# and without the audit socket.
_JOURNALD_SOCKET = """\
[Unit]
Description=Journal Socket
DefaultDependencies=no
Before=sockets.target

[Socket]
ListenDatagram=/run/systemd/journal/socket
ListenStream=/run/systemd/journal/stdout
PassCredentials=yes
PassSecurity=yes
ReceiveBuffer=8M
Service=systemd-journald.service
SocketMode=0666
Timestamping=us
"""

_JOURNALD_SERVICE = f"""\
[Unit]
Description=Journal Service
DefaultDependencies=no
Requires=systemd-journald.socket
After=systemd-journald.socket
Before=sysinit.target
IgnoreOnIsolate=yes

[Service]
Type=notify
ExecStart={JOURNALD}
Sockets=systemd-journald.socket
Restart=always
RestartSec=0
RuntimeDirectory=systemd/journal
RuntimeDirectoryPreserve=yes
StandardOutput=null
FileDescriptorStoreMax=4224
"""

_JOURNALD_CONF = """\
[Journal]
Storage=volatile
RuntimeMaxUse=32M
ReadKMsg=no
ForwardToSyslog=no
ForwardToWall=no
ForwardToConsole=no
"""

# Runs as PID 1 of the new namespace. Environment: OC_MODE (user|system), OC_STATE (state dir);
# for user mode the manager's HOME, XDG_CONFIG_HOME, XDG_RUNTIME_DIR...; for system mode
# OC_UNIT_PATH. $OC_STATE/mounts lists, in order, "overlay<TAB>upper<TAB>work<TAB>target" and
# "bind<TAB>source<TAB>target" mounts to make.
_SETUP_SCRIPT = r"""
set -euo pipefail
S="$OC_STATE"
say() { echo "[systemd_env] $*"; }

# Kernel-wide knobs read-only (systemd as PID 1 writes core_pattern and fs.* sysctls).
mount -n --bind /proc/sys /proc/sys
mount -n -o remount,bind,ro /proc/sys
if [ -e /proc/sysrq-trigger ]; then
    mount -n --bind /proc/sysrq-trigger /proc/sysrq-trigger
    mount -n -o remount,bind,ro /proc/sysrq-trigger
fi
# Our own boot id: PrivateTmp= directories on the shared /tmp get a name unique to this instance.
mount -n --bind "$S/boot_id" /proc/sys/kernel/random/boot_id

# A cgroup2-only view rooted at the instance cgroup (this process's cgroup namespace root).
umount -n -R -l /sys/fs/cgroup 2>/dev/null || true
mount -n -o remount,bind,ro /sys
mount -n -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
mkdir -p /sys/fs/cgroup/init.scope
echo $$ > /sys/fs/cgroup/init.scope/cgroup.procs

# Private /run.
mount -n -t tmpfs -o mode=0755,nosuid,nodev,size=256m tmpfs /run
mkdir -p /run/lock /run/systemd/system /run/systemd/journald.conf.d
cp "$S/journald.conf" /run/systemd/journald.conf.d/50-openclaw-e2e.conf

while IFS=$'\t' read -r kind a b c; do
    case "$kind" in
        overlay) mount -n -t overlay overlay -o "lowerdir=$c,upperdir=$a,workdir=$b" "$c" ;;
        bind) mount -n --bind "$a" "$b" ;;
    esac
done < "$S/mounts"

in_cgroup() {  # in_cgroup CGROUP CMD...: run CMD in the background inside CGROUP
    local cg="/sys/fs/cgroup/$1"; shift
    mkdir -p "$cg"
    ( echo "$BASHPID" > "$cg/cgroup.procs"; exec "$@" ) &
}

if [ "$OC_MODE" = system ]; then
    mount -n --bind "$S/console" /dev/console
    say "exec systemd --system as PID 1"
    exec env -i container=openclaw-e2e \
        SYSTEMD_UNIT_PATH="$OC_UNIT_PATH" \
        SYSTEMD_GENERATOR_PATH="$S/no-generators" \
        SYSTEMD_ENVIRONMENT_GENERATOR_PATH="$S/no-generators" \
        "$OC_SYSTEMD" --system --show-status=no --log-target=journal --log-level=info
fi

mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
if [ -x "$OC_JOURNALD" ]; then
    in_cgroup system.slice/systemd-journald.service env -i "$OC_JOURNALD"
    for _ in $(seq 200); do [ -S /run/systemd/journal/socket ] && break; sleep 0.01; done
fi
in_cgroup "user.slice/user-$(id -u).slice/user@$(id -u).service" \
    env -u OC_MODE -u OC_STATE -u OC_SYSTEMD -u OC_JOURNALD \
    "$OC_SYSTEMD" --user --log-target=journal --log-level=info
manager=$!
say "systemd --user started (pid $manager in the namespace)"
set +e
wait "$manager"
status=$?
say "systemd --user exited with $status"
exit "$status"
"""

_counter = itertools.count()


# --------------------------------------------------------------------------------------------
# Availability


def _cgroup2_mount() -> str | None:
    """Mount point of the host's cgroup2 hierarchy (pure unified or hybrid), or None."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    points = []
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            points.append(left.split()[4])
    for preferred in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        if preferred in points:
            return preferred
    return points[0] if points else None


def _own_cgroup2_dir() -> Path | None:
    """Host path of the cgroup2 cgroup this process is in."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    rel = "/"
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            rel = line[3:] or "/"
    path = Path(mount) / rel.lstrip("/")
    if ".." in Path(rel).parts or not path.is_dir():
        path = Path(mount)
    return path


def _run_quiet(argv: Sequence[str], timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


@functools.lru_cache(maxsize=None)
def _prerequisites(system: bool) -> tuple[bool, str]:
    if not os.path.exists("/proc/self/ns/pid"):
        return False, "not Linux (no /proc/self/ns)"
    if os.geteuid() != 0:
        return False, "needs root: namespaces, mounts and cgroups are set up as root"
    for tool in (SYSTEMD, shutil.which("unshare"), shutil.which("nsenter"),
                 shutil.which("systemctl")):
        if not tool or not os.access(tool, os.X_OK):
            return False, f"missing {tool or 'unshare/nsenter/systemctl'} (Debian: systemd, util-linux)"
    if system and not os.access(JOURNALD, os.X_OK):
        return False, f"missing {JOURNALD}"
    probe = _run_quiet(["unshare", "--mount", "--pid", "--cgroup", "--uts", "--fork",
                        "--mount-proc", "true"])
    if probe.returncode != 0:
        return False, f"cannot create mount+PID+cgroup namespaces: {probe.stderr.strip()}"
    parent = _own_cgroup2_dir()
    if parent is None:
        return False, "no cgroup2 hierarchy mounted (needed for the manager's private cgroup tree)"
    test_cg = parent / f"openclaw-e2e-probe-{os.getpid()}"
    try:
        test_cg.mkdir(exist_ok=True)
        test_cg.rmdir()
    except OSError as exc:
        return False, f"cannot create a cgroup under {parent}: {exc}"
    return True, "ok"


def user_manager_available() -> tuple[bool, str]:
    """(True, "ok"), or (False, why this machine cannot run `systemd --user` in a namespace)."""
    return _prerequisites(False)


def system_manager_available() -> tuple[bool, str]:
    """(True, "ok"), or (False, why this machine cannot boot `systemd --system` as PID 1 of a
    namespace)."""
    return _prerequisites(True)


# --------------------------------------------------------------------------------------------
# systemd-analyze on unit files (no manager needed)

_PRIVATE_RUN = 'mount -n -t tmpfs -o mode=0755 tmpfs /run && mkdir -p -m 0700 "$XDG_RUNTIME_DIR" && exec "$@"'


def analyze(*args: str, user: bool = False, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """`systemd-analyze [--user] ARGS...` on the host, needing no running systemd.

    It runs in a throwaway mount namespace with a private /run: `verify` builds a test-mode
    manager that touches /run/systemd/systemd-units-load, and `--user` needs an
    XDG_RUNTIME_DIR ("Failed to initialize manager: No such device or address" without one).
    As a shell command line:
      unshare --mount --propagation private sh -c \
        'mount -n -t tmpfs tmpfs /run && mkdir -p -m 0700 /run/user/0 && exec "$@"' sh \
        systemd-analyze [--user] ARGS...        # with XDG_RUNTIME_DIR=/run/user/0
    """
    env = {k: v for k, v in os.environ.items() if not _STRIP_ENV.match(k)}
    env["XDG_RUNTIME_DIR"] = f"/run/user/{os.getuid()}"
    argv = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", _PRIVATE_RUN, "sh",
            "systemd-analyze", *(["--user"] if user else []), *args]
    r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=timeout)
    return subprocess.CompletedProcess(["systemd-analyze", *argv[9:]], r.returncode, r.stdout, r.stderr)


def verify_unit(path: str | os.PathLike, *, user: bool = False,
                root: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """`systemd-analyze [--user] verify --man=no --recursive-errors=no [--root=ROOT] PATH`.

    --man=no: don't look up Documentation= man pages (needs man-db, fails without it).
    --recursive-errors=no: exit non-zero on any warning about *this* unit (unknown key, bad
    value, ExecStart= not executable...) but not on warnings about the units it references.
    root: resolve ExecStart= binaries and referenced units under this tree (e.g. an unpacked
    .deb) instead of /.
    Passing means: returncode == 0 and stderr == ""."""
    extra = [f"--root={root}"] if root is not None else []
    return analyze("verify", "--man=no", "--recursive-errors=no", *extra, str(path), user=user)


def security_exposure(path: str | os.PathLike, *, user: bool = False) -> tuple[float, str]:
    """(overall exposure score 0.0-10.0, full report) of
    `systemd-analyze [--user] security --offline=true PATH`."""
    r = analyze("security", "--offline=true", "--no-pager", str(path), user=user)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout)
    if not m:
        raise AssertionError(f"no exposure score ({r.returncode}):\n{r.stdout}{r.stderr}")
    return float(m.group(1)), r.stdout


# --------------------------------------------------------------------------------------------
# Helpers


def _set_pdeathsig() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _join_cgroup(procs_file: Path) -> Callable[[], None]:
    def preexec() -> None:
        with open(procs_file, "w") as f:
            f.write(str(os.getpid()))
    return preexec


def _pid_ns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _remove_cgroup_tree(path: Path, timeout: float = 5.0) -> None:
    """rmdir a cgroup and its children, deepest first (cgroupfs has no recursive remove)."""
    deadline = time.monotonic() + timeout
    while path.exists():
        dirs = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                      reverse=True) + [path]
        for d in dirs:
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                if time.monotonic() > deadline:
                    raise
        if path.exists():
            time.sleep(0.05)


def _remove_private_tmp(boot_hex: str) -> None:
    """The PrivateTmp= directories an instance with this boot id left on /tmp and /var/tmp."""
    for base in ("/tmp", "/var/tmp"):
        for d in Path(base).glob(f"systemd-private-{boot_hex}-*"):
            shutil.rmtree(d, ignore_errors=True)


def _sweep_stale(parent: Path) -> None:
    """Clean up after test processes that died without stop() (SIGKILL, OOM...). Their
    namespaces died with them (PR_SET_PDEATHSIG, unshare --kill-child), but their instance
    cgroups `openclaw-e2e-<pid>-<n>-<boot id>`, PrivateTmp= directories and temporary roots
    `openclaw-systemd-<mode>-<pid>-*` remain; the dead creator's pid is in each name."""
    def dead(pid: str) -> bool:
        return not Path(f"/proc/{pid}").exists()

    for cg in parent.glob("openclaw-e2e-*"):
        m = re.fullmatch(r"openclaw-e2e-(\d+)-\d+-([0-9a-f]{32})", cg.name)
        if not m or not dead(m.group(1)):
            continue
        try:
            (cg / "cgroup.kill").write_text("1")   # anything still in it is an orphan of ours
        except OSError:
            pass
        try:
            _remove_cgroup_tree(cg, timeout=1.0)
        except OSError:
            continue
        _remove_private_tmp(m.group(2))
    for root in Path(tempfile.gettempdir()).glob("openclaw-systemd-*-*-*"):
        m = re.fullmatch(r"openclaw-systemd-(?:user|system)-(\d+)-\w+", root.name)
        if m and dead(m.group(1)):
            shutil.rmtree(root, ignore_errors=True)


_STRIP_ENV = re.compile(r"^(XDG_.*|DBUS_.*|NOTIFY_SOCKET|INVOCATION_ID|JOURNAL_STREAM|LISTEN_.*"
                        r"|MANAGERPID|SYSTEMD_.*|OC_.*)$")


# --------------------------------------------------------------------------------------------
# Managers


class _NamespacedManager:
    """What UserManager and SystemManager share: the namespace, run(), stop()."""

    mode = ""                       # "user" or "system"
    _systemctl_scope: tuple[str, ...] = ()

    def __init__(self, root: str | os.PathLike | None = None, *,
                 private_dirs: Iterable[str] = (), overlay_dirs: Iterable[str] = (),
                 start_timeout: float = 20.0, stop_timeout: float = 5.0):
        """root: directory for this manager's files (HOME, unit dir, logs...). Created if
        missing and left in place; without it a temporary directory is made and removed by
        cleanup()/leaving the `with` block.
        overlay_dirs: existing absolute directories that stay readable inside the namespace but
        whose changes (files written, users added to /etc/passwd, StateDirectory= created
        under /var/lib...) land in a per-instance overlayfs upper directory, `overlay_upper(path)`
        on the host; the real directory is never written.
        private_dirs: existing absolute directories over which an empty per-instance directory
        is mounted inside the namespace (after the overlays); the host side is
        `private_dir(path)`.
        """
        self._given_root = Path(root) if root is not None else None
        self._overlays = [os.path.normpath(p) for p in overlay_dirs]
        self._private = [os.path.normpath(p) for p in private_dirs]
        for p in self._overlays + self._private:
            if not os.path.isabs(p) or not os.path.isdir(p):
                raise ValueError(f"{p!r} must be an existing absolute directory")
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.root: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self.pid: int | None = None          # host pid of the namespace's PID 1
        self._pidfd: int | None = None       # pidfd of it: signals it without a pid-reuse race
        self._ns: str | None = None          # "pid:[inode]" of the namespace
        self._cgroup: Path | None = None     # host path of the instance cgroup
        self.boot_id = ""
        self.startup_seconds = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self):
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def cgroup(self) -> Path | None:
        """Host path of this instance's cgroup (None when stopped)."""
        return self._cgroup

    def start(self):
        """Start a fresh namespace with a fresh manager; files under root are kept from a
        previous start (so stop()+start() is a reboot: enabled units come up again)."""
        if self._proc is not None:
            raise RuntimeError("already started")
        ok, why = _prerequisites(self.mode == "system")
        if not ok:
            raise RuntimeError(f"systemd {self.mode} manager unavailable: {why}")
        t0 = time.monotonic()
        self._prepare_root()
        state = self.state_dir
        self.boot_id = str(uuid.uuid4())
        (state / "boot_id").write_text(self.boot_id + "\n")
        (state / "journald.conf").write_text(_JOURNALD_CONF)
        (state / "setup.sh").write_text(_SETUP_SCRIPT)
        mounts = [("overlay", str(self.overlay_upper(p)), str(self.overlay_upper(p).with_name("work")),
                   p) for p in self._overlays]
        mounts += [("bind", str(self.private_dir(p)), p) for p in self._private]
        (state / "mounts").write_text("".join("\t".join(m) + "\n" for m in mounts))

        parent = _own_cgroup2_dir()
        assert parent is not None
        _sweep_stale(parent)
        cgroup = parent / f"openclaw-e2e-{os.getpid()}-{next(_counter)}-{self.boot_id.replace('-', '')}"
        cgroup.mkdir()
        self._cgroup = cgroup
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "LANG": "C.UTF-8", "OC_MODE": self.mode, "OC_STATE": str(state),
               "OC_SYSTEMD": SYSTEMD, "OC_JOURNALD": JOURNALD, **self._manager_env()}

        def preexec() -> None:
            _set_pdeathsig()
            _join_cgroup(cgroup / "cgroup.procs")()

        try:
            (cgroup / self._session_cgroup).mkdir(parents=True)
            self._log_file = open(state / "manager.log", "ab")
            self._proc = subprocess.Popen(
                ["unshare", "--mount", "--pid", "--cgroup", "--uts", "--fork", "--mount-proc",
                 "--kill-child", "--propagation", "private", "/bin/bash", str(state / "setup.sh")],
                env=env, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                preexec_fn=preexec, start_new_session=True)
            self.pid = self._wait_for_child()
            self._pidfd = os.pidfd_open(self.pid)
            self._ns = _pid_ns(self.pid)
            self._wait_until_running()
        except BaseException:
            self._kill_namespace()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self, graceful: bool = True) -> None:
        """End the manager and every process of its namespace, then check that none is left.
        graceful: first ask the manager to stop its units (ExecStop=, PrivateTmp= cleanup...),
        for at most stop_timeout seconds; the namespace is SIGKILLed in any case."""
        if self._proc is None and self._cgroup is None:
            return
        try:
            if graceful and self.running:
                try:
                    self._graceful_stop()
                except (subprocess.TimeoutExpired, OSError):
                    pass
        finally:
            self._kill_namespace()

    def restart(self):
        """stop() and start() again with the same files: a reboot of the manager."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """stop(), then remove the temporary root if this object made it."""
        self.stop()
        if self._given_root is None and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    # -- running things inside ---------------------------------------------------------------

    def env(self, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
        """The environment run() uses: this process's, minus XDG_*/DBUS_*/systemd-activation
        variables, plus what the manager needs; `extra` wins, a None value removes a variable."""
        env = {k: v for k, v in os.environ.items() if not _STRIP_ENV.match(k)}
        env.update(self._client_env())
        for k, v in (extra or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def popen(self, argv: Sequence[str], *, env: Mapping[str, str | None] | None = None,
              cwd: str | os.PathLike | None = None, **kwargs) -> subprocess.Popen:
        """Start argv inside the namespace (mount, PID, cgroup, UTS) and return at once.
        The process is in its own session; kill it with os.killpg(p.pid, ...)."""
        if not self.running:
            raise RuntimeError(f"systemd {self.mode} manager is not running")
        wd = os.path.abspath(cwd if cwd is not None else os.getcwd())
        full = ["nsenter", f"--target={self.pid}", "--mount", "--pid", "--cgroup", "--uts",
                f"--wd={wd}", "--", *map(str, argv)]
        return subprocess.Popen(full, env=self.env(env),
                                preexec_fn=_join_cgroup(self._cgroup / self._session_cgroup / "cgroup.procs"),
                                start_new_session=True, **kwargs)

    def run(self, argv: Sequence[str], env: Mapping[str, str | None] | None = None,
            timeout: float = 60.0, *, check: bool = False, input: str | None = None,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """Run argv inside the namespace and wait: text output captured, like subprocess.run.
        On timeout the whole process group (inside the namespace too) is killed."""
        proc = self.popen(argv, env=env, cwd=cwd, text=True,
                          stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(list(argv), timeout, out, err) from None
        result = subprocess.CompletedProcess(list(argv), proc.returncode, out, err)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, list(argv), out, err)
        return result

    def systemctl(self, *args: str, check: bool = False, timeout: float = 60.0,
                  env: Mapping[str, str | None] | None = None) -> subprocess.CompletedProcess:
        """`systemctl [--user] ARGS...` inside the namespace."""
        return self.run(["systemctl", *self._systemctl_scope, "--no-pager", *args], env=env,
                        timeout=timeout, check=check)

    def analyze(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """`systemd-analyze [--user] ARGS...` inside the namespace, so unit names resolve
        against this manager's unit directories (e.g. analyze("verify", "--man=no", name))."""
        return self.run(["systemd-analyze", *self._systemctl_scope, *args], timeout=timeout)

    def show(self, unit: str, prop: str) -> str:
        """One property's value: `systemctl show -p PROP --value UNIT`."""
        return self.systemctl("show", "-p", prop, "--value", unit, check=True).stdout.strip()

    def main_pid(self, unit: str) -> int:
        """MainPID of unit (a pid inside the namespace; 0 if none)."""
        return int(self.show(unit, "MainPID") or 0)

    def wait_for(self, predicate: Callable[[], object], timeout: float = 15.0,
                 interval: float = 0.1, what: str = "condition"):
        """Poll predicate until it returns something truthy; return that, or raise."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout} s")
            time.sleep(interval)

    def journal(self, unit: str, lines: int | None = None) -> str:
        """The unit's log lines (its output and the manager's messages about it), from the
        namespace's journald; falls back to `systemctl status` if the journal is unusable."""
        argv = ["journalctl", "--no-pager", "-q", "-o", "short-precise",
                "--directory=/run/log/journal", *self._journal_match(unit)]
        if lines is not None:
            argv += ["-n", str(lines)]
        result = self.run(argv, timeout=30)
        if result.returncode == 0:
            return result.stdout
        status = self.systemctl("status", "-l", "-n", str(lines or 200), unit, timeout=30)
        return status.stdout + status.stderr

    def wait_journal(self, unit: str, pattern: str, timeout: float = 15.0) -> str:
        """Wait until a line of journal(unit) matches the regex; return that line."""
        regex = re.compile(pattern)

        def hit():
            return next((l for l in self.journal(unit).splitlines() if regex.search(l)), None)
        try:
            return self.wait_for(hit, timeout, 0.2, f"/{pattern}/ in the journal of {unit}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.journal(unit)}") from None

    # -- namespace introspection -------------------------------------------------------------

    def processes(self) -> dict[int, tuple[int, str]]:
        """Every live process of the namespace: host pid -> (pid inside, command line)."""
        result = {}
        if self._ns is None:
            return result
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or _pid_ns(int(entry)) != self._ns:
                continue
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            m = re.search(r"^NSpid:\s+(.*)$", status, re.M)
            inner = int(m.group(1).split()[-1]) if m else -1
            result[int(entry)] = (inner, _cmdline(int(entry)))
        return result

    def host_pid(self, pid_inside: int) -> int:
        """The host pid of a process known by its pid inside the namespace (e.g. a MainPID)."""
        for host, (inner, _) in self.processes().items():
            if inner == pid_inside:
                return host
        raise LookupError(f"no process {pid_inside} in the namespace")

    def manager_log(self) -> str:
        """What the setup script and the manager wrote outside the journal (startup errors)."""
        parts = []
        for name in ("manager.log", "console"):
            p = self.state_dir / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "".join(parts)

    @property
    def state_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "state"

    def private_dir(self, path: str) -> Path:
        """Host-side directory mounted over `path` inside the namespace."""
        assert self.root is not None, "not started"
        return self.root / "private" / os.path.normpath(path).lstrip("/").replace("/", "__")

    def overlay_upper(self, path: str) -> Path:
        """Host-side overlayfs upper directory of overlay dir `path`: what the namespace
        changed there (deleted files show up as 0:0 character devices)."""
        assert self.root is not None, "not started"
        return self.root / "overlay" / os.path.normpath(path).lstrip("/").replace("/", "__") / "upper"

    def write_unit(self, name: str, text: str) -> Path:
        """Write a unit file into unit_dir (then `systemctl daemon-reload`)."""
        path = self.unit_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    @property
    def unit_dir(self) -> Path:
        raise NotImplementedError

    # -- internals -----------------------------------------------------------------------------

    _session_cgroup = "session.scope"

    def _prepare_root(self) -> None:
        if self.root is None:
            if self._given_root is not None:
                self.root = self._given_root
                self.root.mkdir(parents=True, exist_ok=True)
            else:
                self.root = Path(tempfile.mkdtemp(prefix=f"openclaw-systemd-{self.mode}-{os.getpid()}-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for p in self._overlays:
            root = os.path.realpath(self.root)
            if os.path.commonpath([root, os.path.realpath(p)]) == os.path.realpath(p):
                raise ValueError(f"the manager's root {root} must not be inside overlay dir {p}")
            self.overlay_upper(p).mkdir(parents=True, exist_ok=True)
            self.overlay_upper(p).with_name("work").mkdir(exist_ok=True)
        for p in self._private:
            self.private_dir(p).mkdir(parents=True, exist_ok=True)
            # The same mode as the directory it hides (/etc/systemd/system is 0755): a reader
            # that is not root sees what it would see on a real machine.
            self.private_dir(p).chmod(os.stat(p).st_mode & 0o7777)
        (self.state_dir / "manager.log").unlink(missing_ok=True)

    def _manager_env(self) -> dict[str, str]:
        return {}

    def _client_env(self) -> dict[str, str]:
        return {}

    def _journal_match(self, unit: str) -> list[str]:
        raise NotImplementedError

    def _graceful_stop(self) -> None:
        raise NotImplementedError

    def _wait_for_child(self) -> int:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"unshare exited ({self._proc.returncode}):\n{self.manager_log()}")
            try:
                pids = children.read_text().split()
            except OSError:
                pids = []
            if pids:
                return int(pids[0])
            time.sleep(0.005)
        raise RuntimeError("the namespace's PID 1 did not appear")

    def _wait_until_running(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        state = ""
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"systemd {self.mode} manager exited during startup "
                                   f"({self._proc.returncode}):\n{self.manager_log()}")
            r = self.run(["systemctl", *self._systemctl_scope, "is-system-running"], timeout=10)
            state = r.stdout.strip() or r.stderr.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.02)
        raise RuntimeError(f"systemd {self.mode} manager not running after {self.start_timeout} s "
                           f"(last state: {state}):\n{self.manager_log()}")

    def _kill_namespace(self) -> None:
        proc, self._proc = self._proc, None
        try:
            if proc is None:
                return
            if self._pidfd is not None:
                try:  # the kernel then kills every process of the namespace
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if proc.poll() is None:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            # unshare returns once the namespace's PID 1 is reaped, which the kernel holds back
            # until every other process of the namespace is gone; check anyway.
            deadline = time.monotonic() + 5
            while (left := self.processes()) and time.monotonic() < deadline:
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            if left:
                raise RuntimeError(f"processes of the {self.mode} manager's namespace survived: {left}")
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            self._remove_private_tmp()
            if self._cgroup is not None:
                _remove_cgroup_tree(self._cgroup)
                self._cgroup = None
            self.pid = None

    def _remove_private_tmp(self) -> None:
        if self.boot_id:
            _remove_private_tmp(self.boot_id.replace("-", ""))


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class UserManager(_NamespacedManager):
    """`systemd --user` (as root, uid 0) in a private mount + PID + cgroup + UTS namespace.

    HOME and XDG_CONFIG_HOME point into root (never the real ~/.config): user units go to
    `unit_dir` = $XDG_CONFIG_HOME/systemd/user. XDG_RUNTIME_DIR is /run/user/0 on the
    namespace's private /run. A journald of its own runs next to the manager, so journal()
    works. Processes started with run() look like a login session's
    (cgroup /user.slice/user-0.slice/session.scope inside).
    """

    mode = "user"
    _systemctl_scope = ("--user",)

    def __init__(self, root: str | os.PathLike | None = None, **kwargs):
        super().__init__(root, **kwargs)
        self._session_cgroup = f"user.slice/user-{os.getuid()}.slice/session.scope"

    @property
    def home(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "home"

    @property
    def config_home(self) -> Path:
        return self.home / ".config"

    @property
    def unit_dir(self) -> Path:
        """$XDG_CONFIG_HOME/systemd/user: where `systemctl --user enable` looks and links."""
        return self.config_home / "systemd" / "user"

    @property
    def runtime_dir(self) -> str:
        """XDG_RUNTIME_DIR (a path inside the namespace)."""
        return f"/run/user/{os.getuid()}"

    def _prepare_root(self) -> None:
        super()._prepare_root()
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)

    def _manager_env(self) -> dict[str, str]:
        pw = pwd.getpwuid(os.getuid())
        return {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.config_home),
                "XDG_RUNTIME_DIR": self.runtime_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
                "SHELL": pw.pw_shell or "/bin/sh"}

    def _client_env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.config_home),
                "XDG_RUNTIME_DIR": self.runtime_dir,
                "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime_dir}/bus"}

    def _journal_match(self, unit: str) -> list[str]:
        return [f"--user-unit={unit}"]

    def _graceful_stop(self) -> None:
        self.systemctl("--no-block", "exit", timeout=self.stop_timeout)
        try:
            self._proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            pass


class SystemManager(_NamespacedManager):
    """`systemd --system` booted as PID 1 of a private mount + PID + cgroup + UTS namespace.

    /etc/systemd/system inside is `unit_dir` (a per-instance directory bind-mounted over it), so
    an installer writes and enables units exactly as on a real machine while the host's
    /etc/systemd/system stays untouched; /etc and /var are overlays (`overlay_upper()`). Units
    load from there, /run/systemd/system (also private) and a curated set of targets; journald
    and the system D-Bus of its own run as units. The boot target is multi-user.target. See the
    module docstring for why the usual /lib/systemd/system is not in the unit path.
    """

    mode = "system"
    _systemctl_scope = ()
    _session_cgroup = "e2e-session.scope"

    @property
    def unit_dir(self) -> Path:
        """Host side of /etc/systemd/system inside the namespace."""
        return self.private_dir("/etc/systemd/system")

    def __init__(self, root: str | os.PathLike | None = None, *,
                 overlay_dirs: Iterable[str] = ("/etc", "/var"),
                 private_dirs: Iterable[str] = (), **kwargs):
        """By default /etc and /var are overlays (an installer may add users, write
        /etc/<app>/, /var/lib/<app>/, run systemd-tmpfiles: none of it reaches the host) and
        /etc/systemd/system is an empty private directory on top (unit_dir)."""
        dirs = ["/etc/systemd/system", *[p for p in private_dirs
                                         if os.path.normpath(p) != "/etc/systemd/system"]]
        super().__init__(root, overlay_dirs=overlay_dirs, private_dirs=dirs, **kwargs)

    def _prepare_root(self) -> None:
        super()._prepare_root()
        state = self.state_dir
        (state / "console").write_bytes(b"")
        (state / "no-generators").mkdir(exist_ok=True)
        units = state / "units"
        if units.exists():
            shutil.rmtree(units)
        units.mkdir()
        for name in _SAFE_SYSTEM_UNITS:
            if os.path.exists(f"{SYSTEM_UNIT_DIR}/{name}"):
                (units / name).symlink_to(f"{SYSTEM_UNIT_DIR}/{name}")
        (units / "default.target").symlink_to("multi-user.target")
        (units / "systemd-journald.socket").write_text(_JOURNALD_SOCKET)
        (units / "systemd-journald.service").write_text(_JOURNALD_SERVICE)
        for target, unit in (("sockets.target", "systemd-journald.socket"),
                             ("sysinit.target", "systemd-journald.service"),
                             ("sockets.target", "dbus.socket")):
            if (units / unit).exists():
                (units / f"{target}.wants").mkdir(exist_ok=True)
                (units / f"{target}.wants" / unit).symlink_to(f"../{unit}")

    def _manager_env(self) -> dict[str, str]:
        path = ["/run/systemd/system.control", "/run/systemd/transient", "/etc/systemd/system",
                "/run/systemd/system", str(self.state_dir / "units")]
        return {"OC_UNIT_PATH": ":".join(path)}

    def _journal_match(self, unit: str) -> list[str]:
        return [f"--unit={unit}"]

    def _graceful_stop(self) -> None:
        listed = self.systemctl("list-units", "--plain", "--no-legend", "--state=active",
                                "--type=service,socket,timer,path", timeout=self.stop_timeout)
        units = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
        units = [u for u in units if not u.startswith("systemd-journald")]
        if units:
            self.systemctl("stop", *units, timeout=self.stop_timeout)


# --------------------------------------------------------------------------------------------
# pytest fixtures (import them into a test module: `from systemd_env import systemd_user`)

try:
    import pytest
except ImportError:  # the module is usable without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def systemd_user(tmp_path):
        """A started UserManager for one test; skipped where the machine cannot run one."""
        ok, why = user_manager_available()
        if not ok:
            pytest.skip(f"systemd --user in a namespace unavailable: {why}")
        with UserManager(tmp_path / "systemd-user") as manager:
            yield manager

    @pytest.fixture
    def systemd_system(tmp_path):
        """A started SystemManager (systemd as PID 1 of a namespace) for one test; skipped
        where the machine cannot run one."""
        ok, why = system_manager_available()
        if not ok:
            pytest.skip(f"systemd --system in a namespace unavailable: {why}")
        with SystemManager(tmp_path / "systemd-system") as manager:
            yield manager
