"""Crash torture in `make test`: 60 runs of a real hubrt process, most ended by SIGKILL."""

import pytest

from torture import campaign, check_snapshot


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["luajit", "5.3"])
def test_sigkill_torture(engine):
    result = campaign(30, engine=engine, seed={"luajit": 1, "5.3": 2}[engine], log=lambda line: None)
    assert result.kills == 27 and result.graceful == 3
    assert result.acked_lost == 0
    assert result.generations[-1] > 0, "the driver made progress"
    assert result.generations == sorted(result.generations), "a restart never goes back before the last snapshot"


def test_the_snapshot_check_detects_a_mix_of_generations():
    good = {"gen": 12, "double": 24, "nested": {"a": {"b": 12}}, "recent": [10, 11, 12],
            "history": {f"g{i}": {"gen": i, "text": "x" * i} for i in range(3, 13)}}
    assert check_snapshot(good) == 12
    for key, value in [("double", 22), ("nested", {"a": {"b": 11}}), ("recent", [9, 10, 11])]:
        with pytest.raises(AssertionError):
            check_snapshot({**good, key: value})
    mixed = dict(good, history={**good["history"], "g2": {"gen": 2, "text": "xx"}})
    with pytest.raises(AssertionError):
        check_snapshot(mixed)
