"""Issue 8: browser.proxy through the real BrowserWorker and a real headless Chromium.

The page under test is served by a loopback HTTP server this file starts. The node runs as
root here, so the BrowserWorker and Chromium run as `nobody` with Chromium's own sandbox;
the state dir therefore lives directly under /tmp (pytest's tmp dirs are not searchable
for other users)."""
import base64
import http.server
import json
import os
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import forged_worker, free_port, gateway_args, probe

CHROMIUM = "/usr/lib/chromium/chromium"


@pytest.fixture(autouse=True)
def chromium_installed():
    assert os.path.exists(CHROMIUM), "chromium is not installed: run scripts/setup"

PAGE = b"""<!doctype html>
<html><head><title>Fixture page</title></head><body>
<h1>Fixture page</h1>
<button id="press" onclick="document.getElementById('out').textContent='clicked'; console.error('button clicked')">Press me</button>
<input id="name" aria-label="Name">
<input id="agree" type="checkbox" aria-label="Agree">
<div id="out">idle</div>
<script>console.log('page loaded')</script>
</body></html>
"""


FRAMES = b"""<!doctype html><html><head><title>Frames</title></head><body>
<a href="/fixture?from=frames">Fixture link</a>
<div id="tile" style="cursor:pointer" onclick="this.textContent='Tile opened'">Open <b>tile</b></div>
<div contenteditable="true" aria-label="Notes">draft</div>
<iframe title="Inner frame" srcdoc="<button onclick=&quot;document.body.dataset.hit='yes'; this.textContent='Inner pressed'&quot;>Inner button</button><a href='https://example.invalid/docs'>Docs</a>"></iframe>
</body></html>
"""


UPLOAD = b"""<!doctype html><html><head><title>Upload</title></head><body>
<input id="f" type="file" multiple aria-label="Attach" onchange="
  const out = document.getElementById('out');
  Promise.all([...this.files].map(async f => f.name + ':' + f.size + ':' + (await f.text()))).then(v => out.textContent = v.join(','));">
<button onclick="document.getElementById('f').click()">Choose files</button>
<div id="out">none</div>
</body></html>
"""


TALL = b"""<!doctype html><html><head><title>Tall</title></head>
<body style="margin:0"><div style="height:6000px;background:linear-gradient(red, blue)">tall</div></body></html>
"""


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame marker."""
    index = 2
    while index < len(data):
        assert data[index] == 0xFF
        marker, length = data[index + 1], struct.unpack(">H", data[index + 2:index + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[index + 5:index + 9])
            return width, height
        index += 2 + length
    raise AssertionError("no SOF marker")


SEEN_HEADERS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def site():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            SEEN_HEADERS[self.path] = dict(self.headers)
            body = TALL if self.path.startswith("/tall") else FRAMES if self.path.startswith("/frames") else \
                UPLOAD if self.path.startswith("/upload") else PAGE
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def chromium_pids(marker: str) -> list[int]:
    """Processes whose command line names `marker` (the node's browser data dir)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} missing from /proc/{pid}/status")


@pytest.fixture
def browser_node(make_gateway, nodes):
    """Starts a paired node with `config` in a fresh state dir under /tmp. Returns
    (gateway, node, state_dir). At the end the node is stopped with SIGTERM and no Chromium
    of its data dir may be left."""
    started = []

    def start(config=None, args=(), browser_worker=None, prepare=None):
        state = Path(tempfile.mkdtemp(prefix="ocn-browser-", dir="/tmp"))
        if prepare:
            prepare(state)
        if browser_worker:
            args = list(args) + ["--browser-worker-path", browser_worker]
        if config is None:
            config = {"browser": {"profiles": {"openclaw": {"cdpPort": free_port()}}}}
        (state / "openclaw.json").write_text(json.dumps(config))
        gw = make_gateway(auto_approve=True)
        node = nodes(state, gateway_args(gw) + list(args))
        gw.wait_for_hello(timeout=20)
        started.append((node, state))
        return gw, node, state

    yield start
    for node, state in started:
        node.stop(signal.SIGTERM)
        leftovers = chromium_pids(f"--user-data-dir={state}/browser/")
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(state, ignore_errors=True)
        assert leftovers == [], f"Chromium outlived the node: {leftovers}"


def proxy(gw, method="GET", path="/", timeout_ms=30_000, **params):
    result = gw.invoke("browser.proxy", {"method": method, "path": path, **params}, timeout_ms=timeout_ms)
    payload = json.loads(result["payloadJSON"]) if result.get("ok") else None
    return result, payload


def ok(gw, method="GET", path="/", **params):
    result, payload = proxy(gw, method, path, **params)
    assert result["ok"] is True, result
    return payload


def error_of(result):
    assert result["ok"] is False, result
    return result["error"]["code"], result["error"]["message"]


def ref_of(snapshot: str, role: str, name: str) -> str:
    for line in snapshot.splitlines():
        if f'- {role} "{name}" [ref=' in line:
            return line.split("[ref=")[1].split("]")[0]
    raise AssertionError(f"no {role} {name!r} with a ref in:\n{snapshot}")


# ---------------------------------------------------------------- the agent's path

def test_tab_navigate_snapshot_click_type_screenshot_close(browser_node, site):
    gw, node, state = browser_node()
    hello = gw.wait_for_hello()
    assert "browser.proxy" in hello.connect_params["commands"]
    assert "browser" in hello.connect_params["caps"]

    tab = ok(gw, "POST", "/tabs/open", body={"url": "about:blank"})["result"]
    target = tab["targetId"]
    assert tab["type"] == "page" and tab["wsUrl"].endswith(f"/devtools/page/{target}")

    navigated = ok(gw, "POST", "/navigate", body={"url": f"{site}/fixture", "targetId": target})["result"]
    assert navigated == {"ok": True, "targetId": target, "url": f"{site}/fixture"}

    snap = ok(gw, "GET", "/snapshot", query={"format": "ai", "targetId": target})["result"]
    assert snap["format"] == "ai" and snap["targetId"] == target and snap["url"] == f"{site}/fixture"
    button = ref_of(snap["snapshot"], "button", "Press me")
    assert snap["refs"][button] == {"role": "button", "name": "Press me"}
    assert snap["stats"]["refs"] == len(snap["refs"]) and snap["stats"]["interactive"] >= 3
    textbox = ref_of(snap["snapshot"], "textbox", "Name")
    checkbox = ref_of(snap["snapshot"], "checkbox", "Agree")

    clicked = ok(gw, "POST", "/act", body={"kind": "click", "ref": button, "targetId": target})["result"]
    assert clicked == {"ok": True, "targetId": target, "url": f"{site}/fixture"}
    after = ok(gw, "GET", "/snapshot", query={"format": "ai", "targetId": target})["result"]["snapshot"]
    assert 'StaticText "clicked"' in after and 'StaticText "idle"' not in after

    assert ok(gw, "POST", "/act", body={"kind": "type", "ref": textbox, "text": "Ada"})["result"]["ok"] is True
    ok(gw, "POST", "/act", body={"kind": "fill", "fields": [{"ref": checkbox, "type": "checkbox", "value": True}]})
    state_js = ok(gw, "POST", "/act", body={
        "kind": "evaluate",
        "fn": "() => [document.getElementById('out').textContent, document.getElementById('name').value,"
              " document.getElementById('agree').checked]"})["result"]
    assert state_js["result"] == ["clicked", "Ada", True]
    ok(gw, "POST", "/act", body={"kind": "fill", "fields": [{"ref": textbox, "type": "text", "value": "Grace"}]})
    value = ok(gw, "POST", "/act", body={"kind": "evaluate", "fn": "document.getElementById('name').value"})["result"]
    assert value["result"] == "Grace"

    shot = ok(gw, "POST", "/screenshot", body={"targetId": target})
    assert shot["result"]["ok"] is True and shot["result"]["targetId"] == target
    [file] = shot["files"]
    assert file["path"] == shot["result"]["path"] and file["mimeType"] == "image/png"
    png = base64.b64decode(file["base64"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 100 and height > 100 and len(png) < 10 * 1024 * 1024
    assert not Path(file["path"]).exists()  # inlined, then removed from the node

    console = ok(gw, "GET", "/console", query={"targetId": target})["result"]
    texts = [(m["type"], m["text"]) for m in console["messages"]]
    assert ("log", "page loaded") in texts and ("error", "button clicked") in texts
    errors_only = ok(gw, "GET", "/console", query={"targetId": target, "level": "error"})["result"]["messages"]
    assert [m["text"] for m in errors_only] == ["button clicked"]

    assert ok(gw, "DELETE", f"/tabs/{target}")["result"] == {"ok": True}
    tabs = ok(gw, "GET", "/tabs")["result"]
    assert tabs["running"] is True and target not in [t["targetId"] for t in tabs["tabs"]]


def test_ai_snapshot_expands_iframes_and_appends_link_targets(browser_node, site):
    gw, node, state = browser_node()
    target = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/frames"})["result"]["targetId"]
    ok(gw, "POST", "/act", body={"kind": "wait", "targetId": target, "fn":
                                 "() => (document.querySelector('iframe').contentDocument?.body?.textContent || '').includes('Docs')"})
    snap = ok(gw, "GET", "/snapshot", query={"format": "ai", "targetId": target, "urls": "true"})["result"]
    lines = snap["snapshot"].splitlines()
    link = next(line for line in lines if '- link "Fixture link"' in line)
    assert link.endswith(f"[url={site}/fixture?from=frames]"), link
    frame_line = next(index for index, line in enumerate(lines) if "- Iframe" in line)
    inner = next(index for index, line in enumerate(lines) if '- button "Inner button"' in line)
    indent = lambda line: len(line) - len(line.lstrip(" "))
    # The frame's tree is indented under the iframe line, refs counted on across the page.
    assert inner > frame_line and indent(lines[inner]) > indent(lines[frame_line])
    assert '[ref=' in lines[frame_line]
    docs = next(line for line in lines if '- link "Docs"' in line)
    assert docs.endswith("[url=https://example.invalid/docs]"), docs
    numbers = [int(ref[1:]) for ref in snap["refs"]]
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    # Elements that only look clickable get a ref, their reasons, and their text as name; the
    # <b> inside the tile inherits the pointer and is not listed separately.
    tile = next(line for line in lines if "[cursor:pointer, onclick]" in line)
    assert '"Open tile" [ref=' in tile, tile
    assert sum("cursor:pointer" in line for line in lines) == 1
    notes = next(line for line in lines if '"Notes"' in line)
    assert notes.endswith("[contenteditable]"), notes
    interactive = ok(gw, "GET", "/snapshot", query={"targetId": target, "interactive": "true"})["result"]["snapshot"]
    assert "[cursor:pointer, onclick]" in interactive
    tile_ref = tile.split("[ref=")[1].split("]")[0]
    ok(gw, "POST", "/act", body={"kind": "click", "ref": tile_ref, "targetId": target})
    # A ref inside the frame acts on the frame's element.
    button = ref_of(snap["snapshot"], "button", "Inner button")
    ok(gw, "POST", "/act", body={"kind": "click", "ref": button, "targetId": target})
    after = ok(gw, "GET", "/snapshot", query={"format": "ai", "targetId": target})["result"]["snapshot"]
    assert '- button "Inner pressed"' in after and "[url=" not in after
    assert '"Tile opened"' in after
    marks = ok(gw, "POST", "/act", body={"kind": "evaluate", "targetId": target,
                                        "fn": "() => document.querySelectorAll('[data-openclaw-node-ci]').length"})["result"]
    assert marks["result"] == 0, "the page is left as it was"


def test_cookies_storage_and_emulation_over_cdp(browser_node, site):
    gw, node, state = browser_node()
    target = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/fixture"})["result"]["targetId"]

    def js(fn):
        return ok(gw, "POST", "/act", body={"kind": "evaluate", "targetId": target, "fn": fn})["result"]["result"]

    done = {"ok": True, "targetId": target}
    assert ok(gw, "POST", "/cookies/set", body={"targetId": target, "cookie": {"name": "flavour", "value": "oat", "url": site}})["result"] == done
    cookies = ok(gw, "GET", "/cookies", query={"targetId": target})["result"]
    [cookie] = [c for c in cookies["cookies"] if c["name"] == "flavour"]
    assert cookie["value"] == "oat" and cookie["domain"] == "127.0.0.1" and cookie["expires"] == -1 and cookie["sameSite"] == "Lax"
    assert "flavour=oat" in js("() => document.cookie")
    ok(gw, "POST", "/cookies/clear", body={"targetId": target})
    assert [c for c in ok(gw, "GET", "/cookies")["result"]["cookies"] if c["name"] == "flavour"] == []
    code, message = error_of(proxy(gw, "POST", "/cookies/set", body={"cookie": {"name": "x", "value": "y"}})[0])
    assert message == "Error: 500: cookie requires url, or domain+path"

    assert ok(gw, "POST", "/storage/local/set", body={"targetId": target, "key": "k", "value": "v 1"})["result"] == done
    ok(gw, "POST", "/storage/session/set", body={"key": "s", "value": "2"})
    assert ok(gw, "GET", "/storage/local", query={"targetId": target})["result"] == {**done, "values": {"k": "v 1"}}
    assert ok(gw, "GET", "/storage/session", query={"key": "s"})["result"]["values"] == {"s": "2"}
    assert ok(gw, "GET", "/storage/session", query={"key": "missing"})["result"]["values"] == {}
    assert js("() => localStorage.getItem('k')") == "v 1"
    ok(gw, "POST", "/storage/local/clear", body={"targetId": target})
    assert ok(gw, "GET", "/storage/local")["result"]["values"] == {}

    ok(gw, "POST", "/set/timezone", body={"timezoneId": "Asia/Tokyo"})
    assert js("() => Intl.DateTimeFormat().resolvedOptions().timeZone") == "Asia/Tokyo"
    ok(gw, "POST", "/set/locale", body={"locale": "de-DE"})
    assert js("() => new Intl.NumberFormat().resolvedOptions().locale") == "de-DE"
    ok(gw, "POST", "/set/media", body={"colorScheme": "dark"})
    assert js("() => matchMedia('(prefers-color-scheme: dark)').matches") is True
    ok(gw, "POST", "/set/offline", body={"offline": True})
    assert js("() => navigator.onLine") is False
    ok(gw, "POST", "/set/offline", body={"offline": False})
    ok(gw, "POST", "/set/headers", body={"headers": {"X-Openclaw-Test": "yes", "X-Ignored": 7}})
    ok(gw, "POST", "/navigate", body={"url": f"{site}/fixture?headers", "targetId": target})
    seen = {k.lower(): v for k, v in SEEN_HEADERS["/fixture?headers"].items()}
    assert seen.get("x-openclaw-test") == "yes" and "x-ignored" not in seen
    ok(gw, "POST", "/set/geolocation", body={"latitude": 48.85, "longitude": 2.35})
    code, message = error_of(proxy(gw, "POST", "/set/credentials", body={"username": "a"})[0])
    assert message.startswith("Error: 501: Playwright is not available in this gateway build; 'http credentials' is unsupported.")


def test_page_errors_requests_and_highlight(browser_node, site):
    gw, node, state = browser_node()
    target = ok(gw, "POST", "/tabs/open", body={"url": "about:blank"})["result"]["targetId"]
    ok(gw, "POST", "/navigate", body={"url": f"{site}/fixture?traced", "targetId": target})

    def js(fn):
        return ok(gw, "POST", "/act", body={"kind": "evaluate", "targetId": target, "fn": fn})["result"]["result"]

    js("() => { setTimeout(() => { throw new TypeError('boom here'); }, 0);"
       " setTimeout(() => { throw 'plain'; }, 0); fetch('http://127.0.0.1:9/refused').catch(() => 0); return 1; }")
    ok(gw, "POST", "/act", body={"kind": "wait", "timeMs": 500, "targetId": target})
    errors = ok(gw, "GET", "/errors", query={"targetId": target})["result"]
    assert errors["ok"] is True and errors["targetId"] == target
    typed, plain = errors["errors"][-2:]
    assert typed["name"] == "TypeError" and typed["message"] == "boom here" and "boom here" in typed["stack"]
    assert plain["message"] == "plain" and "name" not in plain
    assert typed["timestamp"].endswith("Z")
    assert len(ok(gw, "GET", "/errors", query={"targetId": target, "clear": "true"})["result"]["errors"]) >= 2
    assert ok(gw, "GET", "/errors", query={"targetId": target})["result"]["errors"] == []

    requests = ok(gw, "GET", "/requests", query={"targetId": target, "filter": "traced"})["result"]["requests"]
    [document] = requests
    assert document["method"] == "GET" and document["url"] == f"{site}/fixture?traced"
    assert document["resourceType"] == "document" and document["status"] == 200 and document["ok"] is True
    [refused] = ok(gw, "GET", "/requests", query={"targetId": target, "filter": "refused"})["result"]["requests"]
    assert refused["ok"] is False and refused["failureText"]

    snap = ok(gw, "GET", "/snapshot", query={"targetId": target})["result"]
    button = ref_of(snap["snapshot"], "button", "Press me")
    assert ok(gw, "POST", "/highlight", body={"ref": button, "targetId": target})["result"] == {"ok": True, "targetId": target}
    assert js("() => document.getElementById('press').style.outline") == "rgb(255, 69, 0) solid 3px"
    code, message = error_of(proxy(gw, "POST", "/highlight", body={"targetId": target})[0])
    assert message == "Error: 400: ref is required"

    # Dialogs: an armed answer is given to the next one; one nobody armed for is dismissed
    # (it never blocks the tab).
    assert ok(gw, "POST", "/hooks/dialog", body={"accept": True, "promptText": "Ada", "targetId": target})["result"] == {"ok": True}
    assert js("() => prompt('Name?')") == "Ada"
    assert js("() => confirm('Sure?')") is False
    ok(gw, "POST", "/hooks/dialog", body={"accept": True})
    assert js("() => confirm('Sure?')") is True
    code, message = error_of(proxy(gw, "POST", "/hooks/dialog", body={"promptText": "x"})[0])
    assert message == "Error: 400: accept is required"


def test_tab_handles_and_labels_select_tabs(browser_node, site):
    gw, node, state = browser_node()
    first = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/fixture", "label": "main"})["result"]
    assert first["label"] == "main" and first["suggestedTargetId"] == "main"
    assert first["tabId"].startswith("t") and first["tabId"][1:].isdigit()
    second = ok(gw, "POST", "/tabs/open", body={"url": "about:blank"})["result"]
    assert second["suggestedTargetId"] == second["tabId"] != first["tabId"] and "label" not in second
    listed = {t["targetId"]: t for t in ok(gw, "GET", "/tabs")["result"]["tabs"]}
    assert listed[first["targetId"]]["tabId"] == first["tabId"] and listed[first["targetId"]]["label"] == "main"

    # A handle or a label selects its tab wherever a targetId is taken.
    assert ok(gw, "GET", "/snapshot", query={"targetId": first["tabId"]})["result"]["targetId"] == first["targetId"]
    assert ok(gw, "POST", "/navigate", body={"targetId": "main", "url": f"{site}/fixture?again"})["result"]["targetId"] == first["targetId"]

    code, message = error_of(proxy(gw, "POST", "/tabs/open", body={"url": "about:blank", "label": "main"})[0])
    assert message == f'Error: 409: label "main" is already used by tab {first["tabId"]}'
    code, message = error_of(proxy(gw, "POST", "/tabs/open", body={"url": "about:blank", "label": "no spaces"})[0])
    assert message == "Error: 400: label must match ^[A-Za-z0-9_.:-]{1,64}$"
    code, message = error_of(proxy(gw, "POST", "/tabs/action", body={"action": "label", "targetId": second["tabId"], "label": "t1"})[0])
    assert message == 'Error: 400: label "t1" would shadow a tab handle or id'
    labelled = ok(gw, "POST", "/tabs/action", body={"action": "label", "targetId": second["tabId"], "label": "scratch"})["result"]
    assert labelled["ok"] is True and labelled["tab"]["label"] == "scratch" and labelled["tab"]["suggestedTargetId"] == "scratch"
    code, message = error_of(proxy(gw, "POST", "/tabs/action", body={"action": "label", "targetId": second["tabId"]})[0])
    assert message == "Error: 400: label is required"

    # Handles are never reused while the runtime lives.
    assert ok(gw, "DELETE", f"/tabs/{second['tabId']}")["result"] == {"ok": True}
    third = ok(gw, "POST", "/tabs/open", body={"url": "about:blank", "label": "scratch"})["result"]
    assert int(third["tabId"][1:]) > int(second["tabId"][1:]) and third["label"] == "scratch"


def test_snapshot_labels_returns_a_badged_screenshot(browser_node, site):
    gw, node, state = browser_node()
    target = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/fixture"})["result"]["targetId"]
    labelled = ok(gw, "GET", "/snapshot", query={"targetId": target, "labels": "1"})
    result = labelled["result"]
    assert result["labels"] is True and result["imageType"] == "png"
    assert result["labelsCount"] + result["labelsSkipped"] == len(result["refs"]) and result["labelsCount"] >= 3
    [file] = labelled["files"]
    assert file["path"] == result["imagePath"] and file["mimeType"] == "image/png"
    assert base64.b64decode(file["base64"])[:8] == b"\x89PNG\r\n\x1a\n"
    gone = ok(gw, "POST", "/act", body={"kind": "evaluate", "targetId": target,
                                       "fn": "() => document.getElementById('__openclaw_node_labels') === null"})["result"]
    assert gone["result"] is True, "the badge overlay is removed after the capture"
    code, message = error_of(proxy(gw, "GET", "/snapshot", query={"format": "aria", "labels": "1"})[0])
    assert message == "Error: 400: labels/mode=efficient require format=ai"


def test_a_tall_full_page_screenshot_is_normalised_like_upstream(browser_node, site):
    gw, node, state = browser_node()
    tab = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/tall"})["result"]
    shot = ok(gw, "POST", "/screenshot", body={"targetId": tab["targetId"], "fullPage": True})
    [file] = shot["files"]
    data = base64.b64decode(file["base64"])
    assert file["mimeType"] == "image/jpeg" and shot["result"]["path"].endswith(".jpg")
    width, height = jpeg_size(data)
    assert max(width, height) <= 2000 and height > width  # the whole 6000 px page, scaled down
    assert len(data) <= 5 * 1024 * 1024


def upload_call(gw, body, files, command="browser.proxy.upload.v1", **params):
    envelope = {"envelope": "browser-upload-v1",
                "files": [{"name": name, "contentBase64": base64.b64encode(data).decode()} for name, data in files]}
    return gw.invoke(command, {"method": "POST", "path": "/hooks/file-chooser", "body": body, "upload": envelope, **params},
                     timeout_ms=30_000)


def page_text(gw, target, element="out", want=None, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        text = ok(gw, "POST", "/act", body={"kind": "evaluate", "targetId": target,
                                             "fn": f"document.getElementById('{element}').textContent"})["result"]["result"]
        if want is None or text == want or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def staged_folders(state):
    root = state / "browser" / "uploads" / ".proxy-uploads"
    return sorted(p for p in root.iterdir() if p.name.startswith("upload-")) if root.exists() else []


def test_upload_envelope_is_staged_and_set_on_the_input_directly_or_through_the_chooser(browser_node, site):
    """browser.proxy.upload.v1 (upstream's browser-proxy-upload.ts): the gateway's files become
    private copies in the worker's uploads folder, named in `paths`; `element`/`inputRef` set
    them at once, `ref` opens the page's file chooser, which gets them."""
    gw, node, state = browser_node()
    hello = gw.wait_for_hello()
    assert {"browser.proxy", "browser.proxy.upload.v1"} <= set(hello.connect_params["commands"])
    target = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/upload"})["result"]["targetId"]
    ok(gw, "POST", "/navigate", body={"url": f"{site}/upload", "targetId": target})

    result = upload_call(gw, {"element": "#f", "targetId": target}, [("re?port.txt", b"hello")])
    assert result["ok"] is True, result
    assert json.loads(result["payloadJSON"]) == {"result": {"ok": True}}
    assert page_text(gw, target, want="re_port.txt:5:hello") == "re_port.txt:5:hello"
    [folder] = staged_folders(state)
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert (folder / ".openclaw-browser-proxy-upload-v1").read_text() == "openclaw-browser-proxy-upload-v1\n"
    staged = folder / "0" / "re_port.txt"
    assert staged.read_bytes() == b"hello" and oct(staged.stat().st_mode & 0o777) == "0o600"

    snap = ok(gw, "GET", "/snapshot", query={"format": "ai", "targetId": target})["result"]
    chooser = ref_of(snap["snapshot"], "button", "Choose files")
    result = upload_call(gw, {"ref": chooser, "targetId": target}, [("a.txt", b"abc"), ("b.bin", b"xy")])
    assert result["ok"] is True, result
    assert page_text(gw, target, want="a.txt:3:abc,b.bin:2:xy") == "a.txt:3:abc,b.bin:2:xy"
    assert len(staged_folders(state)) == 2

    # A route that fails discards its staged copy.
    failed = upload_call(gw, {"element": "#missing", "targetId": target}, [("c.txt", b"c")], errorEnvelope="browser-v1")
    assert failed["ok"] is True, failed
    assert json.loads(failed["payloadJSON"])["error"]["status"] == 404
    assert len(staged_folders(state)) == 2


def test_upload_envelope_refusals_are_upstreams(browser_node, site):
    gw, node, state = browser_node()
    files = [("a.txt", b"a")]
    assert error_of(upload_call(gw, {}, files, command="browser.proxy")) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: browser.proxy does not accept upload envelopes")
    for upload in (None, False, 0, ""):
        result = gw.invoke("browser.proxy.upload.v1", {"method": "POST", "path": "/hooks/file-chooser", "body": {}, "upload": upload})
        assert error_of(result) == ("INVALID_REQUEST", "Error: INVALID_REQUEST: browser.proxy.upload.v1 requires an upload envelope")
    result = gw.invoke("browser.proxy.upload.v1", {"method": "GET", "path": "/snapshot",
                                                    "upload": {"envelope": "browser-upload-v1", "files": []}})
    assert error_of(result) == ("INVALID_REQUEST", "Error: INVALID_REQUEST: browser proxy upload requires the file chooser route")
    assert error_of(upload_call(gw, {"paths": ["/etc/passwd"]}, files)) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: browser proxy upload body must omit paths")
    assert error_of(gw.invoke("browser.proxy.upload.v1", {"method": "POST", "path": "/hooks/file-chooser", "body": {},
                                                          "upload": {"envelope": "browser-upload-v2", "files": [{}]}})) == (
        "INVALID_REQUEST", "Error: INVALID_REQUEST: invalid browser proxy upload envelope")
    assert error_of(upload_call(gw, {}, [("  ", b"a")])) == ("INVALID_REQUEST", "Error: INVALID_REQUEST: invalid browser proxy upload file")
    bad = gw.invoke("browser.proxy.upload.v1", {"method": "POST", "path": "/hooks/file-chooser", "body": {},
                                                "upload": {"envelope": "browser-upload-v1", "files": [{"name": "a", "contentBase64": "YR=="}]}})
    assert error_of(bad) == ("INVALID_REQUEST", "Error: INVALID_REQUEST: invalid browser proxy upload encoding")
    big = upload_call(gw, {}, [("big", b"\0" * (10 * 1024 * 1024 + 1))])
    assert error_of(big) == ("INVALID_REQUEST", "Error: browser proxy file exceeds 10 MiB limit")
    assert staged_folders(state) == []
    # Plain browser.proxy takes paths from the uploads folder only.
    target = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/upload"})["result"]["targetId"]
    outside = proxy(gw, "POST", "/hooks/file-chooser", body={"paths": ["/etc/hostname"], "element": "#f", "targetId": target})[0]
    uploads = state / "browser" / "uploads"
    assert error_of(outside) == ("INVALID_REQUEST", f"Error: 400: Invalid path: must stay within uploads directory ({uploads})")
    assert error_of(proxy(gw, "POST", "/hooks/file-chooser", body={"element": "#f"})[0]) == (
        "INVALID_REQUEST", "Error: 400: paths are required")
    both = proxy(gw, "POST", "/hooks/file-chooser", body={"paths": ["x"], "element": "#f", "ref": "e1", "targetId": target})[0]
    assert error_of(both) == ("INVALID_REQUEST", "Error: 400: ref cannot be combined with inputRef/element")


def test_status_start_stop_and_aria_snapshot(browser_node, site):
    gw, node, state = browser_node()
    status = ok(gw)["result"]
    assert status["running"] is False and status["profile"] == "openclaw"
    assert status["detectedExecutablePath"] == CHROMIUM and status["headless"] is True
    assert ok(gw, "GET", "/tabs")["result"] == {"running": False, "tabs": []}
    assert ok(gw, "POST", "/start")["result"] == {"ok": True, "profile": "openclaw"}
    status = ok(gw)["result"]
    assert status["running"] is True and status["cdpReady"] is True and status["cdpHttp"] is True
    tab = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/aria"})["result"]
    aria = ok(gw, "GET", "/snapshot", query={"format": "aria", "targetId": tab["targetId"]})["result"]
    roles = [(n["role"], n["name"]) for n in aria["nodes"]]
    assert aria["nodes"][0]["ref"] == "ax1" and aria["nodes"][0]["depth"] == 0
    assert ("button", "Press me") in roles and ("RootWebArea", "Fixture page") in roles
    assert ok(gw, "GET", "/snapshot", query={"format": "aria", "limit": 2})["result"]["nodes"].__len__() == 2
    pdf = ok(gw, "POST", "/pdf", body={"targetId": tab["targetId"]})
    assert base64.b64decode(pdf["files"][0]["base64"])[:5] == b"%PDF-" and pdf["files"][0]["mimeType"] == "application/pdf"
    assert ok(gw, "POST", "/stop")["result"] == {"ok": True, "stopped": True, "profile": "openclaw"}
    assert chromium_pids(f"--user-data-dir={state}/browser/") == []
    assert ok(gw)["result"]["running"] is False


# ---------------------------------------------------------------- errors in upstream's shapes

def test_route_errors_plain_and_enveloped(browser_node):
    gw, node, state = browser_node()
    code, message = error_of(proxy(gw, "GET", "/nope")[0])
    assert (code, message) == ("INVALID_REQUEST", "Error: 404: Not Found")
    enveloped = ok(gw, "GET", "/nope", errorEnvelope="browser-v1")
    assert enveloped == {"error": {"status": 404, "body": {"error": "Not Found"}},
                         "route": {"status": "resolved", "profile": "openclaw", "driver": "openclaw"}}
    code, message = error_of(proxy(gw, "POST", "/act", body={"kind": "click"})[0])
    assert message == "Error: 400: ref is required"
    enveloped = ok(gw, "POST", "/act", body={"kind": "click"}, errorEnvelope="browser-v1")
    assert enveloped["error"] == {"status": 400, "body": {"error": "ref is required", "code": "ACT_INVALID_REQUEST"}}
    code, message = error_of(proxy(gw, "POST", "/trace/start")[0])
    assert message.startswith("Error: 501: Playwright is not available in this gateway build; 'trace' is unsupported.")
    assert error_of(proxy(gw, "GET", "/", profile="ghost")[0])[1] == \
        'Error: 404: Profile "ghost" not found. Available profiles: openclaw'
    assert error_of(proxy(gw, "GET", "  ")[0]) == ("INVALID_REQUEST", "Error: INVALID_REQUEST: path required")
    assert error_of(proxy(gw, "PUT", "/")[0])[1] == "Error: INVALID_REQUEST: method must be GET, POST, or DELETE"
    assert error_of(gw.invoke("browser.proxy", None))[1] == "Error: INVALID_REQUEST: paramsJSON required"


def test_persistent_profile_and_host_local_routes_are_refused(browser_node):
    gw, node, state = browser_node()
    for method, path in [("POST", "/profiles/create"), ("DELETE", "/profiles/openclaw"), ("POST", "/reset-profile"),
                         ("POST", "profiles/create/")]:
        assert error_of(proxy(gw, method, path, body={"name": "x"})[0]) == \
            ("INVALID_REQUEST", "Error: INVALID_REQUEST: browser.proxy cannot mutate persistent browser profiles"), path
    for method, path in [("GET", "/system-profiles"), ("POST", "/profiles/import")]:
        assert error_of(proxy(gw, method, path)[0]) == \
            ("INVALID_REQUEST", "Error: INVALID_REQUEST: browser.proxy cannot run host-local browser routes"), path
    assert "worker=browser" not in node.log  # refused before any worker started


def test_allow_profiles_restricts_profile_from_every_source(browser_node):
    config = {"browser": {"profiles": {"openclaw": {"cdpPort": free_port()}, "work": {"cdpPort": free_port()}}},
              "nodeHost": {"browserProxy": {"allowProfiles": [" openclaw "]}}}
    gw, node, state = browser_node(config)
    refused = ("INVALID_REQUEST", "Error: INVALID_REQUEST: browser profile not allowed")
    assert error_of(proxy(gw, "GET", "/", profile="work")[0]) == refused
    assert error_of(proxy(gw, "GET", "/", query={"profile": "work"})[0]) == refused
    assert error_of(proxy(gw, "POST", "/start", body={"profile": "work"})[0]) == refused
    assert error_of(proxy(gw, "GET", "/profiles", profile="work")[0]) == refused
    # query wins over body and params: an allowed query profile is used even if body names another
    assert ok(gw, "GET", "/", query={"profile": "openclaw"}, profile="work")["result"]["profile"] == "openclaw"
    profiles = ok(gw, "GET", "/profiles")["result"]["profiles"]
    assert [p["name"] for p in profiles] == ["openclaw"]
    assert ok(gw, "GET", "/profiles", errorEnvelope="browser-v1")["route"] == {"status": "unavailable"}


def test_disabled_proxy_is_not_advertised_and_answers_unavailable(browser_node):
    gw, node, state = browser_node({"nodeHost": {"browserProxy": {"enabled": False}}})
    hello = gw.wait_for_hello()
    assert "browser.proxy" not in hello.connect_params["commands"]
    assert "browser" not in hello.connect_params["caps"]
    result = gw.invoke("browser.proxy", {"path": "/"})
    assert error_of(result) == ("UNAVAILABLE", "Error: UNAVAILABLE: node browser proxy disabled")
    assert not (state / "browser").exists()


# ---------------------------------------------------------------- robustness and confinement

def test_no_chromium_outlives_a_supervisor_killed_with_sigkill(browser_node, site):
    gw, node, state = browser_node()
    ok(gw, "POST", "/tabs/open", body={"url": f"{site}/sigkill"})
    marker = f"--user-data-dir={state}/browser/"
    assert chromium_pids(marker)
    node.proc.kill()  # SIGKILL: no shutdown, no sweep, no cgroup
    node.proc.wait(timeout=10)
    # The BrowserWorker's parent-death signal (SIGTERM) kills Chromium's process group.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and chromium_pids(marker):
        time.sleep(0.1)
    assert chromium_pids(marker) == [], "Chromium survived a SIGKILLed Supervisor"


def test_killing_the_browser_worker_mid_request_fails_that_request_only(browser_node, site):
    gw, node, state = browser_node()
    ok(gw, "POST", "/tabs/open", body={"url": f"{site}/kill"})
    old_chromium = chromium_pids(f"--user-data-dir={state}/browser/")
    assert old_chromium
    worker = node.worker_pid("browser")
    pending = gw.invoke_async("browser.proxy", {"method": "POST", "path": "/act", "body": {"kind": "wait", "timeMs": 8000}},
                              timeout_ms=30_000)
    time.sleep(1.0)
    os.kill(worker, signal.SIGKILL)
    result = pending.result(timeout=20)
    code, message = error_of(result)
    assert code == "UNAVAILABLE" and message.startswith("Error: browser worker exited"), result
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in old_chromium):
        time.sleep(0.1)
    assert not [pid for pid in old_chromium if Path(f"/proc/{pid}").exists()], "the dead worker's Chromium survived"
    tab = ok(gw, "POST", "/tabs/open", body={"url": f"{site}/again"})["result"]
    snap = ok(gw, "GET", "/snapshot", query={"targetId": tab["targetId"]})["result"]
    assert ref_of(snap["snapshot"], "button", "Press me")
    assert node.worker_pid("browser") != worker


def test_browser_worker_and_chromium_are_confined(browser_node, site):
    gw, node, state = browser_node()
    ok(gw, "POST", "/tabs/open", body={"url": f"{site}/confined"})
    worker = node.worker_pid("browser")
    assert node.wait_log("browser worker ready")
    for field, expected in [("NoNewPrivs", "1"), ("Seccomp", "2"), ("CapEff", "0000000000000000"), ("CapBnd", "0000000000000000")]:
        assert status_field(worker, field) == expected, field
    nobody = 65534
    assert status_field(worker, "Uid").split()[0] == str(nobody)
    chromium = chromium_pids(f"--user-data-dir={state}/browser/")
    assert chromium
    worker_userns = os.readlink(f"/proc/{worker}/ns/user")
    sandboxed = 0
    for pid in chromium:
        try:
            assert status_field(pid, "Uid").split()[0] == str(nobody)
            assert status_field(pid, "NoNewPrivs") == "1"
            assert status_field(pid, "Seccomp") == "2"
            if os.readlink(f"/proc/{pid}/ns/user") != worker_userns:
                sandboxed += 1
        except FileNotFoundError:
            continue
    # Chromium's own namespace sandbox is on: its zygote and renderers live in new user namespaces.
    assert sandboxed >= 1


def browser_probe(*words, writable, unconfined=()):
    """The BrowserWorker confined with its data dir writable and Chromium executable, then one probe."""
    options = ["--write-path", str(writable), "--exec-path", "/usr/lib/chromium"]
    for step in unconfined:
        options += ["--unconfined", step]
    return probe("browser", *words, options=options)


def test_browser_worker_landlock_writes_and_executes_only_what_it_needs(tmp_path):
    data = tmp_path / "browser"
    data.mkdir()
    secret = tmp_path / "identity"
    secret.mkdir()
    # As root without the user switch only Landlock stands between the worker and the files.
    as_root = ("user",)
    assert browser_probe("write", str(data / "ok"), writable=data, unconfined=as_root) == "probe write: allowed"
    assert browser_probe("write", str(secret / "planted"), writable=data, unconfined=as_root) == "probe write: refused Permission denied"
    assert browser_probe("read", str(secret), writable=data, unconfined=as_root) == "probe read: refused Permission denied"
    assert browser_probe("execve", writable=data, unconfined=as_root) == "probe execve: refused Permission denied"
    # Without Landlock the same probes succeed, so the refusals above are Landlock's.
    assert browser_probe("write", str(secret / "planted"), writable=data, unconfined=as_root + ("landlock",)) == "probe write: allowed"


# ---------------------------------------------------------------- a compromised BrowserWorker

def test_a_planted_media_symlink_is_not_followed_when_the_directory_is_handed_over(browser_node, tmp_path):
    target = tmp_path / "root-owned"
    target.mkdir()
    os.chmod(target, 0o700)

    def plant(state):
        (state / "browser").mkdir(mode=0o700)
        (state / "browser" / "media").symlink_to(target)

    gw, node, state = browser_node(prepare=plant)
    ok(gw)  # starts the BrowserWorker, which hands <state>/browser over to its user
    assert (state / "browser").stat().st_uid == 65534
    assert target.stat().st_uid == 0 and (target.stat().st_mode & 0o777) == 0o700
    node.wait_log("browser data directory is not a plain directory; not handing it over")

def test_forged_browser_worker_cannot_make_the_supervisor_read_other_files(browser_node, tmp_path):
    worker = forged_worker(tmp_path, "browser-file-path", "/etc/shadow")
    gw, node, state = browser_node(browser_worker=worker)
    for target in ["/etc/shadow", f"{state}/identity/device.json"]:
        assert Path(target).exists()
    code, message = error_of(proxy(gw, "POST", "/screenshot")[0])
    assert (code, message) == ("INVALID_REQUEST", "Error: browser proxy file read failed for /etc/shadow: Error: file not found")
    assert "base64" not in node.log


def test_forged_browser_worker_speaking_before_ready_is_killed_and_the_call_times_out(browser_node, tmp_path):
    worker = forged_worker(tmp_path, "browser-early-response")
    gw, node, state = browser_node(browser_worker=worker)
    result, _ = proxy(gw, "GET", "/tabs", timeoutMs=2500)
    assert error_of(result) == ("INVALID_REQUEST",
                                "Error: browser proxy timed out for GET /tabs after 2500ms; browser action; profile=openclaw")
    node.wait_log(r'browser\.response.{0,4} is not allowed while the browser worker is awaitingReady')
    assert node.proc.poll() is None
