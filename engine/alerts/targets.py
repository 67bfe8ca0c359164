"""Where alerts go: a Telegram bot's chat, a Slack- or Discord-style webhook. Only the HTTP.

A target sends one message (or one photo) per call and raises `SendFailed` for anything that
is not a success, with the status, the answer's JSON body and headers (for the retry rule in
engine/alerts/messages.py) and a detail scrubbed of every secret: aiohttp's errors quote the
URL, and a Telegram URL holds the bot token, a webhook URL its own secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import orjson

from engine import secrets
from engine.config import TelegramConfig, WebhookConfig
from engine.secrets import Secret

from .messages import TELEGRAM_CAPTION_MAX_CHARS, TELEGRAM_MAX_CHARS, WEBHOOK_MAX_CHARS

_BODY_SHOWN = 200
"""Characters of an error answer's body kept in the log line."""


class SendFailed(Exception):
    """A message was not taken. `status` None: no answer (refused, reset, timed out)."""

    def __init__(
        self,
        detail: str,
        status: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(secrets.scrub(detail))
        self.status = status
        self.body = body
        self.headers: Mapping[str, str] = headers or {}


class Target(Protocol):
    name: str
    max_chars: int
    """The longest text one message may carry."""

    async def send_text(self, session: aiohttp.ClientSession, text: str) -> None: ...

    async def send_photo(
        self, session: aiohttp.ClientSession, caption: str, png: bytes
    ) -> None: ...


class TelegramTarget:
    """The Bot API's sendMessage and sendPhoto (multipart), plain text (no parse_mode)."""

    name = "telegram"
    max_chars = TELEGRAM_MAX_CHARS

    def __init__(self, cfg: TelegramConfig) -> None:
        if cfg.token is None:
            raise ValueError("alerts.telegram: no token (config.load fills it)")
        self._token: Secret = cfg.token
        self._chat_id = cfg.chat_id
        self._base = cfg.api_url.rstrip("/")

    def _url(self, method: str) -> str:
        return f"{self._base}/bot{self._token.reveal()}/{method}"

    async def send_text(self, session: aiohttp.ClientSession, text: str) -> None:
        body = {"chat_id": self._chat_id, "text": text, "disable_web_page_preview": True}
        await _post(session, self._url("sendMessage"), json=body, telegram=True)

    async def send_photo(self, session: aiohttp.ClientSession, caption: str, png: bytes) -> None:
        form = aiohttp.FormData()
        form.add_field("chat_id", self._chat_id)
        form.add_field("caption", caption[:TELEGRAM_CAPTION_MAX_CHARS])
        form.add_field("photo", png, filename="report.png", content_type="image/png")
        await _post(session, self._url("sendPhoto"), data=form, telegram=True)


class WebhookTarget:
    """A JSON POST of ``{"text": ..., "content": ...}``: Slack's incoming webhooks read
    `text`, Discord's read `content` (at most 2000 characters: the batch size)."""

    name = "webhook"
    max_chars = WEBHOOK_MAX_CHARS

    def __init__(self, cfg: WebhookConfig) -> None:
        if cfg.url is None:
            raise ValueError("alerts.webhook: no url (config.load fills it)")
        self._url: Secret = cfg.url

    async def send_text(self, session: aiohttp.ClientSession, text: str) -> None:
        await _post(session, self._url.reveal(), json={"text": text, "content": text})

    async def send_photo(self, session: aiohttp.ClientSession, caption: str, png: bytes) -> None:
        # A JSON webhook carries no file: the caption says where the chart is.
        await self.send_text(session, caption)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    json: Any = None,
    data: Any = None,
    telegram: bool = False,
) -> None:
    """POST and raise SendFailed unless the answer is a success (2xx, and Telegram's
    ``"ok": true``). Never lets an aiohttp error (which quotes the URL) out unscrubbed."""
    try:
        async with session.post(
            url,
            data=orjson.dumps(json) if json is not None else data,
            headers={"Content-Type": "application/json"} if json is not None else None,
        ) as r:
            raw = await r.read()
            status = r.status
            headers = {k: v for k, v in r.headers.items()}
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
        raise SendFailed(f"{type(e).__name__}: {e}") from None
    body: Any = None
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    ok = 200 <= status <= 299
    if ok and telegram and not (isinstance(body, dict) and body.get("ok") is True):
        ok = False
    if not ok:
        text = raw[:_BODY_SHOWN].decode("utf-8", "replace")
        raise SendFailed(f"HTTP {status}: {text}", status, body, headers)
