"""Letting a framework's callback run ahead of a model computed in a background thread.

In Ray Tune the next suggestion is computed in a driver thread while Ray's event loop goes on
calling the tuner's callbacks. Both need the GIL: every torch call in a callback releases it,
and taking it back from the busy thread waits up to a switch interval, so a callback of a
hundred small tensor operations took 50 to 450 ms beside the thread instead of a few ms alone.

A callback that must answer quickly runs inside :func:`urgent`; while one does, a background
computation stops at its next :func:`pause_point` (the model code calls it once per kernel
evaluation: every few milliseconds) until the callback is done. The pause is bounded, so a
callback that waits for the background thread itself (for a lock it holds) only delays it.
Outside :func:`urgent`, a pause point costs one flag check: the Optuna plugin and any
single-threaded use never wait.

The GIL is not the only thing a framework's loop waits for: CPython's full garbage collections
hold it while they scan every tracked object, and importing torch, GPyTorch and BoTorch triples
the objects a Ray driver holds (about 130,000 to 360,000: a full collection takes 0.15 s instead
of 0.05 s alone; beside 128 trials on two cores the first one paused ASHA's driver 0.37 s, ours
1.24 s).
:func:`exempt_existing_objects_from_collection` takes the objects alive once the model starts
(modules, classes, functions: they live as long as the process) out of those scans.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Longest wait at one pause point: a safety net, never reached by a callback of milliseconds.
MAX_PAUSE_S = 0.25

_open = threading.Event()
_open.set()
_state_lock = threading.Lock()
_urgent_threads: dict[int, int] = {}  # thread id -> nesting depth of ``urgent``


@contextmanager
def urgent() -> Iterator[None]:
    """Run the block ahead of background model computations in other threads of this process."""
    me = threading.get_ident()
    with _state_lock:
        _urgent_threads[me] = _urgent_threads.get(me, 0) + 1
        _open.clear()
    try:
        yield
    finally:
        with _state_lock:
            _urgent_threads[me] -= 1
            if not _urgent_threads[me]:
                del _urgent_threads[me]
            if not _urgent_threads:
                _open.set()


def pause_point() -> None:
    """Wait here while another thread runs an :func:`urgent` block (at most ``MAX_PAUSE_S``)."""
    if _open.is_set() or threading.get_ident() in _urgent_threads:
        return
    _open.wait(MAX_PAUSE_S)


_frozen = False


def exempt_existing_objects_from_collection() -> None:
    """``gc.freeze()``, once per process: full collections afterwards scan only newer objects.

    Objects alive now that later become unreachable *through a reference cycle* are never freed
    (reference counting still frees the others). What is alive when the model starts is almost
    all module state, which lives as long as the process anyway; each later full collection's
    pause shrinks with the objects it no longer scans.
    """
    global _frozen
    with _state_lock:
        if not _frozen:
            _frozen = True
            gc.freeze()


__all__ = ["MAX_PAUSE_S", "exempt_existing_objects_from_collection", "pause_point", "urgent"]
