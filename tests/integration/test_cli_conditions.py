"""`kiwoom-engine conditions` and `watch --condition` as a user runs them, against
`kiwoom-engine sim` in another process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.integration.test_cli import cli, free_port, sim_process

# A hang guard, not a limit on speed: on a loaded machine the module's sim and each CLI call
# start an interpreter that takes seconds.
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sim_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    port = free_port()
    cfg = tmp_path_factory.mktemp("cli_cond") / "config.toml"
    cfg.write_text(
        f'[kiwoom]\nmode = "sim"\n[sim]\nport = {port}\nevents_per_s = 50.0\n'
        '[[sim.conditions]]\nseq = "3"\nname = "전종목"\nrule = "all"\n'
        '[[sim.conditions]]\nseq = "7"\nname = "3"\nrule = "manual"\n'
    )
    with sim_process(cfg, port):
        yield cfg


def test_conditions_lists_seq_and_name(sim_config: Path) -> None:
    res = cli(sim_config, "conditions")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["3\t전종목", "7\t3"]
    res = cli(sim_config, "conditions", "--json")
    assert [orjson.loads(line) for line in res.stdout.splitlines()] == [
        {"seq": "3", "name": "전종목"},
        {"seq": "7", "name": "3"},
    ]


def test_watch_condition_streams_the_members_as_entered_hits(sim_config: Path) -> None:
    res = cli(sim_config, "watch", "--condition", "전종목", "--count", "5")
    assert res.returncode == 0, res.stderr
    hits = [orjson.loads(line) for line in res.stdout.splitlines()]
    assert [h["event"] for h in hits] == ["ConditionHit"] * 5
    assert {h["symbol"] for h in hits} == {"005930", "000660", "035420", "035720", "051910"}
    assert all(h["condition"] == "전종목" and h["condition_seq"] == "3" for h in hits)
    assert all(h["entered"] is True for h in hits)


def test_watch_condition_by_seq_and_unknown_names(sim_config: Path) -> None:
    # "3" is a name here (seq 7); seq:3 is the other condition.
    by_seq = cli(sim_config, "watch", "--condition", "seq:3", "--count", "1")
    assert by_seq.returncode == 0, by_seq.stderr
    assert orjson.loads(by_seq.stdout.splitlines()[0])["condition_seq"] == "3"
    missing = cli(sim_config, "watch", "--condition", "급등주", "--count", "1")
    assert missing.returncode == 2
    assert "급등주" in missing.stderr
    assert "seq:3" in missing.stderr
    both = cli(sim_config, "watch", "0B", "--condition", "전종목")
    assert both.returncode == 2
