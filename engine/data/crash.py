"""Named points where a test may have this process kill itself (SIGKILL, no clean-up), to prove
that the store survives a crash at each of them.

Off unless the environment says ``KIWOOM_ENGINE_CRASH_AT=<point>:<n>``: the n-th time the run
reaches `<point>`, it dies there. Points: ``page`` (a chart page was fetched, nothing of it
written), ``before_rename`` (a partition's temporary file is written, not renamed),
``after_rename`` (the partition is in place, the manifest does not list it yet).
"""

from __future__ import annotations

import os
import signal

ENV = "KIWOOM_ENGINE_CRASH_AT"
_seen: dict[str, int] = {}


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] >= int(nth or "1"):
        os.kill(os.getpid(), signal.SIGKILL)
