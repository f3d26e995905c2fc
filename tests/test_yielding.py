"""A background model computation steps aside while a framework callback runs (mobster.yielding)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mobster import yielding
from mobster.history import TrialRecord
from mobster.searcher import ModelBasedSearcher
from mobster.space import Float, SearchSpace


def _counting_thread(stop: threading.Event, counter: list[int]) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            yielding.pause_point()
            counter[0] += 1
            time.sleep(0.001)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _settled(counter: list[int], quiet_s: float = 0.05, deadline_s: float = 5.0) -> int:
    """The counter's value once it has stopped moving for ``quiet_s`` (the thread reached a pause)."""
    end = time.monotonic() + deadline_s
    last = counter[0]
    while time.monotonic() < end:
        time.sleep(quiet_s)
        if counter[0] == last:
            return last
        last = counter[0]
    return counter[0]


def test_other_threads_wait_at_pause_points_while_urgent_runs() -> None:
    stop, counter = threading.Event(), [0]
    thread = _counting_thread(stop, counter)
    try:
        time.sleep(0.05)
        assert counter[0] > 0  # runs freely outside urgent blocks
        with yielding.urgent():
            during = _settled(counter)  # the thread reached its next pause point
            time.sleep(0.1)
            assert counter[0] == during  # stopped while the urgent block runs
            yielding.pause_point()  # the urgent thread itself never waits
        time.sleep(0.05)
        assert counter[0] > during  # and goes on afterwards
    finally:
        stop.set()
        thread.join(5)


def test_nested_urgent_blocks_release_only_at_the_outermost() -> None:
    stop, counter = threading.Event(), [0]
    thread = _counting_thread(stop, counter)
    try:
        with yielding.urgent():
            with yielding.urgent():
                pass
            during = _settled(counter)
            time.sleep(0.1)
            assert counter[0] == during  # the inner block's end did not reopen the gate
        time.sleep(0.05)
        assert counter[0] > during
    finally:
        stop.set()
        thread.join(5)


def test_a_pause_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # A callback that waits for the background thread (a lock it holds) must not deadlock.
    monkeypatch.setattr(yielding, "MAX_PAUSE_S", 0.05)
    stop, counter = threading.Event(), [0]
    thread = _counting_thread(stop, counter)
    try:
        with yielding.urgent():
            time.sleep(0.02)
            during = counter[0]
            time.sleep(0.3)
            assert counter[0] > during  # it waited at most 0.05 s per pause point
    finally:
        stop.set()
        thread.join(5)


def test_a_model_based_suggestion_in_another_thread_waits_for_the_urgent_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yielding, "MAX_PAUSE_S", 60.0)
    space = SearchSpace({"x": Float(0.0, 1.0), "y": Float(0.0, 1.0)})
    rng = np.random.default_rng(0)
    records = []
    for _ in range(12):
        x, y = rng.random(2)
        records.append(TrialRecord({"x": float(x), "y": float(y)}, {1: (x - 0.3) ** 2 + y, 3: (x - 0.3) ** 2 + 0.5 * y}))
    searcher = ModelBasedSearcher(space, max_resource=3, levels=[1, 3], reduction_factor=3, seed=0, random_fraction=0.0, num_initial_random=2)
    result: list[dict] = []
    thread = threading.Thread(target=lambda: result.append(searcher.suggest(records)), daemon=True)
    with yielding.urgent():
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive() and not result  # held at the model's first kernel evaluation
    thread.join(60)
    assert not thread.is_alive()
    assert result and set(result[0]) == {"x", "y"}
    assert searcher.model_failures == 0
