"""A local stand-in for Telegram's Bot API and a Slack/Discord webhook: a real aiohttp server
on loopback (port 0), recording what it is sent and answering as scripted."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Answer:
    """A scripted answer; "{path}" in `body` is replaced by the request's path (a server that
    echoes the URL, as error pages do)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    kind: str
    """"sendMessage", "sendPhoto" or "hook"."""
    path: str
    text: str
    chat_id: str = ""
    photo: bytes = b""
    json: Any = None
    at: float = 0.0
    """The test's clock when it came (`FakeBot.stamp`)."""


class FakeBot:
    def __init__(self, stamp: Callable[[], float] = lambda: 0.0) -> None:
        self.stamp = stamp
        self.received: list[Received] = []
        """Requests taken (answered 2xx)."""
        self.refused: list[Received] = []
        """Requests answered by a scripted error."""
        self.script: deque[Answer] = deque()
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hook_url(self, secret: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{secret}"

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.received]

    def lines(self) -> list[str]:
        return [line for r in self.received for line in r.text.splitlines()]

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._bot)
        app.router.add_post("/hook/{secret:.+}", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _bot(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "sendPhoto":
            form = await request.post()
            photo = form["photo"]
            got = Received(
                "sendPhoto",
                request.path,
                str(form.get("caption", "")),
                chat_id=str(form["chat_id"]),
                photo=photo.file.read(),  # type: ignore[union-attr]
                at=self.stamp(),
            )
        else:
            body = orjson.loads(await request.read())
            got = Received(
                method,
                request.path,
                body["text"],
                chat_id=str(body["chat_id"]),
                json=body,
                at=self.stamp(),
            )
        return self._answer(got, request.path, {"ok": True, "result": {}})

    async def _hook(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        got = Received("hook", request.path, body.get("text", ""), json=body, at=self.stamp())
        return self._answer(got, request.path, None)

    def _answer(self, got: Received, path: str, ok_body: Any) -> web.Response:
        if self.script:
            a = self.script.popleft()
            if not 200 <= a.status <= 299:
                self.refused.append(got)
            else:
                self.received.append(got)
            text = a.body if isinstance(a.body, str) else orjson.dumps(a.body).decode()
            return web.Response(
                status=a.status,
                text=text.replace("{path}", path),
                headers=a.headers,
                content_type="application/json",
            )
        self.received.append(got)
        if ok_body is None:
            return web.Response(status=204)
        return web.json_response(ok_body)
