"""The file of strategies held disabled across restarts (engine/holds.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from engine.holds import FILE_NAME, Holds


def test_hold_and_release_survive_a_new_reader(tmp_path: Path) -> None:
    state = tmp_path / "state"  # not there yet: the first hold makes it
    assert Holds(state).load() == {}
    Holds(state).hold("a", "handler_unbreakable: on_trade ran 7.1 s")
    Holds(state).hold("b", "shutdown_deadline: on_stop ran 2.0 s")
    assert Holds(state).load() == {
        "a": {"reason": "handler_unbreakable: on_trade ran 7.1 s"},
        "b": {"reason": "shutdown_deadline: on_stop ran 2.0 s"},
    }
    assert Holds(state).release("a") is True
    assert Holds(state).release("a") is False
    assert list(Holds(state).load()) == ["b"]
    assert sorted(p.name for p in state.iterdir()) == [FILE_NAME]  # no temporary left


@pytest.mark.parametrize("raw", [b"", b"[1]", b'{"a": "x"}', b"{not json"])
def test_a_file_not_written_here_is_refused(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / FILE_NAME).write_bytes(raw)
    with pytest.raises(ValueError, match=FILE_NAME):
        Holds(tmp_path).load()


def test_the_file_is_plain_json_an_operator_can_read(tmp_path: Path) -> None:
    Holds(tmp_path).hold("a", "why")
    assert orjson.loads((tmp_path / FILE_NAME).read_bytes()) == {"a": {"reason": "why"}}
