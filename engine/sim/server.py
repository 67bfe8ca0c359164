"""The simulator's aiohttp application and its start-up on a TCP port.

`create_app()` mounts the REST front door on every POST path (unknown paths and api-ids get
Kiwoom's own error envelope, not a 404); extra routes (the WebSocket endpoint) go in first.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from aiohttp import web

from engine.sim.rest import RestFrontend
from engine.sim.state import SimState

log = structlog.get_logger(__name__)

STATE_KEY = web.AppKey("sim_state", SimState)


def create_app(state: SimState, extra_routes: Iterable[web.RouteDef] = ()) -> web.Application:
    """The simulator app. `extra_routes` (e.g. ``web.get(WS_PATH, realtime.handle)``) are
    matched before the catch-all POST route."""
    app = web.Application(client_max_size=1024**2)
    app[STATE_KEY] = state
    app.add_routes(list(extra_routes))
    app.router.add_post("/{tail:.*}", RestFrontend(state).handle)
    return app


async def start(
    state: SimState, extra_routes: Iterable[web.RouteDef] = ()
) -> tuple[web.AppRunner, int]:
    """Serve the app on state.config.host / port (0 = any free port) and return
    (runner, actual port). Stop it with ``await runner.cleanup()``. Raises OSError when the
    port is taken."""
    runner = web.AppRunner(create_app(state, extra_routes), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, state.config.host, state.config.port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    log.info("sim_started", host=state.config.host, port=port)
    return runner, port
