"""The soak's verdict bites: the checks behind `make soak` and tests/soak/test_soak.py fail on
runs that leak, lag, back up or log errors (synthetic samples; no processes, fast)."""

from __future__ import annotations

import math

from bench.soak import EVENTS_PER_S, Result, Sample, interval, verdict


def sample(t: float, rss: float = 60.0, lag: float = 0.005, depth: int = 0) -> Sample:
    return Sample(
        t_s=t,
        rss_mb=rss,
        events_per_s=EVENTS_PER_S,
        lag_max_s=lag,
        lag_mean_s=lag / 5,
        stalled_s=0.0,
        queues={"journal": 0, "mirror": depth},
        critical={"journal": 0, "mirror": 0},
        t2o_count=3,
        t2o_mean_ms=1.0,
        t2o_p99_ms=2.5,
        orders={"filled": 10 + int(t)},
    )


def result(samples: list[Sample], **kw: object) -> Result:
    base: dict[str, object] = {
        "samples": samples,
        "warmup_s": 10.0,
        "exit_code": 0,
        "log_errors": [],
        "strategy_errors": {"a": 0},
        "bus_handler_errors": 0,
        "status": {},
    }
    base.update(kw)
    r = Result(**base)  # type: ignore[arg-type]
    r.checks = verdict(r)
    return r


def test_a_steady_run_passes_every_check() -> None:
    r = result([sample(t) for t in range(60)])
    assert r.ok, r.checks
    assert set(r.checks) == {"rss_growth", "loop_lag", "queues_bounded", "load", "no_errors"}


def test_growth_after_warm_up_fails_but_growth_during_warm_up_does_not() -> None:
    warm = result([sample(t, rss=30.0 + t * 3 if t < 10 else 60.0) for t in range(60)])
    assert warm.checks["rss_growth"][0]
    leak = result([sample(t, rss=60.0 + t * 0.5) for t in range(60)])
    assert not leak.checks["rss_growth"][0]
    assert not leak.ok


def test_one_late_second_or_a_high_mean_lag_fails() -> None:
    spike = [sample(t, lag=2.5 if t == 40 else 0.005) for t in range(60)]
    assert not result(spike).checks["loop_lag"][0]
    slow = [sample(t, lag=0.5) for t in range(60)]
    assert not result(slow).checks["loop_lag"][0]


def test_a_queue_that_keeps_growing_fails_a_bounded_burst_does_not() -> None:
    growing = result([sample(t, depth=int(t) * 200) for t in range(60)])
    assert not growing.checks["queues_bounded"][0]
    assert "mirror" in growing.checks["queues_bounded"][1]
    burst = result([sample(t, depth=900 if t % 7 == 0 else 0) for t in range(60)])
    assert burst.checks["queues_bounded"][0]


def test_errors_and_a_bad_exit_fail() -> None:
    assert not result([sample(t) for t in range(60)], log_errors=["Traceback"]).ok
    assert not result([sample(t) for t in range(60)], strategy_errors={"a": 1}).ok
    assert not result([sample(t) for t in range(60)], exit_code=1).ok
    assert not result([sample(t) for t in range(60)], exit_code=None).ok


def test_too_few_samples_is_no_verdict_of_success() -> None:
    r = result([sample(t) for t in range(12)])
    assert not r.ok


def test_interval_reads_the_bucket_of_a_quantile_between_two_scrapes() -> None:
    prev = {0.001: 5.0, 0.01: 5.0, 0.1: 5.0, math.inf: 5.0}
    cur = {0.001: 95.0, 0.01: 104.0, 0.1: 105.0, math.inf: 105.0}
    assert interval(prev, cur, 0.5) == 0.001
    assert interval(prev, cur, 0.99) == 0.01
    assert interval(prev, cur, 1.0) == 0.1
    assert interval(cur, cur, 1.0) is None
