"""A headless Chromium driven over the Chrome DevTools Protocol, for the dashboard's browser tests.

Debian's `chromium` runs as a child process with a fresh profile and every flag that keeps it off the
network (no first run, no background networking, component updates, sync or QUIC). We talk to it over one
WebSocket (aiohttp, which the project already has) with flattened sessions: no browser driver to install,
no browser download, and no version pinning to a driver, because the DevTools domains used here (Target,
Page, Runtime, Emulation, Input, Fetch) are the protocol's stable core.

Waiting is event-driven: `Page.wait_for` runs a condition inside the page under a MutationObserver and
resolves when the DOM first satisfies it, so no test sleeps or polls.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)
LAUNCH_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
# Records Content-Security-Policy violations from the first moment of every document.
_RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + e.sourceFile + ":" + e.lineNumber);
});
"""


def _open_log(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("wb")


def _read_port_file(path: Path) -> tuple[str, str] | None:
    """(port, browser path) once Chromium has written both lines."""
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return None
    return (lines[0], lines[1]) if len(lines) >= 2 else None


class BrowserError(Exception):
    """The browser reported an error: a failed command, an exception in the page, a timeout."""


def find_chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


class _Connection:
    """One DevTools WebSocket: commands by id, events dispatched by (session, method)."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: dict[tuple[str | None, str], list[Callable[[dict[str, Any]], None]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self._socket.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, COMMAND_TIMEOUT_S)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def on(self, session: str | None, method: str, callback: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.setdefault((session, method), []).append(callback)

    def off(self, session: str | None, method: str, callback: Callable[[dict[str, Any]], None]) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._listeners[(session, method)].remove(callback)

    async def _read(self) -> None:
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                for callback in list(self._listeners.get((data.get("sessionId"), data["method"]), [])):
                    callback(data.get("params", {}))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BrowserError("the browser closed the DevTools connection"))

    async def close(self) -> None:
        await self._socket.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Page:
    """One tab: navigate, evaluate, wait for the DOM, take screenshots, press keys, serve fake responses."""

    def __init__(self, connection: _Connection, session: str, target_id: str) -> None:
        self._connection = connection
        self.session = session
        self.target_id = target_id
        self.errors: list[str] = []  # uncaught exceptions in the page
        connection.on(session, "Runtime.exceptionThrown", self._on_exception)

    def _on_exception(self, params: dict[str, Any]) -> None:
        details = params.get("exceptionDetails", {})
        self.errors.append(details.get("exception", {}).get("description") or details.get("text", "?"))

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self._connection.send(method, params, self.session)

    async def goto(self, url: str) -> None:
        """Navigate and return once the load event fired (module scripts have run by then)."""

        async def navigate() -> None:
            result = await self.send("Page.navigate", {"url": url})
            if result.get("errorText"):
                raise BrowserError(f"navigating to {url}: {result['errorText']}")

        await self._until_loaded(navigate)

    async def follow(self, action: str) -> None:
        """Run an action that navigates (a click, a form submit) and return once the next page loaded."""

        async def act() -> None:
            await self.evaluate(f"setTimeout(() => {{ {action} }}, 0)")

        await self._until_loaded(act)

    async def press_to_follow(self, key: str, code: str, key_code: int) -> None:
        """Press a key that follows a link and return once the next page loaded (a condition checked while
        the page navigates loses its document: "Inspected target navigated or closed")."""
        await self._until_loaded(lambda: self.press(key, code, key_code))

    async def _until_loaded(self, start: Callable[[], Awaitable[None]]) -> None:
        loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_load(params: dict[str, Any]) -> None:
            if not loaded.done():
                loaded.set_result(None)

        self._connection.on(self.session, "Page.loadEventFired", on_load)
        try:
            await start()
            await asyncio.wait_for(loaded, COMMAND_TIMEOUT_S)
        finally:
            self._connection.off(self.session, "Page.loadEventFired", on_load)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited), as JSON."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def wait_for(self, condition: str, *, timeout_s: float = 10.0) -> Any:
        """Resolve with the condition's value as soon as it is truthy; the page re-checks on every change of
        the DOM, so nothing polls."""
        script = f"""new Promise((resolve, reject) => {{
          const condition = () => {{ try {{ return ({condition}); }} catch (e) {{ return null; }} }};
          const first = condition();
          if (first) {{ resolve(first); return; }}
          const observer = new MutationObserver(() => {{
            const value = condition();
            if (value) {{ observer.disconnect(); clearTimeout(timer); resolve(value); }}
          }});
          observer.observe(document, {{subtree: true, childList: true, attributes: true, characterData: true}});
          const timer = setTimeout(() => {{ observer.disconnect(); reject(new Error("timed out after {timeout_s} s waiting for: " + {json.dumps(condition)})); }}, {int(timeout_s * 1000)});
        }})"""
        return await self.evaluate(script)

    async def text(self, selector: str) -> str:
        value = await self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? null")
        if value is None:
            raise BrowserError(f"no element matches {selector}")
        return " ".join(str(value).split())

    async def texts(self, selector: str) -> list[str]:
        values = await self.evaluate(
            f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)"
        )
        return [" ".join(str(v).split()) for v in values]

    async def set_viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    async def screenshot(self, path: Path) -> None:
        """The whole page, not only the viewport."""
        metrics = await self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
        shot = await self.send(
            "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
        )
        await asyncio.to_thread(_write_file, path, base64.b64decode(shot["data"]))

    async def press(self, key: str, code: str, key_code: int, *, shift: bool = False) -> None:
        modifiers = 8 if shift else 0
        for kind in ("rawKeyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                {
                    "type": kind,
                    "key": key,
                    "code": code,
                    "windowsVirtualKeyCode": key_code,
                    "modifiers": modifiers,
                },
            )

    async def serve(self, url_pattern: str, respond: Callable[[str], Awaitable[bytes | None]]) -> None:
        """Answer requests matching the pattern with `respond(url)`'s bytes (None: let it through)."""

        async def fulfil(params: dict[str, Any]) -> None:
            body = await respond(params["request"]["url"])
            if body is None:
                await self.send("Fetch.continueRequest", {"requestId": params["requestId"]})
                return
            await self.send(
                "Fetch.fulfillRequest",
                {
                    "requestId": params["requestId"],
                    "responseCode": 200,
                    "responseHeaders": [{"name": "Content-Type", "value": "application/msgpack"}],
                    "body": base64.b64encode(body).decode(),
                },
            )

        tasks: set[asyncio.Task[None]] = set()

        def on_paused(params: dict[str, Any]) -> None:
            task = asyncio.create_task(fulfil(params))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        self._connection.on(self.session, "Fetch.requestPaused", on_paused)
        await self.send(
            "Fetch.enable", {"patterns": [{"urlPattern": url_pattern, "requestStage": "Request"}]}
        )

    async def csp_violations(self) -> list[str]:
        return list(await self.evaluate("window.__cspViolations || []"))

    async def close(self) -> None:
        await self._connection.send("Target.closeTarget", {"targetId": self.target_id})


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class Browser:
    def __init__(
        self, process: asyncio.subprocess.Process, connection: _Connection, session: aiohttp.ClientSession
    ):
        self._process = process
        self._connection = connection
        self._session = session

    @classmethod
    async def launch(cls, executable: str, profile_dir: Path) -> Browser:
        log_path = profile_dir.parent / "chromium.log"
        log = await asyncio.to_thread(_open_log, log_path)
        process = await asyncio.create_subprocess_exec(
            executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile_dir}",
            "about:blank",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        port_file = profile_dir / "DevToolsActivePort"
        try:
            deadline = asyncio.get_running_loop().time() + LAUNCH_TIMEOUT_S
            # Chromium writes the port file once it listens; there is no other signal to wait for.
            while (address := await asyncio.to_thread(_read_port_file, port_file)) is None:
                if process.returncode is not None:
                    raise BrowserError(f"chromium exited with {process.returncode} (see {log_path})")
                if asyncio.get_running_loop().time() > deadline:
                    raise BrowserError(f"chromium did not open its DevTools port in {LAUNCH_TIMEOUT_S:.0f} s")
                await asyncio.sleep(0.05)
            session = aiohttp.ClientSession()
            socket = await session.ws_connect(f"ws://127.0.0.1:{address[0]}{address[1]}", max_msg_size=0)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        return cls(process, _Connection(socket), session)

    async def new_page(self, *, width: int = 1280, height: int = 900, mobile: bool = False) -> Page:
        target = await self._connection.send("Target.createTarget", {"url": "about:blank"})
        attached = await self._connection.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self._connection, attached["sessionId"], target["targetId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_CSP_VIOLATIONS})
        await page.set_viewport(width, height, mobile=mobile)
        return page

    async def close(self) -> None:
        with contextlib.suppress(BrowserError, aiohttp.ClientError, ConnectionError):
            await self._connection.send("Browser.close")
        await self._connection.close()
        await self._session.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
