"""A small headless-Chromium driver over the DevTools protocol (websocket-client), for page tests."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
]


def chromium_path() -> str | None:
    """Debian's chromium (or another Chromium on PATH); None when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageVisit:
    """What loading one page showed: its images, every request, console errors, a screenshot."""

    url: str
    images: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    title: str = ""
    text: str = ""
    probe: Any = None


class Chromium:
    """One headless Chromium with a fresh profile; use as a context manager."""

    def __init__(self, binary: str, timeout: float = 60.0) -> None:
        self.binary = binary
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self.ids = itertools.count(1)

    def __enter__(self) -> Chromium:
        import websocket

        self.proc = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode} at start")
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=self.timeout, suppress_origin=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _call(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        events: list | None = None,
    ) -> dict:
        """Send one command and wait for its answer, keeping the events that arrive meanwhile."""
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if events is not None and "method" in reply:
                events.append(reply)

    def visit(
        self,
        path: Path,
        settle_seconds: float = 1.0,
        viewport: tuple[int, int] | None = None,
        probe: str | None = None,
    ) -> PageVisit:
        """Open a local file in a new tab, wait for its load event, and look at what happened.

        viewport: (width, height) of the window in CSS pixels; probe: a JavaScript expression
        whose value lands in `visit.probe`."""
        events: list[dict] = []
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, events=events
        )["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self._call(f"{domain}.enable", session=session, events=events)
        if viewport is not None:
            self._call(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": viewport[0],
                    "height": viewport[1],
                    "deviceScaleFactor": 1,
                    "mobile": False,
                },
                session=session,
                events=events,
            )
        url = Path(path).resolve().as_uri()
        events.clear()
        self._call("Page.navigate", {"url": url}, session=session, events=events)
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == "Page.loadEventFired" for e in events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not finish loading")
            events.append(json.loads(self.ws.recv()))
        # Let late requests or errors (none are expected) show up before looking.
        end = time.monotonic() + settle_seconds
        self.ws.settimeout(0.2)
        while time.monotonic() < end:
            try:
                events.append(json.loads(self.ws.recv()))
            except Exception:  # the websocket's read timeout: nothing more arrived
                pass
        self.ws.settimeout(self.timeout)

        def evaluate(expression: str) -> Any:
            result = self._call(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True, "awaitPromise": True},
                session=session,
                events=events,
            )
            return result["result"].get("value")

        visit = PageVisit(url=url)
        visit.images = evaluate(
            "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)"
            ".then(() => ({src: i.src.slice(0, 40), complete: i.complete, "
            "naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}))))"
        )
        visit.title = evaluate("document.title")
        visit.text = evaluate("document.body.innerText")
        if probe is not None:
            visit.probe = evaluate(probe)
        metrics = self._call("Page.getLayoutMetrics", session=session, events=events)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self._call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": size["width"],
                    "height": size["height"],
                    "scale": 1,
                },
            },
            session=session,
            events=events,
        )
        visit.screenshot = base64.b64decode(shot["data"])
        for event in events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                visit.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                visit.errors.append(
                    " ".join(
                        str(a.get("value", a.get("description", "")))
                        for a in params.get("args", [])
                    )
                )
            elif method == "Runtime.exceptionThrown":
                visit.errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                visit.errors.append(
                    f"{params['entry'].get('source')}: {params['entry'].get('text')}"
                    f" {params['entry'].get('url', '')}"
                )
        self._call("Target.closeTarget", {"targetId": target})
        return visit
