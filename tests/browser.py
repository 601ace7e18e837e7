"""Headless Chromium over the DevTools protocol, for checking what a reader's browser shows.

    with Browser() as b:
        page = b.load(Path("runs/x/report.html"))   # images, requests, console errors
        b.screenshot(Path("/tmp/report.png"))         # the whole page, not just the viewport

One browser process per `Browser`, with its own throwaway profile; closing it kills the process
group it started and removes the profile. `find_chromium()` is None where no browser is
installed (tests skip on that).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.limits import HANG_S

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# A throwaway browser: no sandbox (Chromium will not start as root with one), no GPU, nothing
# fetched or shown that the page under test did not ask for; Chromium picks the DevTools port
# and writes it into the profile, where `_connect` reads it.
HEADLESS_FLAGS = (
    "--headless=new",
    "--remote-debugging-port=0",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--mute-audio",
    "--disable-background-networking",
    "--disable-component-update",
    "--hide-scrollbars",
)

CHECK_JS = """(() => ({
  images: Array.from(document.images).map(i => ({
    src: i.currentSrc.slice(0, 40), complete: i.complete, width: i.naturalWidth,
    height: i.naturalHeight})),
  title: document.title,
  height: document.documentElement.scrollHeight,
}))()"""


def find_chromium() -> str | None:
    """The Chromium (or Chrome) binary: $CHROMIUM if set, else the first on PATH."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


@dataclass
class Page:
    """What loading a page showed: its images, every request it made, console errors."""

    images: list[dict[str, Any]]
    requests: list[str]
    errors: list[str]
    title: str
    height: int

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [i for i in self.images if not (i["complete"] and i["width"] > 0)]


@dataclass
class Browser:
    width: int = 1200
    height: int = 900
    timeout: float = HANG_S  # waits on the browser are guards against a hang, not speeds
    binary: str | None = None
    _events: list[dict[str, Any]] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)

    def __enter__(self) -> Browser:
        binary = self.binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("no chromium binary found (set $CHROMIUM)")
        self._profile = Path(tempfile.mkdtemp(prefix="research-chromium-"))
        profile = f"--user-data-dir={self._profile}"
        window = f"--window-size={self.width},{self.height}"
        self._proc = subprocess.Popen(
            [binary, *HEADLESS_FLAGS, profile, window, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:  # the browser's helpers (zygote, renderers) share its process group
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        profile = getattr(self, "_profile", None)
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)

    # the DevTools connection -------------------------------------------------------------
    def _connect(self) -> None:
        from websockets.sync.client import connect

        active = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (active.exists() and len(active.read_text().splitlines()) >= 2):
            if self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode} at start")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = active.read_text().splitlines()[:2]
        # entered as a context manager: the form every websockets version since 12 accepts
        url = f"ws://127.0.0.1:{port}{path}"
        self._ws = self._stack.enter_context(connect(url, max_size=None, open_timeout=10))
        self._id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable", session=True)

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: bool = False
    ) -> dict[str, Any]:
        """Send one command and wait for its answer; events that arrive meanwhile are kept."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        self._ws.send(json.dumps(msg))
        while True:
            reply = self._recv(time.monotonic() + self.timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _recv(self, deadline: float) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from chromium")
        return json.loads(self._ws.recv(timeout=left))

    def _wait_event(self, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for e in self._events:
                if e.get("method") == name:
                    return e
            self._events.append(self._recv(deadline))

    # what tests and scripts use ----------------------------------------------------------
    def load(self, path: Path) -> Page:
        """Open a local file, wait for its load event, and report what the page shows."""
        self._events.clear()
        self.send("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=True)
        self._wait_event("Page.loadEventFired")
        result = self.send(
            "Runtime.evaluate", {"expression": CHECK_JS, "returnByValue": True}, session=True
        )
        value = result["result"]["value"]
        requests, errors = [], []
        for e in self._events:
            p = e.get("params", {})
            if e.get("method") == "Network.requestWillBeSent":
                requests.append(p["request"]["url"])
            elif e.get("method") == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
                errors.append(" ".join(str(a.get("value", "")) for a in p.get("args", [])))
            elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(p["entry"].get("text", ""))
        return Page(value["images"], requests, errors, value["title"], value["height"])

    def screenshot(self, out: Path) -> Path:
        """The whole loaded page as a PNG, at the browser's width."""
        metrics = self.send("Page.getLayoutMetrics", session=True)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
            session=True,
        )
        Path(out).write_bytes(base64.b64decode(shot["data"]))
        return Path(out)
