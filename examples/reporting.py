"""Summary and figures shared by both demos.

A demo turns its framework's trials into :class:`TrialRecord` (the configuration and the learning
curve with wall-clock times) and calls :func:`report_run`, which classifies every trial by its fate
at the rungs, prints the summary, saves two PNGs and a ``summary.json``:

* ``incumbent.png``: the best result so far (error at the full resource) against wall-clock time;
* ``learning_curves.png``: every trial's validation error per epoch, coloured by its fate.

A trial's fate follows from how far it got: it *completed* when it reached the maximum number of
epochs, was *promoted* when it went past at least one rung (and was stopped later), and was
*stopped at the first rung* otherwise. That holds for the stopping variant (the trial continues at a
rung) and for the promotion variant (a paused trial is resumed) alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures go to files; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from examples.nas_model import TrialConfig  # noqa: E402


def _decimal_label(value: float, _position: object) -> str:
    """Plain decimals ("0.03", not "3x10^-2"), only at mantissas 1, 2, 3 and 5 to avoid clutter."""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if round(mantissa) in (1, 2, 3, 5) and abs(mantissa - round(mantissa)) < 1e-6 else ""


def _decimal_log_y(ax: plt.Axes, lowest: float = math.inf) -> None:
    """Log scale with plain decimal labels; the axis reaches down to a labelled tick under
    ``lowest`` (else a best value of 0.0117 would sit below the last label, 0.02)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_decimal_label))
    ax.yaxis.set_minor_formatter(FuncFormatter(_decimal_label))
    if math.isfinite(lowest) and lowest > 0:
        decade = 10 ** math.floor(math.log10(lowest))
        tick = max(m * decade for m in (1, 2, 3, 5) if m * decade <= lowest)
        ax.set_ylim(bottom=min(ax.get_ylim()[0], tick * 0.97))


class Fate(Enum):
    STOPPED = "stopped at the first rung"
    PROMOTED = "promoted, stopped later"
    COMPLETED = "completed"


FATE_COLOURS = {Fate.STOPPED: "#9e9e9e", Fate.PROMOTED: "#ff7f0e", Fate.COMPLETED: "#1f77b4"}


@dataclass(frozen=True)
class CurvePoint:
    epoch: int
    val_error: float
    time_s: float  # seconds since the run started


@dataclass(frozen=True)
class TrialRecord:
    """One trial as a framework reported it; ``curve`` is sorted by epoch and may be empty (the
    trial failed, or a time limit ended it before it reported)."""

    trial_id: str
    config: TrialConfig | None
    curve: tuple[CurvePoint, ...]
    failed: bool = False  # the framework says so (Ray's ERROR, Optuna's FAIL)

    @property
    def epochs(self) -> int:
        return self.curve[-1].epoch if self.curve else 0

    def result(self, rung_levels: Sequence[int]) -> CurvePoint | None:
        """The trial's result as Optuna's ``trial.value`` and Ray's final result give it: the
        error reported at the full resource; ``None`` for a trial that did not get there."""
        return self.curve[-1] if self.curve and self.epochs >= rung_levels[-1] else None

    def fate(self, rung_levels: Sequence[int]) -> Fate | None:
        """``None`` for a trial that reported nothing (it failed or never ran)."""
        if not self.curve:
            return None
        if self.epochs >= rung_levels[-1]:
            return Fate.COMPLETED
        return Fate.PROMOTED if self.epochs > rung_levels[0] else Fate.STOPPED

    def promotions(self, rung_levels: Sequence[int]) -> int:
        """Number of rungs the trial went past (rung levels below its last epoch)."""
        return sum(level < self.epochs for level in rung_levels[:-1])


@dataclass(frozen=True)
class RunSummary:
    """What a demo prints at the end and what the tests check."""

    method: str
    wall_clock_s: float
    rung_levels: tuple[int, ...]
    n_trials: int  # every trial the framework created, as its own counts give them
    n_failed: int
    n_unreported: int  # ended by the time limit before their first result (none failed)
    n_stopped_first_rung: int
    n_promoted_then_stopped: int
    n_completed: int
    n_promotions: int
    best_error: float
    best_epoch: int
    best_trial: str
    best_config: str
    figures: tuple[str, ...]

    @property
    def n_stopped(self) -> int:
        """Trials that ended at a rung before the maximum number of epochs."""
        return self.n_stopped_first_rung + self.n_promoted_then_stopped

    @property
    def n_promoted(self) -> int:
        """Trials that went past at least one rung (completed ones included)."""
        return self.n_promoted_then_stopped + self.n_completed

    def _trials_note(self) -> str:
        notes = [f"{self.n_failed} failed"] if self.n_failed else []
        if self.n_unreported:
            notes.append(f"{self.n_unreported} ended by the time limit before reporting")
        return f" ({', '.join(notes)})" if notes else ""

    def text(self) -> str:
        lines = [
            f"=== {self.method}: summary ===",
            f"wall-clock time       {self.wall_clock_s:.1f} s",
            f"rungs (epochs)        {', '.join(map(str, self.rung_levels))}",
            f"trials                {self.n_trials}" + self._trials_note(),
            f"  stopped at a rung   {self.n_stopped} ({self.n_stopped_first_rung} at the first rung, "
            f"{self.n_promoted_then_stopped} after a promotion)",
            f"  promoted            {self.n_promoted} past at least one rung, {self.n_promotions} promotions in all",
            f"  completed           {self.n_completed} (all {self.rung_levels[-1]} epochs)",
            f"best validation error {self.best_error:.4f} (trial {self.best_trial}, at epoch {self.best_epoch}: "
            "its result, as the framework reports it)",
            f"best configuration    {self.best_config}",
            "figures               " + "\n                      ".join(self.figures),
        ]
        return "\n".join(lines)


def best_result(records: Sequence[TrialRecord], rung_levels: Sequence[int]) -> tuple[TrialRecord, CurvePoint] | None:
    """The trial with the lowest result (error at the full resource), as the frameworks' best."""
    results = [(r, point) for r in records if (point := r.result(rung_levels)) is not None]
    return min(results, key=lambda pair: pair[1].val_error) if results else None


def incumbent_trace(records: Sequence[TrialRecord], rung_levels: Sequence[int]) -> tuple[list[float], list[float]]:
    """Times and values at which the best result so far (error at the full resource) improved."""
    points = sorted((p for r in records if (p := r.result(rung_levels)) is not None), key=lambda p: p.time_s)
    times: list[float] = []
    values: list[float] = []
    for point in points:
        if not values or point.val_error < values[-1]:
            times.append(point.time_s)
            values.append(point.val_error)
    return times, values


def plot_incumbents(
    runs: Mapping[str, Sequence[TrialRecord]], rung_levels: Sequence[int], path: Path, title: str
) -> None:
    """Best result so far against wall-clock time, one step line per run."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    lowest = math.inf
    for label, records in runs.items():
        times, values = incumbent_trace(records, rung_levels)
        if not times:
            continue
        end = max(p.time_s for r in records for p in r.curve)
        line = ax.step([*times, end], [*values, values[-1]], where="post", label=f"{label}, best {values[-1]:.4f}")
        ax.plot(times, values, "o", ms=3, color=line[0].get_color())
        lowest = min(lowest, values[-1])
    _decimal_log_y(ax, lowest)
    ax.set_xlim(left=0)
    ax.set_xlabel("wall-clock time since start (s)")
    ax.set_ylabel("best result so far: error at the last epoch (log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # no trial may have finished yet
        ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(records: Sequence[TrialRecord], rung_levels: Sequence[int], path: Path, title: str) -> None:
    """Validation error per epoch for every trial, coloured by fate, rungs marked, best trial in black."""
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    counts = {fate: 0 for fate in Fate}
    reported = [r for r in records if r.curve]
    # Draw completed trials last so that the few long curves stay visible above the many short ones.
    order = {Fate.STOPPED: 0, Fate.PROMOTED: 1, Fate.COMPLETED: 2}
    for record in sorted(reported, key=lambda r: order[r.fate(rung_levels)]):
        fate = record.fate(rung_levels)
        counts[fate] += 1
        epochs = [p.epoch for p in record.curve]
        errors = [p.val_error for p in record.curve]
        # Only the many short curves are see-through: translucent orange over blue would turn grey.
        alpha = 0.45 if fate == Fate.STOPPED else 0.9
        ax.plot(epochs, errors, "-o", ms=2.5, lw=1.2, alpha=alpha, color=FATE_COLOURS[fate])
    best = best_result(records, rung_levels)
    if best is not None:
        trial, point = best
        ax.plot([p.epoch for p in trial.curve], [p.val_error for p in trial.curve], "-", lw=2.2, color="black")
        ax.plot(point.epoch, point.val_error, "*", ms=14, color="gold", mec="black")
    for level in rung_levels:
        ax.axvline(level, color="black", ls=":", lw=0.8, alpha=0.5)
    ax.set_xscale("log")  # geometric rungs (1, 3, 9, 27) become evenly spaced
    _decimal_log_y(ax, best[1].val_error if best is not None else math.inf)
    ax.set_xticks(list(rung_levels), [str(level) for level in rung_levels])
    ax.set_xlabel("epoch (dotted lines: rungs)")
    ax.set_ylabel("validation error (log scale)")
    ax.set_title(title)
    ax.grid(True, which="major", axis="y", alpha=0.3)
    handles = [Line2D([], [], color=FATE_COLOURS[f], lw=2, label=f"{f.value} ({counts[f]})") for f in Fate]
    handles.append(Line2D([], [], color="black", lw=2.2, marker="*", mfc="gold", ms=12, label="best trial"))
    fig.legend(handles=handles, loc="outside right upper")  # beside the axes: curves fill the plot
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarise(
    method: str, records: Sequence[TrialRecord], rung_levels: Sequence[int], wall_clock_s: float, figures: Sequence[Path]
) -> RunSummary:
    fates = [r.fate(rung_levels) for r in records]
    reported = [r for r in records if r.curve]
    if not reported:
        raise RuntimeError(f"{method}: no trial reported a validation error; see the errors above")
    best = best_result(records, rung_levels)
    if best is None:
        raise RuntimeError(f"{method}: no trial reached the full resource ({rung_levels[-1]} epochs); see above")
    trial, point = best
    return RunSummary(
        method=method,
        wall_clock_s=wall_clock_s,
        rung_levels=tuple(rung_levels),
        n_trials=len(records),
        n_failed=sum(r.failed for r in records),
        n_unreported=sum(not r.curve and not r.failed for r in records),
        n_stopped_first_rung=fates.count(Fate.STOPPED),
        n_promoted_then_stopped=fates.count(Fate.PROMOTED),
        n_completed=fates.count(Fate.COMPLETED),
        n_promotions=sum(r.promotions(rung_levels) for r in records),
        best_error=point.val_error,
        best_epoch=point.epoch,
        best_trial=trial.trial_id,
        best_config=trial.config.describe() if trial.config else "?",
        figures=tuple(str(f) for f in figures),
    )


def report_run(
    method: str, records: Sequence[TrialRecord], rung_levels: Sequence[int], wall_clock_s: float, out_dir: Path
) -> RunSummary:
    """Save both figures and ``summary.json`` under ``out_dir``, print the summary, return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    incumbent_png = out_dir / "incumbent.png"
    curves_png = out_dir / "learning_curves.png"
    plot_incumbents({method: records}, rung_levels, incumbent_png, f"{method}: incumbent over time")
    reported = sum(bool(r.curve) for r in records)
    plot_learning_curves(records, rung_levels, curves_png, f"{method}: learning curves of {reported} trials")
    summary = summarise(method, records, rung_levels, wall_clock_s, (incumbent_png, curves_png))
    summary_dict = {**asdict(summary), "n_stopped": summary.n_stopped, "n_promoted": summary.n_promoted}
    (out_dir / "summary.json").write_text(json.dumps(summary_dict, indent=2))
    print(summary.text(), flush=True)
    return summary
