"""Issue 20 (files): `fs.listDir` and `terminal.upload`, each served by a one-shot confined
`openclaw-node-files` process as the exec user.

fs.listDir is upstream's `listHostDirectories`: an absolute path normalised lexically, the
directories in it (a link counts when it resolves to one), hidden ones last, code-unit order.
terminal.upload is upstream's `stageTerminalUpload`: canonical base64 up to 16 MiB, a sanitised
name, a marked 0700 folder per upload, at most 64 folders and 256 MiB, each folder removed after
its retention, also across restarts.

The node runs with its default exec user (openclaw or nobody when the tests run as root), so
everything it must see lives under a world-searchable directory in /tmp, not in pytest's
private tmp_path; that directory is removed after each test."""
import base64
import json
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

import pytest

from conftest import gateway_args, wait_until
from test_system_run import approvals_file, error_of, run

PREFIX = "openclaw-terminal-upload-"
STAGED_FOLDER = re.compile(r"openclaw-terminal-upload-[A-Za-z0-9]{6}")
MARKER = ".openclaw-terminal-upload-v1"
MARKER_TEXT = b"openclaw-terminal-upload-v1\n"
MAX_BYTES = 16 * 1024 * 1024
MAX_BASE64 = 22_369_624  # ceil(MAX_BYTES / 3) * 4
MAX_RETAINED_BYTES = 256 * 1024 * 1024
TWO_DAYS = 2 * 24 * 3600

REQUIRED = ("INVALID_REQUEST", "Error: INVALID_REQUEST: terminal upload name and content are required")
ENCODING = ("INVALID_REQUEST", "Error: invalid terminal upload encoding")
TOO_BIG = ("INVALID_REQUEST", "Error: terminal upload exceeds 16777216 bytes")
EXHAUSTED = ("INVALID_REQUEST", "TerminalUploadStagingExhaustedError: terminal upload staging limit reached")
NOT_ADVERTISED = {"code": "UNAVAILABLE", "message": "command not advertised by this node"}


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture
def shared():
    """A world-searchable directory in /tmp (pytest's tmp_path is private to root), removed
    after the test (with whatever the exec user staged in it)."""
    base = Path(tempfile.mkdtemp(prefix="openclaw-e2e-files-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def upload_root(shared):
    """The uploads' root: shared and sticky, like /tmp."""
    root = shared / "uploads"
    root.mkdir()
    root.chmod(0o1777)
    return root


@pytest.fixture
def start(upload_root, make_gateway, nodes, state_dir):
    """`start(*flags)` starts a paired node (default exec user, full approvals, uploads staged
    in `upload_root`) against the test's one gateway and returns (gateway, node). Called again
    after `node.stop()`, it restarts the node on the same state dir.

    `upload_root` comes first so that the directory outlives the nodes (fixtures are torn down
    in reverse order)."""
    approvals = state_dir / "exec-approvals.json"
    approvals.write_text(json.dumps(approvals_file()))
    approvals.chmod(0o600)
    gw = make_gateway(auto_approve=True)

    def go(*flags):
        mark = gw.mark()
        node = nodes(state_dir, gateway_args(gw) + ["--terminal-upload-root", str(upload_root), *flags],
                     default_exec_user=True)
        gw.wait_for_hello(timeout=30, since=mark)
        return gw, node
    return go


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def exec_ids(gw) -> tuple[int, int]:
    """The exec user's uid and gid, as commands the node runs report them."""
    ids = []
    for flag in ("-u", "-g"):
        result, payload = run(gw, {"command": ["/usr/bin/id", flag]})
        assert result["ok"] is True and payload["success"] is True, result
        ids.append(int(payload["stdout"]))
    return ids[0], ids[1]


def exec_home(gw) -> str:
    """Where a system.run without a cwd runs (the exec user's home)."""
    result, payload = run(gw, {"command": ["/bin/pwd"]})
    assert result["ok"] is True and payload["success"] is True, result
    return payload["stdout"].rstrip("\n")


def listing(gw, params) -> dict:
    result = gw.invoke("fs.listDir", params)
    assert result["ok"] is True, result
    return json.loads(result["payloadJSON"])


def upload(gw, name: str, content: bytes, timeout_ms: int = 30_000) -> dict:
    result = gw.invoke("terminal.upload", {"name": name, "contentBase64": b64(content)}, timeout_ms=timeout_ms)
    assert result["ok"] is True, result
    return json.loads(result["payloadJSON"])


def refused(gw, root: Path, params, timeout_ms: int = 30_000) -> tuple[str, str]:
    """(code, message) of a refused terminal.upload, which must leave nothing in the root."""
    before = sorted(os.listdir(root))
    result = gw.invoke("terminal.upload", params, timeout_ms=timeout_ms)
    assert sorted(os.listdir(root)) == before, ("a refused upload leaves nothing behind", result)
    return error_of(result)


def make_folder(root: Path, name: str, owner: tuple[int, int], *, marked: bool, files: dict, age_s: float = 0) -> Path:
    """A folder in the uploads' root as a staging would leave it (or not): 0700, the marker
    if `marked`, `files` (bytes, or an int for a sparse file of that size), owned by `owner`,
    its mtime `age_s` seconds in the past."""
    folder = root / name
    folder.mkdir()
    folder.chmod(0o700)
    contents = dict(files)
    if marked:
        contents[MARKER] = MARKER_TEXT
    for entry, data in contents.items():
        with open(folder / entry, "wb") as handle:
            if isinstance(data, int):
                handle.truncate(data)
            else:
                handle.write(data)
        (folder / entry).chmod(0o600)
    if os.geteuid() == 0:
        for path in [folder, *(folder / entry for entry in contents)]:
            os.chown(path, *owner)
    if age_s:
        then = time.time() - age_s
        os.utime(folder, (then, then))
    return folder


def wait_removed(path: Path, timeout: float) -> tuple[float | None, float]:
    """Polls until `path` is gone: (wall time it was last seen or None, wall time it was first
    found missing)."""
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        now = time.time()
        if not os.path.lexists(path):
            return seen, now
        seen = now
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} still there after {timeout} s")
        time.sleep(0.05)



#: The directories of the tree below, non-hidden then hidden, each in code-unit order
#: ("10" < "9" < "Alpha" < "_under" < "beta" < … < "émigré").
VISIBLE = ["10", "9", "Alpha", "_under", "beta", "link-dir", "private", "zeta", "émigré"]
HIDDEN = [".cache", ".hidden", ".hidden-link"]


def build_tree(base: Path) -> Path:
    """Directories, hidden directories, a 0700 directory (being one needs no access to it),
    files, a fifo, a link to a directory (relative and absolute), a broken link, a link to a
    file and a link loop; all readable by the exec user."""
    tree = base / "tree"
    tree.mkdir()
    tree.chmod(0o755)
    for name in ("10", "9", "Alpha", "_under", "beta", "zeta", "émigré", ".cache", ".hidden", "beta/inner"):
        (tree / name).mkdir()
        (tree / name).chmod(0o755)
    (tree / "private").mkdir()
    (tree / "private").chmod(0o700)
    for name in ("file.txt", ".dotfile", "beta/note.txt"):
        (tree / name).write_text("not a directory\n")
        (tree / name).chmod(0o644)
    os.mkfifo(tree / "fifo")
    (tree / "link-dir").symlink_to("beta")
    (tree / ".hidden-link").symlink_to(tree / "zeta")
    (tree / "link-broken").symlink_to("missing")
    (tree / "link-file").symlink_to("file.txt")
    (tree / "link-loop").symlink_to("link-loop")
    return tree


def entries(directory, visible, hidden=()) -> list[dict]:
    return ([{"name": name, "path": f"{directory}/{name}"} for name in visible]
            + [{"name": name, "path": f"{directory}/{name}", "hidden": True} for name in hidden])


# ---------------------------------------------------------------- fs.listDir

def test_list_dir_lists_directories_and_links_to_them_hidden_last_in_code_unit_order(start, shared):
    """fs.listDir: directories only, a symlink counted when it resolves to a directory (named
    by its own path), files, links to files and broken links left out; `hidden: true` only on
    dot names; non-hidden first, each group in code-unit order; path, parent, home. The worker
    is one-shot: none is left once the answer is in."""
    tree = build_tree(shared)
    gw, node = start()
    home = exec_home(gw)
    assert listing(gw, {"path": str(tree)}) == {"path": str(tree), "parent": str(shared), "home": home,
                                                 "entries": entries(tree, VISIBLE, HIDDEN)}
    # Through a link: the link's own path is kept (no symlink resolution), its target listed.
    link = tree / "link-dir"
    assert listing(gw, {"path": str(link)}) == {"path": str(link), "parent": str(tree), "home": home,
                                                 "entries": entries(link, ["inner"])}
    wait_until(lambda: "openclaw-node-files" not in node.children().values(), 5, "no files worker left")


def test_list_dir_normalises_the_path_lexically_and_the_root_has_no_parent(start, shared):
    """fs.listDir: the path normalised as Node's path.resolve does (`.`, `..`, repeated and
    trailing slashes; no symlink resolution: `link-file/..` is the tree); "/" has no parent
    and its entries are "/<name>"."""
    tree = build_tree(shared)
    gw, _ = start()
    expected = listing(gw, {"path": str(tree)})
    for spelled in (f"{tree}/./a/../", f"{tree}/", f"{tree}//", f"/{tree}", f"{tree}/missing/..",
                    f"{tree}/link-file/..", f"{shared}/../{shared.name}/./tree"):
        assert listing(gw, {"path": spelled}) == expected, spelled
    root = listing(gw, {"path": "/"})
    assert root["path"] == "/" and "parent" not in root
    assert {"name": "tmp", "path": "/tmp"} in root["entries"]
    assert all(entry["path"] == "/" + entry["name"] for entry in root["entries"]), root["entries"]
    for spelled in ("/..", "//", "/./", "/tmp/..", "/../.."):
        assert listing(gw, {"path": spelled}) == root, spelled


def test_list_dir_refusals(start, shared):
    """fs.listDir: a relative path, a path that is not a string, a missing folder (named by its
    normalised path), a file or a link to one, malformed paramsJSON: INVALID_REQUEST with
    upstream's messages."""
    tree = build_tree(shared)
    gw, _ = start()
    for path in ("tmp", "./x", "~", "..", "a/b"):
        assert error_of(gw.invoke("fs.listDir", {"path": path})) == (
            "INVALID_REQUEST", "Error: fs.listDir path must be absolute"), path
    for path in (5, True, ["/"], {"path": "/"}):
        assert error_of(gw.invoke("fs.listDir", {"path": path})) == (
            "INVALID_REQUEST", "Error: INVALID_REQUEST: path must be a string"), path
    assert error_of(gw.invoke("fs.listDir", {"path": f"{tree}/gone/./"})) == (
        "INVALID_REQUEST", f"Error: ENOENT: no such file or directory, scandir '{tree}/gone'")
    assert error_of(gw.invoke("fs.listDir", {"path": str(tree / "link-broken")})) == (
        "INVALID_REQUEST", f"Error: ENOENT: no such file or directory, scandir '{tree}/link-broken'")
    for path in (tree / "file.txt", tree / "link-file"):
        assert error_of(gw.invoke("fs.listDir", {"path": str(path)})) == (
            "INVALID_REQUEST", f"Error: ENOTDIR: not a directory, scandir '{path}'")
    assert error_of(gw.invoke("fs.listDir", params_json="{not json")) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: paramsJSON malformed JSON")


def test_list_dir_without_a_path_lists_the_exec_users_home(start):
    """fs.listDir: `path` absent or "" lists the exec user's home, the directory a system.run
    without a cwd runs in."""
    gw, _ = start()
    home = exec_home(gw)
    assert os.path.isabs(home)
    expected = listing(gw, {"path": home})
    assert expected["path"] == home and expected["home"] == home
    if home == "/":
        assert "parent" not in expected
    else:
        assert expected["parent"] == os.path.dirname(home)
    for params in ({}, {"path": ""}):
        assert listing(gw, params) == expected, params


# ---------------------------------------------------------------- terminal.upload

def test_upload_is_staged_in_a_private_marked_folder_owned_by_the_exec_user(start, upload_root):
    """terminal.upload: `{path: <root>/openclaw-terminal-upload-XXXXXX/<name>, size}`; the
    folder 0700 holding the marker (0600, exact text) and the file (0600, the decoded bytes),
    all owned by the exec user (never root when the node runs as root). Empty content is valid;
    nothing uploaded is executed."""
    gw, _ = start()
    uid, _ = exec_ids(gw)
    if os.geteuid() == 0:
        assert uid != 0, "the default exec user is not root"
    else:
        assert uid == os.geteuid()
    content = bytes(range(256)) * 3
    payload = upload(gw, "data.bin", content)
    folder = Path(payload["path"]).parent
    assert STAGED_FOLDER.fullmatch(folder.name), folder.name
    assert payload == {"path": f"{upload_root}/{folder.name}/data.bin", "size": len(content)}
    assert os.listdir(upload_root) == [folder.name]
    assert sorted(os.listdir(folder)) == [MARKER, "data.bin"]
    info = os.lstat(folder)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == uid
    for name, data in ((MARKER, MARKER_TEXT), ("data.bin", content)):
        info = os.lstat(folder / name)
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == uid, name
        assert (folder / name).read_bytes() == data, name

    # Each upload gets its own folder; empty content and the smallest paddings are valid.
    for name, encoded, data in (("empty", "", b""), ("ab.txt", "YWI=", b"ab"), ("four.bin", "AAEC/w==", b"\x00\x01\x02\xff")):
        result = gw.invoke("terminal.upload", {"name": name, "contentBase64": encoded})
        assert result["ok"] is True, result
        staged = json.loads(result["payloadJSON"])
        assert staged["size"] == len(data) and Path(staged["path"]).name == name
        assert Path(staged["path"]).parent != folder and Path(staged["path"]).read_bytes() == data

    # A script arrives as data: not executable, and it never ran.
    ran = upload_root.parent / "ran"
    staged = upload(gw, "run.sh", f"#!/bin/sh\ntouch {ran}\n".encode())
    assert stat.S_IMODE(os.stat(staged["path"]).st_mode) == 0o600
    time.sleep(0.2)
    assert not ran.exists()


def test_upload_refusals_leave_nothing_behind(start, upload_root):
    """terminal.upload: name or contentBase64 missing or not a string, and content that is not
    canonical base64 (length, alphabet, '=' inside, non-zero unused bits), are INVALID_REQUEST
    with upstream's messages, and nothing is staged."""
    gw, _ = start()
    for params in ({}, {"name": "a.txt"}, {"contentBase64": "YQ=="}, {"name": 5, "contentBase64": "YQ=="},
                   {"name": "a.txt", "contentBase64": 5}, {"name": None, "contentBase64": "YQ=="},
                   {"name": "a.txt", "contentBase64": ["YQ=="]}):
        assert refused(gw, upload_root, params) == REQUIRED, params
    for encoded in ("YR==", "YWJ=", "YQ", "YQ=", "YWJjZA", "YQ==YQ==", "=YQ=", "Y===", "====", "YQ-_", "YW J",
                    "YW\nJ", "YWJ\u00e9"):
        assert refused(gw, upload_root, {"name": "a.txt", "contentBase64": encoded}) == ENCODING, encoded
    assert os.listdir(upload_root) == []


def test_sixteen_mib_is_the_limit(start, upload_root):
    """terminal.upload: content longer than 22369624 characters or decoding to more than
    16777216 bytes is refused before anything is written (whatever its characters); exactly
    16777216 bytes is staged."""
    gw, _ = start()
    for encoded in ("A" * (MAX_BASE64 + 4),      # longer than the limit
                    "A" * MAX_BASE64,            # at the length limit, but 16777218 bytes
                    "A" * (MAX_BASE64 - 1) + "=",  # 16777217 bytes
                    "*" * (MAX_BASE64 + 1)):     # too long is said before the encoding is looked at
        assert refused(gw, upload_root, {"name": "big.bin", "contentBase64": encoded}, timeout_ms=120_000) == TOO_BIG, len(encoded)
    result = gw.invoke("terminal.upload", {"name": "max.bin", "contentBase64": "A" * (MAX_BASE64 - 2) + "=="},
                       timeout_ms=120_000)
    assert result["ok"] is True, {k: v for k, v in result.items() if k != "payloadJSON"}
    staged = json.loads(result["payloadJSON"])
    assert staged["size"] == MAX_BYTES
    assert Path(staged["path"]).read_bytes() == bytes(MAX_BYTES)


#: (name sent, name staged): upstream's sanitizeTerminalUploadName (its own test rows first).
NAMES = [
    ("..\\..\\etc\\passwd", "passwd"),
    ("../report final.pdf", "report final.pdf"),
    ("..\\..\\secret\x00.txt", "secret_.txt"),
    ("report:<final>?!-%PATH%.pdf. ", "report__final___-_PATH_.pdf"),
    ("report?.txt", "report_.txt"),
    ('a|b"c*d', "a_b_c_d"),
    ("tab\there\n.txt", "tab_here_.txt"),
    ("del\x7f.bin", "del_.bin"),
    ("  spaced out.txt  ", "spaced out.txt"),
    ("name. . .", "name"),
    ("CON.txt", "_CON.txt"),
    ("aux", "_aux"),
    ("Lpt9.log", "_Lpt9.log"),
    ("nul.", "_nul"),
    ("com10.txt", "com10.txt"),
    ("console", "console"),
    ("", "upload"),
    (".", "upload"),
    ("..", "upload"),
    ("...", "upload"),
    (" . ", "upload"),
    ("/", "upload"),          # path.posix.basename("/") is ""
    ("dir\\", "dir"),         # "dir/": trailing slashes are not part of the basename
    ("é" * 200, "é" * 90),    # 180 UTF-8 bytes
    ("a" + "🦞" * 50, "a" + "🦞" * 44),  # 177 bytes: a 4-byte character more would be 181
    ("x" * 179 + "é", "x" * 179),
]


def test_upload_names_are_sanitised_as_upstream(start, upload_root):
    """terminal.upload: backslashes to "/", the POSIX basename, control characters and
    < > : " / \\ | ? * % ! to "_", trimmed, trailing dots and spaces dropped, Windows reserved
    names prefixed with "_", empty / "." / ".." become "upload", cut to 180 UTF-8 bytes on a
    character boundary."""
    gw, _ = start()
    for index, (name, expected) in enumerate(NAMES):
        content = f"row {index}".encode()
        payload = upload(gw, name, content)
        path = Path(payload["path"])
        assert path.name == expected, (name, path.name)
        assert path.parent.parent == upload_root and STAGED_FOLDER.fullmatch(path.parent.name)
        assert path.read_bytes() == content
    assert len(os.listdir(upload_root)) == len(NAMES)


def test_the_sixty_fifth_folder_is_refused_until_one_goes(start, upload_root):
    """terminal.upload: at most 64 staged folders of ours (marked, owned by the exec user) in
    the root; the 65th upload is refused with upstream's TerminalUploadStagingExhaustedError and
    stages nothing; once a folder goes, the next upload is staged. Unmarked folders and folders
    of another user neither count nor are touched."""
    gw, _ = start()
    uid, gid = exec_ids(gw)
    unmarked = make_folder(upload_root, PREFIX + "zzzzzz", (uid, gid), marked=False, files={"keep.txt": b"keep"})
    foreign = None
    if os.geteuid() == 0 and uid != 0:
        foreign = make_folder(upload_root, PREFIX + "rootxx", (0, 0), marked=True, files={"keep.txt": b"keep"})
    folders = [Path(upload(gw, f"f{i}.txt", b"%d" % i)["path"]).parent for i in range(64)]
    assert len(set(folders)) == 64
    assert refused(gw, upload_root, {"name": "one-more.txt", "contentBase64": "eA=="}) == EXHAUSTED
    shutil.rmtree(folders[0])
    payload = upload(gw, "one-more.txt", b"x")
    assert Path(payload["path"]).read_bytes() == b"x"
    assert refused(gw, upload_root, {"name": "again.txt", "contentBase64": "eA=="}) == EXHAUSTED
    assert (unmarked / "keep.txt").read_bytes() == b"keep" and not (unmarked / MARKER).exists()
    if foreign:
        assert (foreign / "keep.txt").read_bytes() == b"keep"


def test_the_byte_budget_counts_every_file_of_our_marked_folders(start, upload_root):
    """terminal.upload: at most 256 MiB in our marked folders, counted as upstream does (the
    regular files' sizes, markers included, plus the new file and its marker)."""
    gw, _ = start()
    uid, gid = exec_ids(gw)
    # 256 MiB - 64 bytes (sparse) + the 28-byte marker: 36 bytes left.
    big = make_folder(upload_root, PREFIX + "bigbig", (uid, gid), marked=True, files={"blob": MAX_RETAINED_BYTES - 64})
    assert refused(gw, upload_root, {"name": "k.bin", "contentBase64": b64(bytes(1000))}) == EXHAUSTED
    # 8 bytes and their marker fill the budget exactly.
    assert upload(gw, "eight.bin", bytes(8))["size"] == 8
    assert refused(gw, upload_root, {"name": "empty.bin", "contentBase64": ""}) == EXHAUSTED
    shutil.rmtree(big)
    assert upload(gw, "k.bin", bytes(1000))["size"] == 1000


def test_a_staged_folder_is_removed_when_its_retention_ends(start, upload_root):
    """terminal.upload: each staged folder is removed after the retention
    (`--terminal-upload-retention-ms`), not before; an unmarked folder is left alone."""
    gw, _ = start("--terminal-upload-retention-ms", "2000")
    uid, gid = exec_ids(gw)
    unmarked = make_folder(upload_root, PREFIX + "zzzzzz", (uid, gid), marked=False, files={"keep.txt": b"keep"},
                           age_s=TWO_DAYS)
    folder = Path(upload(gw, "short.txt", b"short")["path"]).parent
    due = os.stat(folder).st_mtime + 2.0
    seen, gone = wait_removed(folder, timeout=20)
    assert seen is not None and seen >= due - 0.5, "removed before its retention ended"
    assert gone <= due + 10
    assert (unmarked / "keep.txt").read_bytes() == b"keep"


def test_the_start_clean_up_runs_in_a_files_worker(start, upload_root, tmp_path):
    """At start the uploads' root is swept by a files worker (`--files-mode sweep`, as the exec
    user), never read by the Supervisor; a worker that fails is logged and retried later. A
    stand-in worker records each start."""
    starts = tmp_path / "starts"
    script = tmp_path / "record-files"
    script.write_text(f"#!/bin/sh\necho \"$*\" >> '{starts}'\nexit 1\n")
    script.chmod(0o755)
    tmp_path.chmod(0o755)
    (upload_root / (PREFIX + "abcdef")).mkdir()
    gw, node = start("--files-worker-path", str(script))
    wait_until(starts.exists, 10, "the clean-up worker started")
    assert "--files-mode sweep" in starts.read_text()
    node.wait_log(re.escape("terminal-upload: recovery scan failed"))


def test_after_a_restart_expired_folders_go_at_once_and_the_rest_in_time(start, upload_root):
    """terminal.upload clean-up across restarts: stopping the node removes nothing; at start,
    marked folders older than the retention (by mtime) are removed at once and the others when
    their time comes; a folder without the marker, or of another user, is never touched."""
    gw, node = start()
    uid, gid = exec_ids(gw)
    old = Path(upload(gw, "old.txt", b"old")["path"]).parent
    fresh = Path(upload(gw, "fresh.txt", b"fresh")["path"]).parent
    node.stop()
    assert old.is_dir() and fresh.is_dir(), "stopping the node removes nothing"
    unmarked = make_folder(upload_root, PREFIX + "zzzzzz", (uid, gid), marked=False, files={"keep.txt": b"keep"},
                           age_s=TWO_DAYS)
    foreign = None
    if os.geteuid() == 0 and uid != 0:
        foreign = make_folder(upload_root, PREFIX + "rootxx", (0, 0), marked=True, files={"keep.txt": b"keep"},
                              age_s=TWO_DAYS)
    now = time.time()
    os.utime(old, (now - TWO_DAYS, now - TWO_DAYS))
    os.utime(fresh, (now - 1, now - 1))
    due = now - 1 + 8.0

    start("--terminal-upload-retention-ms", "8000")
    _, old_gone = wait_removed(old, timeout=15)
    assert old_gone < due - 1, "an expired folder goes at start, not with the next expiry"
    seen, gone = wait_removed(fresh, timeout=30)
    assert seen is not None and seen >= due - 0.5, "removed before its retention ended"
    assert gone <= due + 10
    assert (unmarked / "keep.txt").read_bytes() == b"keep" and not (unmarked / MARKER).exists()
    if foreign:
        assert (foreign / "keep.txt").read_bytes() == b"keep" and (foreign / MARKER).read_bytes() == MARKER_TEXT


# ---------------------------------------------------------------- the command surface

def test_both_commands_are_advertised_and_a_restricted_surface_refuses_them(start, upload_root):
    """connect advertises fs.listDir and terminal.upload (cap "system"); with `--commands
    system.run` neither is advertised and an invoke is refused as any unadvertised command;
    `--commands fs.listDir,terminal.upload` keeps just them."""
    gw, node = start()
    params = gw.last_connection.connect_params
    assert {"fs.listDir", "terminal.upload"} <= set(params["commands"]), params["commands"]
    assert "system" in params["caps"]
    node.stop()

    gw, node = start("--commands", "system.run")
    assert gw.last_connection.connect_params["commands"] == ["system.run"]
    for command, params in (("fs.listDir", {"path": "/"}), ("terminal.upload", {"name": "a.txt", "contentBase64": "YQ=="})):
        result = gw.invoke(command, params)
        assert result["ok"] is False and result["error"] == NOT_ADVERTISED, (command, result)
    assert os.listdir(upload_root) == []
    node.stop()

    gw, _ = start("--commands", "fs.listDir,terminal.upload")
    assert sorted(gw.last_connection.connect_params["commands"]) == ["fs.listDir", "terminal.upload"]
    assert listing(gw, {"path": "/"})["path"] == "/"
    assert Path(upload(gw, "a.txt", b"a")["path"]).read_bytes() == b"a"
    result = gw.invoke("system.run", {"command": ["/bin/true"]})
    assert result["ok"] is False and result["error"] == NOT_ADVERTISED, result
