"""The status page in a real browser: headless Chromium (Debian's `chromium`, driven through
`chromedriver` over the WebDriver HTTP protocol) loads `GET /` from the daemon trading on the
simulator, sees a new fill appear without a reload, and renders 삼성전자 in a CJK font that
`document.fonts.check` finds. A screenshot is kept in the test's directory (its path is
printed); with KIWOOM_SCREENSHOT=PATH it is also written there (docs/status-page.png)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine import daemon
from engine.config import AdminConfig, Config, StrategyConfig
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.rest import KiwoomRest
from engine.models import OrderType
from engine.sim.simulator import Simulator
from engine.trader import Trader
from tests.integration.conftest import client_config
from tests.integration.service import free_port
from tests.support import until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = (
    "the status page's browser test needs Chromium, chromedriver and a CJK font: run "
    "`make browser` (as root it installs the Debian packages chromium, chromium-driver and "
    "fonts-nanum; otherwise: apt-get install chromium chromium-driver fonts-nanum)"
)
PAGE_FONT = "Kiwoom KR"
"""The page's CJK face: an installed NanumGothic (fonts-nanum) or Noto Sans CJK KR
(fonts-noto-cjk), found by name (engine/status_page/status.html)."""

BUY_ONCE = """
from engine.strategy import Strategy


class BuyOnce(Strategy):
    def on_start(self):
        self.sent = False

    def on_trade(self, trade):
        if not self.sent and trade.best_ask:
            self.sent = True
            self.buy(trade.symbol, 1, trade.best_ask)
"""


class WebDriver:
    """A WebDriver session over HTTP (W3C protocol), nothing more than the test needs."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.session = ""

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.base + path, json=body) as r:
            answer = await r.json()
            assert r.status == 200, answer
            return answer["value"]

    async def start(self, profile: Path) -> None:
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",  # root in a container
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--window-size=1400,1100",
                            "--lang=ko-KR",
                            f"--user-data-dir={profile}",
                        ],
                    },
                }
            }
        }
        self.session = (await self.call("POST", "/session", caps))["sessionId"]

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(
            "POST", f"/session/{self.session}/execute/sync", {"script": script, "args": list(args)}
        )

    async def until(self, script: str, within_s: float = 10.0) -> Any:
        """Poll `script` in the page until it returns something truthy; return it."""
        async with asyncio.timeout(within_s):
            while not (value := await self.js(script)):  # noqa: ASYNC110 - polling the page
                await asyncio.sleep(0.05)
            return value


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[WebDriver]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: {INSTALL_HINT}")
    port = free_port()
    driver = await asyncio.create_subprocess_exec(
        CHROMEDRIVER,
        f"--port={port}",
        "--log-level=SEVERE",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            wd = WebDriver(http, f"http://127.0.0.1:{port}")
            async with asyncio.timeout(10):
                while True:
                    try:
                        if (await wd.call("GET", "/status"))["ready"]:
                            break
                    except aiohttp.ClientConnectionError:
                        pass
                    await asyncio.sleep(0.05)
            await wd.start(tmp_path / "chromium-profile")
            try:
                yield wd
            finally:
                await wd.call("DELETE", f"/session/{wd.session}")
    finally:
        driver.terminate()
        try:
            await asyncio.wait_for(driver.wait(), 5)
        except TimeoutError:
            driver.kill()
            await driver.wait()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def daemon_config(sim: Simulator, tmp_path: Path, admin_port: int) -> Config:
    cfg = client_config(sim)
    path = tmp_path / "buy_once.py"
    path.write_text(BUY_ONCE)
    return dataclasses.replace(
        cfg,
        daemon=dataclasses.replace(
            cfg.daemon, state_dir=str(tmp_path / "state"), symbols=("005930",)
        ),
        admin=AdminConfig(port=admin_port),
        strategies=(
            StrategyConfig(
                name="buy_once", class_name="BuyOnce", path=str(path), symbols=("005930",)
            ),
        ),
    )


FILLS = "Number(document.getElementById('fills-count').textContent || -1)"
"""The page's count of today's fills (-1 before its first snapshot)."""


async def test_the_page_shows_a_new_fill_live_and_korean_names_in_a_cjk_font(
    simulator: Simulator, browser: WebDriver, tmp_path: Path
) -> None:
    port = free_port()
    cfg = daemon_config(simulator, tmp_path, port)
    stop = asyncio.Event()
    ready: list[Trader] = []
    task = asyncio.create_task(daemon.run(cfg, stop=stop, on_ready=ready.append))
    try:
        await until(lambda: bool(ready), within_s=10.0)
        trader = ready[0]
        # The strategy's buy has filled: the page opens on one fill.
        await until(lambda: trader.portfolio.strategy_qty("buy_once", "005930") == 1, 5.0)
        await browser.call(
            "POST", f"/session/{browser.session}/url", {"url": f"http://127.0.0.1:{port}/"}
        )
        assert await browser.until(f"return {FILLS} === 1 && 'loaded'") == "loaded"
        # The names are read in the background after start-up: 삼성전자 beside 005930.
        await browser.until(
            "return [...document.querySelectorAll('#positions .name')]"
            ".some(e => e.textContent === '삼성전자')"
        )
        assert await browser.js("return document.getElementById('state').textContent") == "active"
        await browser.js("window.kiwoomMarker = 'same page'")

        # An order from elsewhere on the account: the engine books its fill, the page shows it.
        async with KiwoomRest.from_config(cfg, revoke_on_close=False) as rest:
            await KiwoomApi(rest).buy("005930", 2, OrderType.MARKET)
        assert await browser.until(f"return {FILLS} === 2 && 'two'") == "two"
        assert await browser.js("return window.kiwoomMarker") == "same page"  # no reload
        newest = await browser.js("return document.querySelector('#fills tr').textContent")
        assert "005930" in newest, newest
        assert "삼성전자" in newest, newest
        assert "(external)" in newest, newest
        held = await browser.js(
            "return document.querySelector('#positions tr').children[1].textContent"
        )
        assert held == "3"

        # Korean renders as text: the page's CJK face (backed by an installed font, by name)
        # loaded for 삼성전자. document.fonts.check alone answers true for a family that
        # matches no face at all, so the check is on the page's declared face, and a face
        # with no installed source shows that the same check can fail.
        stack = await browser.js(
            "return getComputedStyle(document.querySelector('#positions .name')).fontFamily"
        )
        assert stack.startswith(f'"{PAGE_FONT}"'), stack
        check = f"return document.fonts.check('16px \"{PAGE_FONT}\"', '삼성전자')"
        try:
            assert await browser.until(check, within_s=5.0) is True
        except TimeoutError:
            pytest.fail(f"no installed font backs the page's Korean face: {INSTALL_HINT}")
        faces = await browser.js(
            "return [...document.fonts].filter(f => f.family.includes(arguments[0]))"
            ".map(f => f.status)",
            PAGE_FONT,
        )
        assert "loaded" in faces, faces
        bogus = await browser.js(
            "const f = new FontFace('Bogus KR', 'local(\"No Such Font KR\")',"
            " {unicodeRange: 'U+AC00-D7A3'});"
            "document.fonts.add(f);"
            "return f.load().then(() => 'loaded', () => 'failed')"
            ".then(r => [r, document.fonts.check('16px \"Bogus KR\"', '삼성전자')]);"
        )
        assert bogus == ["failed", False]

        shot = base64.b64decode(await browser.call("GET", f"/session/{browser.session}/screenshot"))
        assert shot.startswith(b"\x89PNG")
        artifact = tmp_path / "status-page.png"
        artifact.write_bytes(shot)
        print(f"status page screenshot: {artifact}")
        if target := os.environ.get("KIWOOM_SCREENSHOT"):
            Path(target).write_bytes(shot)  # noqa: ASYNC240 - once, after the browser's done
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == daemon.EXIT_OK
