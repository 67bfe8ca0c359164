"""Logging: JSON lines off a terminal, and no secret survives a log line."""

from __future__ import annotations

import io
import logging

import orjson
import structlog

from engine import logs, secrets


def test_json_lines_and_redaction() -> None:
    secret = secrets.Secret("verysecret-appkey-9f8e7d")
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    log = structlog.get_logger("t")
    log.info("login", appkey=secret.reveal(), url=f"https://x/?k={secret.reveal()}")
    log.info("nested", body={"token": "abc", "rows": [secret.reveal()]})
    try:
        raise RuntimeError(f"failed with {secret.reveal()}")
    except RuntimeError:
        log.exception("crashed")
    logging.getLogger("aiohttp.client").warning("lib %s", secret.reveal())
    out = buf.getvalue()
    assert secret.reveal() not in out
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [line["event"] for line in lines][:3] == ["login", "nested", "crashed"]
    assert lines[0]["appkey"] == "***"
    assert lines[0]["url"] == "https://x/?k=***"
    assert lines[1]["body"] == {"token": "***", "rows": ["***"]}
    assert "failed with ***" in lines[2]["exception"]
    assert "lib ***" in out


def test_console_format_on_request() -> None:
    buf = io.StringIO()
    logs.setup("info", "console", buf)
    structlog.get_logger("t").info("hello_world", qty=3)
    text = buf.getvalue()
    assert "hello_world" in text
    assert "qty" in text
    assert not text.lstrip().startswith("{")


def test_level_filters() -> None:
    buf = io.StringIO()
    logs.setup("warning", "json", buf)
    structlog.get_logger("t").info("quiet")
    structlog.get_logger("t").warning("loud")
    assert "quiet" not in buf.getvalue()
    assert "loud" in buf.getvalue()
