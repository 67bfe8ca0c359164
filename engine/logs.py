"""Logging setup: structlog, JSON lines under systemd, console output on a terminal.

Python's warnings go through the same chain (logger "py.warnings"), so under systemd every
line on stderr is JSON. `redact_secrets` is the last line of defence for secrets: it drops the values of keys that name
a secret and scrubs every registered secret (engine.secrets), and every long piece of one, from
every string it finds, including exception texts and tracebacks. The first line is not letting
libraries log frame contents at all (`FRAME_LOGGERS`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog

from engine import secrets

SECRET_KEYS = frozenset(
    {"appkey", "secretkey", "token", "authorization", "access_token", "password", "secret"}
)
REDACTED = "***"
_LEVELS = logging.getLevelNamesMapping()

FRAME_LOGGERS = ("websockets",)
"""Libraries whose DEBUG output is the wire itself: websockets logs every frame it sends and
receives, the LOGIN frame and its token included (elided to a prefix and a suffix, which is
still most of the token). They log at INFO at most, whatever `--log-level` says; the redactor
would scrub what they print, but a frame dump is no place to rely on it."""


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return secrets.scrub(value)
    if isinstance(value, Mapping):
        return {
            (secrets.scrub(k) if isinstance(k, str) else k): (
                REDACTED if str(k).lower() in SECRET_KEYS else _scrub_value(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_scrub_value(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # orjson serialises dataclasses natively, field by field (repr=False fields included),
        # after this processor: look inside them here, as a table.
        return _scrub_value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    # Exceptions and other objects are rendered as text later (str or repr); replace them only
    # if that text would carry a secret, so ordinary values keep their type for the renderer.
    for text in (str(value), repr(value)):
        scrubbed = secrets.scrub(text)
        if scrubbed != text:
            return scrubbed
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: no secret leaves through a log line."""
    for key in list(event_dict):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub_value(event_dict[key])
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    # A log call must never raise into the code that logs: int dict keys are allowed, and
    # whatever orjson refuses (an int past 64 bits, ...) goes through the stdlib encoder.
    try:
        return orjson.dumps(obj, default=default or str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(obj, default=default or str, ensure_ascii=False)


def setup(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and stdlib logging for the process.

    `fmt` is "json", "console" or "auto" (console when `stream` is a terminal). Safe to call
    again; the last call wins.
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    # Exceptions are rendered to text *before* redaction so a secret in a traceback is scrubbed.
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    shared.append(redact_secrets)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiohttp, websockets) log through stdlib; send them through the same redactor.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *shared,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Library chatter below WARNING only when debugging; never below the configured level.
    root_level = logging.DEBUG if level == "debug" else max(logging.WARNING, _LEVELS[level.upper()])
    root.setLevel(root_level)
    for name in FRAME_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root_level))
    # Python warnings (a deprecation in a library, an unclosed socket) would go to stderr raw,
    # as lines journald cannot parse: route them into the same chain, as logger py.warnings.
    logging.captureWarnings(True)
