"""Tuner.restore after the driver is SIGKILLed, with several objectives: the scheduler rebuilds
its rung table from the searcher's restored tuples, and the search goes on (see
tests/test_tune_restore.py, whose kill-and-restore helper and driver this reuses)."""

from __future__ import annotations

import pytest

from test_tune_restore import NUM_SAMPLES, kill_and_restore


@pytest.mark.slow
def test_restore_after_sigkill_rebuilds_pareto_rungs(tmp_path) -> None:
    before, summary = kill_and_restore("multi", tmp_path)
    finished_before = {trial: error for trial, iteration, error in before if iteration == 9}

    trials = summary["trials"]
    assert len(trials) == NUM_SAMPLES and not any(t["failed"] for t in trials)
    assert len({(t["config"]["x"], t["config"]["n"]) for t in trials}) == NUM_SAMPLES  # none twice
    by_id = {t["id"]: t for t in trials}
    for trial, error in finished_before.items():  # finished results kept
        assert by_id[trial]["iteration"] == 9 and by_id[trial]["error"] == pytest.approx(error)
    # The rebuilt rung table holds every trial's rung-1 pair, those finished before the kill too,
    # minimised: "params" (maximised) with its sign flipped.
    first_rung = summary["rungs"]["1"]
    assert set(first_rung) == set(by_id)
    for trial, (error, minus_params) in first_rung.items():
        x, n = by_id[trial]["config"]["x"], by_id[trial]["config"]["n"]
        assert error == pytest.approx((1.0 - x) ** 2 + 0.2 * n + 1.0)
        assert minus_params == pytest.approx(-(2.0 - x - 0.3 * n))
    assert max(t["iteration"] for t in trials) == 9
