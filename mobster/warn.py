"""The finite check and the warn-once rule that the core and both plugins share.

A trial that reports NaN or inf is warned about once, by name, whichever of our objects sees it
first; the set of names already warned about lives with that object (and pickles with it).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Hashable


def is_finite(value: object) -> bool:
    """Whether ``value`` is a finite real number: NaN, inf, ``None``, strings and booleans are not
    (numpy scalars such as ``float32`` are real numbers too)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def warn_once(
    warned: set, key: Hashable, message: str, category: type[Warning] = UserWarning, stacklevel: int = 2
) -> None:
    """Warn with ``message`` unless ``key`` (the trial the message names, or a kind of mistake) is
    already in ``warned``; then remember it. ``stacklevel`` counts from the caller, as in
    :func:`warnings.warn`."""
    if key in warned:
        return
    warned.add(key)
    warnings.warn(message, category, stacklevel=stacklevel + 1)
