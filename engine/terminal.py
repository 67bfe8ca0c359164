"""What the CLI lets reach a terminal: text from the server made inert and bounded.

Kiwoom's messages (and anything a hostile or broken peer sends in their place) are printed
by the CLI. Raw, an escape sequence in them can retitle, clear or rewrite the user's terminal
and a 100 KB "message" floods it. Error lines go through `one_line`; JSON output through
`inert_json`, which keeps the JSON equal to what orjson wrote.
"""

from __future__ import annotations

import re

MAX_LINE_CHARS = 500
"""Longest error line printed; Kiwoom's own messages are well under 200 characters."""

# C0 and C1 controls and DEL (ESC, CSI, BEL, CR, ...), and the invisible characters that
# reorder or break what a terminal shows (bidi overrides and isolates, line separators).
_INVISIBLE = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f{_INVISIBLE}]")
# orjson escapes C0 inside strings, and its indentation newlines must stay as they are.
_RAW_IN_JSON = re.compile(f"[{_INVISIBLE}]")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def one_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` as one printable line: controls (newlines included) shown as ``\\x1b``-style
    escapes, cut after `limit` characters with the number left out said at the end."""
    out: list[str] = []
    used = 0
    for i, ch in enumerate(text):
        piece = _escape(ch) if _CONTROL.match(ch) else ch
        if used + len(piece) > limit:
            return "".join(out) + f"... ({len(text) - i} more characters)"
        out.append(piece)
        used += len(piece)
    return "".join(out)


def inert_json(data: bytes) -> str:
    """orjson output with the controls orjson leaves raw (DEL, C1, bidi, U+2028/9) written as
    JSON ``\\uXXXX`` escapes: the same JSON value, nothing a terminal acts on. orjson
    escapes C0 in strings itself; outside strings JSON has only ASCII, so this never touches
    the structure."""
    text = data.decode()
    if text.isascii() and "\x7f" not in text:
        return text
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
