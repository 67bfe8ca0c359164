"""The live status page: `GET /` and `GET /events` on the admin endpoint (engine/admin.py).

The engine's loop builds a snapshot (snapshot.py), at most every `MIN_INTERVAL_S`, and hands
the encoded bytes in one call to the admin thread, which fans them out to each browser's
bounded queue (fanout.py): a slow browser skips snapshots and is dropped, never slowing the
loop. Symbol names (삼성전자 beside 005930) come from the broker's stock list, cached on disk
(names.py). The page itself is one self-contained file, status.html: no CDN, no build step.
"""

from engine.status_page.page import StatusPage

__all__ = ["StatusPage"]
