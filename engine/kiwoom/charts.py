"""The history store's chart source on Kiwoom (`KiwoomCharts`): ka10079 ticks, ka10080
minute bars, ka10081 daily bars, one page at a time, as `engine.models.Candle`s.

Apart from engine/kiwoom/history.py (the warm-up port the daemon uses) so that the daemon
never imports engine.data.
"""

from __future__ import annotations

from datetime import date

from engine.clock import Clock
from engine.data.source import ChartPage, SourceBusy, SourceRefused
from engine.kiwoom import numbers
from engine.kiwoom.api import KiwoomApi
from engine.kiwoom.errors import BrokerError, KiwoomError, RateLimitError
from engine.kiwoom.rest import KiwoomRest
from engine.models import Candle

# interval -> (api-id, tic_scope, the row's time field, the list field)
_CHARTS = {
    "tick": ("ka10079", "1", "cntr_tm", "stk_tic_chart_qry"),
    **{
        f"{n}m": ("ka10080", str(n), "cntr_tm", "stk_min_pole_chart_qry")
        for n in (1, 3, 5, 10, 15, 30, 60)
    },
    "1d": ("ka10081", None, "dt", "stk_dt_pole_chart_qry"),
}


class KiwoomCharts:
    """`engine.data.source.ChartSource` over KiwoomRest: one chart page per call, paced by
    the client's governor. A rate-limit refusal that outlasts the client's retries is
    SourceBusy; any other refusal (a bad symbol, ...) is SourceRefused with Kiwoom's message.
    """

    def __init__(self, rest: KiwoomRest, clock: Clock) -> None:
        self._rest = rest
        self._clock = clock

    async def chart_page(
        self,
        symbol: str,
        interval: str,
        *,
        until: date | None,
        adjusted: bool,
        cont_key: str | None,
    ) -> ChartPage:
        try:
            api_id, scope, time_key, list_field = _CHARTS[interval]
        except KeyError:
            raise SourceRefused(f"no Kiwoom chart for interval {interval!r}") from None
        body = {"stk_cd": symbol, "upd_stkpc_tp": "1" if adjusted else "0"}
        if scope is not None:
            body["tic_scope"] = scope
        if api_id == "ka10081" or (api_id == "ka10080" and until is not None):
            body["base_dt"] = (until or self._clock.now().date()).strftime("%Y%m%d")
        try:
            result = await self._rest.call(api_id, body, cont_key=cont_key)
        except RateLimitError as e:
            raise SourceBusy(str(e)) from None
        except BrokerError as e:
            raise SourceRefused(str(e)) from None
        part = result.body.get(list_field)
        if part is None and not result.cont_yn:
            part = []
        if not isinstance(part, list) or not all(isinstance(r, dict) for r in part):
            raise KiwoomError(f"{api_id}: list field {list_field} is not a list of objects")
        rows = tuple(_row(api_id, r, time_key) for r in part if _has_time(r, time_key))
        more = result.cont_yn and bool(result.next_key) and result.next_key != cont_key
        return ChartPage(rows, result.next_key if more else None)


def _has_time(r: dict[str, object], key: str) -> bool:
    v = r.get(key)
    return isinstance(v, str) and bool(v.strip())


def _row(api_id: str, r: dict[str, object], time_key: str) -> Candle:
    """A chart row as a Candle; a tick row (ka10079) may leave open/high/low blank: its
    price is cur_prc."""
    if api_id == "ka10079":
        price = numbers.price(str(r.get("cur_prc", "")))
        filled = dict(r)
        for k in ("open_pric", "high_pric", "low_pric"):
            if not str(filled.get(k, "")).strip():
                filled[k] = str(price)
        r = filled
    return KiwoomApi._candle(api_id, r, time_key)
