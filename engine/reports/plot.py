"""Drawing shared by the backtest's report.png and the daily report's equity.png: the
won and time axes, the drawdown panel, labels that never draw as boxes, byte-stable saving.

matplotlib (a dependency, for the reports) is imported inside these functions only, when a
report is drawn: never by the daemon. Its default font (DejaVu Sans) has no Hangul. A label
that is not ASCII (a strategy named in Korean) is drawn in an installed Korean font when
there is one (Noto Sans CJK, Nanum, ...), else replaced by an ASCII stand-in (`labels`):
symbols are always drawn by their code, never by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

HANGUL_FONTS = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "NanumGothic",
    "NanumBarunGothic",
    "Noto Serif CJK KR",
    "UnDotum",
    "Baekmuk Gulim",
)
"""Font families with Hangul, in the order preferred (Debian: fonts-noto-cjk, fonts-nanum)."""


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def hangul_font() -> str | None:
    """The first installed family of HANGUL_FONTS, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in HANGUL_FONTS if name in installed), None)


def labels(names: Sequence[str]) -> dict[str, str]:
    """name -> the text to draw for it: the name itself when it is ASCII or a Korean font is
    installed (then made the first choice of matplotlib's font list), else "strategy N" (N
    its place in `names`, from 1): never a glyph the font lacks."""
    out = {n: n for n in names if n.isascii()}
    if len(out) == len(names):
        return out
    font = hangul_font()
    if font is not None:
        import matplotlib

        family = list(matplotlib.rcParams["font.sans-serif"])
        matplotlib.rcParams["font.sans-serif"] = [font, *[f for f in family if f != font]]
        # Nanum has no U+2212, matplotlib's minus on negative ticks (a drawdown axis): a box.
        matplotlib.rcParams["axes.unicode_minus"] = False
        return {n: n for n in names}
    return {n: (n if n.isascii() else f"strategy {i}") for i, n in enumerate(names, 1)}


def won_axis(ax: Any) -> None:
    """KRW on the y axis as whole numbers with thousands separators (no 1e7 offset)."""
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))


def time_axis(ax: Any) -> None:
    """Intraday times on the x axis as HH:MM."""
    from matplotlib.dates import DateFormatter

    ax.xaxis.set_major_formatter(DateFormatter("%H:%M"))  # type: ignore[no-untyped-call]


def drawdown_pct(start: int, equity: Sequence[int]) -> list[float]:
    """Each point's fall from the peak so far (from `start`), in percent (<= 0)."""
    peak = start
    out = []
    for e in equity:
        peak = max(peak, e)
        out.append((e - peak) / peak * 100 if peak else 0.0)
    return out


def drawdown_panel(ax: Any, x: Sequence[Any], start: int, equity: Sequence[int]) -> None:
    ax.fill_between(x, drawdown_pct(start, equity), 0, color="tab:red", alpha=0.4)
    ax.set_title("drawdown (%)")


def save(fig: Any, path: Path) -> None:
    """Write `fig` as a PNG without a timestamp (the same figure, the same bytes); close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)
