"""What the benchmark reports' figures share: a figure saved to a file, and a median over seeds
with its interquartile range shaded (the single-objective regret and the multi-objective
hypervolume over simulated time).

matplotlib is imported when a figure is drawn: most callers of the reports never plot.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Resolution of every saved figure.
DPI = 110


def figure(figsize: tuple[float, float], panels: int = 1) -> tuple[Figure, list[Axes]]:
    """A new figure of ``panels`` axes side by side, to draw on and then :func:`save`."""
    import matplotlib

    matplotlib.use("Agg")  # files only: the reports run without a display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=figsize, dpi=DPI, squeeze=False)
    return fig, list(axes[0])


def save(fig: Figure, path: Path) -> None:
    """Lay ``fig`` out, write it to ``path`` (its folder made if need be) and close it, so that a
    report of many benchmarks does not accumulate open figures."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def median_with_iqr(
    ax: Axes, times: np.ndarray, curves: np.ndarray, *, label: str, color: str | None, lw: float, ls: str = "-"
) -> None:
    """The median over ``curves`` (one row per seed, one column per time) as a line, and the range
    between its quartiles shaded; times at which a value is infinite (no completion yet, on a
    log axis) are left out of each."""
    median = np.median(curves, axis=0)
    finite = np.isfinite(median)
    ax.plot(times[finite], median[finite], label=label, color=color, lw=lw, ls=ls)
    with np.errstate(invalid="ignore"):  # quantiles across inf are inf or nan
        low, high = np.quantile(curves, 0.25, axis=0), np.quantile(curves, 0.75, axis=0)
    both = np.isfinite(low) & np.isfinite(high)
    ax.fill_between(times[both], low[both], high[both], color=color, alpha=0.12, lw=0)
