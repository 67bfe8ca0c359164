"""report.png: drawn with matplotlib's missing-glyph warnings as errors (a Hangul label would
draw boxes: labels are symbol codes), byte-stable."""

from __future__ import annotations

import asyncio
import warnings
from datetime import date
from pathlib import Path

from engine.backtest import plot
from engine.backtest.run import Backtest
from engine.config import load
from engine.plugins import load_all
from tests.backtest.support import alternate_config, random_bars, write_bars

DAYS = [date(2026, 3, 2), date(2026, 3, 3)]


def test_the_plot_draws_no_missing_glyph_and_the_same_bytes_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_bars(data, "005930", "1m", random_bars(3, DAYS))
    path = tmp_path / "config.toml"
    path.write_text(alternate_config(["005930"], qty=1, every=3), encoding="utf-8")
    cfg = load(path, env={})
    loaded, problems = load_all(cfg)
    assert problems == []
    res = asyncio.run(Backtest(cfg, loaded, data, DAYS[0], DAYS[-1]).run())
    assert res.fills
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" is a UserWarning
        plot.draw(res, tmp_path / "a.png")
        plot.draw(res, tmp_path / "b.png")
    png = (tmp_path / "a.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert png == (tmp_path / "b.png").read_bytes()
