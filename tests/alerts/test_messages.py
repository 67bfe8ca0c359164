"""The pure side of the alerts: batching and the retry rule."""

from __future__ import annotations

import pytest

from engine.alerts.messages import batch, retry_delay, server_retry_after


def test_batch_merges_lines_up_to_the_limit_and_cuts_a_single_long_line() -> None:
    assert batch(["ab", "cd", "ef"], 5) == ("ab\ncd", 2)
    assert batch(["ab", "cd", "ef"], 8) == ("ab\ncd\nef", 3)
    assert batch(["abcdefghij", "x"], 6) == ("abc...", 1)
    with pytest.raises(ValueError, match="nothing"):
        batch([], 10)


@pytest.mark.parametrize(
    ("status", "body", "headers", "attempt", "want"),
    [
        (429, {"parameters": {"retry_after": 7}}, {}, 1, 7.0),  # Telegram's body
        (429, {"retry_after": 2.5}, {}, 1, 2.5),  # Discord's body
        (429, None, {"Retry-After": "12"}, 1, 12.0),  # the header
        (429, None, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 3, 4.0),  # a date: back-off
        (429, {"parameters": {"retry_after": 0.1}}, {}, 2, 2.0),  # back-off when longer
        (503, None, {}, 1, 1.0),
        (500, None, {}, 4, 8.0),
        (502, None, {}, 10, 30.0),  # capped at max_s
        (None, None, {}, 2, 2.0),  # no answer
        (400, {"ok": False}, {}, 1, None),  # final
        (401, None, {}, 1, None),
        (404, None, {"Retry-After": "5"}, 1, None),
        (200, {"ok": False}, {}, 1, None),
    ],
)
def test_retry_delay(
    status: int | None, body: object, headers: dict[str, str], attempt: int, want: float | None
) -> None:
    assert retry_delay(status, body, headers, attempt, 1.0, 30.0) == want


def test_a_nonsense_retry_after_is_ignored_and_a_huge_one_capped() -> None:
    assert server_retry_after({"retry_after": True}, {}) is None
    assert server_retry_after({"retry_after": -3}, {"Retry-After": "nan"}) is None
    assert server_retry_after({"parameters": {"retry_after": 10**9}}, {}) == 3600.0
