"""Logging: JSON lines off a terminal, and no secret survives a log line."""

from __future__ import annotations

import dataclasses
import io
import logging
import subprocess
import sys

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


def json_lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def test_secret_inside_a_longer_secret_is_not_half_scrubbed() -> None:
    # The shorter secret registered first must not leave the tail of the longer one behind.
    short = secrets.Secret("nested-secret-1a2b")
    long = secrets.Secret(short.reveal() + "-tail-c3d4e5")
    assert secrets.scrub(f"x {long.reveal()} y") == "x *** y"


def test_dataclass_fields_hidden_from_repr_are_still_scrubbed() -> None:
    @dataclasses.dataclass
    class Session:
        user: str
        bearer: str = dataclasses.field(repr=False)

    secret = secrets.Secret("dataclass-token-5f6e7d")
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    structlog.get_logger("t").info("session", session=Session("me", secret.reveal()))
    assert secret.reveal() not in buf.getvalue()
    assert json_lines(buf)[0]["session"] == {"user": "me", "bearer": "***"}


def test_secret_as_a_mapping_key_is_scrubbed() -> None:
    secret = secrets.Secret("mapping-key-secret-0a9b")
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    structlog.get_logger("t").info("by_key", tokens={secret.reveal(): 1})
    assert secret.reveal() not in buf.getvalue()
    assert json_lines(buf)[0]["tokens"] == {"***": 1}


def test_object_whose_repr_carries_a_secret_is_scrubbed() -> None:
    secret = secrets.Secret("repr-only-secret-77aa")

    class Handle:
        def __str__(self) -> str:
            return "handle"

        def __repr__(self) -> str:
            return f"Handle(key={secret.reveal()!r})"

    buf = io.StringIO()
    logs.setup("info", "console", buf)
    structlog.get_logger("t").info("opened", handle=Handle())
    assert "opened" in buf.getvalue()
    assert secret.reveal() not in buf.getvalue()


def test_unusual_values_never_make_a_log_call_raise() -> None:
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    log = structlog.get_logger("t")
    log.info("int_keys", counts={1: 2, 3: 4})
    log.info("big_int", value=2**70)
    lines = json_lines(buf)
    assert lines[0]["counts"] == {"1": 2, "3": 4}
    assert lines[1]["value"] == 2**70


def test_library_logs_respect_a_level_above_warning() -> None:
    buf = io.StringIO()
    logs.setup("error", "json", buf)
    logging.getLogger("aiohttp.client").warning("chatty")
    logging.getLogger("aiohttp.client").error("broken")
    assert "chatty" not in buf.getvalue()
    assert "broken" in buf.getvalue()


def test_library_exception_traceback_is_scrubbed() -> None:
    secret = secrets.Secret("lib-traceback-secret-31")
    buf = io.StringIO()
    logs.setup("info", "json", buf)
    try:
        raise ConnectionError(f"reset while sending {secret.reveal()}")
    except ConnectionError:
        logging.getLogger("websockets.client").exception("connection failed")
    assert secret.reveal() not in buf.getvalue()
    (line,) = json_lines(buf)
    assert line["logger"] == "websockets.client"
    assert "reset while sending ***" in str(line["exception"])


def twelve_grams(secret: str) -> set[str]:
    """Every 12-character piece of `secret`; a longer piece always contains one of them."""
    n = 12
    return {secret[i : i + n] for i in range(len(secret) - n + 1)}


def test_every_long_fragment_of_a_token_is_scrubbed() -> None:
    # A 64-character token, as Kiwoom and the simulator issue them.
    token = secrets.Secret("Zq8XkP2vN7rT4wY9bC3mD6fH1jL5sA0gE2uI8oK4xQ7zR9tV3nB6cM1pW5yF0hJa")
    value = token.reveal()
    assert len(value) == 64
    for start in range(len(value)):
        for end in range(start + 12, len(value) + 1):
            piece = value[start:end]
            out = secrets.scrub(f'{{"token":"{piece}"}}')
            assert out == '{"token":"***"}', piece
    # websockets' elided frame: a prefix and a suffix around "..."
    elided = f'> TEXT \'{{"trnm":"LOGIN","token":"{value[:24]}...{value[-19:]}"}}\' [91 bytes]'
    assert secrets.scrub(elided) == '> TEXT \'{"trnm":"LOGIN","token":"***...***"}\' [91 bytes]'


def test_short_pieces_and_ordinary_text_are_kept() -> None:
    token = secrets.Secret("k3J9vQ2xW7mZ5pR8tY1bN4cL6hF0dGsA")
    value = token.reveal()
    short = value[3:14]  # 11 characters
    text = f"rest_call api_id=ka10001 stk_cd=005930 piece={short} order_accepted_with_a_long_name"
    assert secrets.scrub(text) == text


def test_debug_level_keeps_library_frame_logging_off() -> None:
    buf = io.StringIO()
    logs.setup("debug", "json", buf)
    assert logging.getLogger("aiohttp.client").isEnabledFor(logging.DEBUG)
    frame_logger = logging.getLogger("websockets.client")
    assert not frame_logger.isEnabledFor(logging.DEBUG)
    assert frame_logger.isEnabledFor(logging.INFO)
    logs.setup("error", "json", buf)
    assert not frame_logger.isEnabledFor(logging.WARNING)  # never below the configured level


def test_python_warnings_become_json_log_lines() -> None:
    # In a fresh process: pytest captures warnings itself in this one.
    code = (
        "from engine import logs; logs.setup('info', 'json'); import warnings; "
        "warnings.warn('an odd thing', RuntimeWarning)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    (line,) = res.stderr.splitlines()
    entry = orjson.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "py.warnings"
    assert "RuntimeWarning: an odd thing" in entry["event"]
