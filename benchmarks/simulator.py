"""Asynchronous tuning in simulated time on learning curves, for any Optuna tuner.

The curves come from a benchmark (:class:`benchmarks.tables.Benchmark`): a stored table of real
training, whose row nearest to a suggestion is replayed, or an LCBench task, whose surrogate is
evaluated at exactly the suggested values. ``K`` workers each train one trial at a time, unit by
unit; the benchmark says what each unit costs (scaled, see :func:`time_scale`). A priority queue
holds every worker's next "unit finished" event and the events of all workers are processed in
global time order, so when the tuner decides
for one worker, the trials of the others are RUNNING in the study with the values they reported so
far: a model-based sampler sees them as pending.

The tuner is driven through ask-and-tell in this one process::

    trial = study.ask(distributions)       # a new trial for an idle worker
    trial.report(curve[i, r - 1], r)       # after every unit r
    trial.should_prune()                   # -> the worker is freed and asks again
    study.tell(trial, value | PRUNED)      # at the full resource, or when pruned

With several objectives (``objectives=``, see :class:`StepObjectives`), each step reports a vector
(``optuna_mobster.report`` / ``should_prune``: ``benchmarks/multiobjective.py``) and a trial at the
full resource is told all of them; the loop is the same.

The tuner is one process (one "driver"), as in one Optuna process or a central scheduler: its
decisions are taken one after another, and the real CPU seconds they take (``ask``,
``report`` + ``should_prune``, ``tell``) are added to the simulated clock ("charged"). A worker
whose event comes in while the driver is busy waits for it. The same run is also re-timed "free":
each event's time less the waits its worker has spent on decisions up to then.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from benchmarks.tables import Benchmark, Evaluation

# Optuna is imported where it is used: the protocol helpers and result types here are shared
# with the Syne Tune reference runner, whose environment has no Optuna.
if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler

#: Simulated seconds of the median full training (all units of the median configuration).
MEDIAN_FULL_TRAINING_SECONDS = 600.0
#: Budget: this many median full trainings on one worker, divided by the number of workers.
BUDGET_FULL_TRAININGS = 32
#: Default number of asynchronous workers.
DEFAULT_WORKERS = 4

EventKind = Literal["start", "report", "prune", "complete"]


def time_scale(benchmark: Benchmark) -> float:
    """Factor on the benchmark's seconds that makes the median full training last 600 s.

    "Full training" is the sum of a configuration's per-unit seconds over all its units; the
    median is over the table's configurations (LCBench: 20,000 random ones), so their relative
    costs stay as measured.
    """
    return MEDIAN_FULL_TRAINING_SECONDS / benchmark.median_full_training_seconds()


def budget_seconds(workers: int = DEFAULT_WORKERS, full_trainings: float = BUDGET_FULL_TRAININGS) -> float:
    """Simulated time of ``full_trainings`` median full trainings on one worker, over ``workers``."""
    return full_trainings * MEDIAN_FULL_TRAINING_SECONDS / workers


def distributions(benchmark: Benchmark) -> dict[str, BaseDistribution]:
    """The benchmark's parameters as Optuna distributions over their ranges (log where log-spaced)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists: dict[str, BaseDistribution] = {}
    for p in benchmark.parameters:
        if p.kind == "categorical":
            dists[p.name] = CategoricalDistribution(list(p.values))
        elif p.kind == "int":
            dists[p.name] = IntDistribution(int(p.values[0]), int(p.values[-1]), log=p.log)
        else:
            dists[p.name] = FloatDistribution(float(p.values[0]), float(p.values[-1]), log=p.log)
    return dists


@dataclass(frozen=True)
class Event:
    """One thing that happened in a simulated run, for inspection and tests.

    ``time`` is the charged simulated time at which the driver handled it (for ``start``, when
    the new trial began training).
    """

    time: float
    worker: int
    trial: int
    kind: EventKind
    step: int = 0
    value: float = float("nan")


@dataclass(frozen=True)
class Suggestion:
    """The cost of one ``ask`` and how much data the tuner had when it was made."""

    seconds: float
    trials_before: int
    results_before: int


@dataclass
class Simulation:
    """Everything one simulated run produced.

    ``completions`` holds ``(charged time, free time, *values)`` of each trial that reached the
    full resource, in the order they were handled: ``values`` is ``(error,)`` with one objective,
    whose running minimum is the incumbent, or every objective's value
    (:class:`StepObjectives`). ``rows``
    is the :attr:`Evaluation.key` of each trial (a table's row), in trial order;
    ``incumbent_config`` the parameters of the final incumbent.
    """

    table: str
    workers: int
    budget: float
    scale: float
    completions: list[tuple[float, ...]] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    prune_seconds: float = 0.0
    tell_seconds: float = 0.0
    n_trials: int = 0
    n_pruned: int = 0
    rows: list[int] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    incumbent_config: dict[str, Any] | None = None
    #: The in-memory Optuna study the run drove (for diagnostics; not stored with the run).
    study: Any = field(default=None, repr=False)

    @property
    def decision_seconds(self) -> float:
        """All real seconds the tuner spent deciding (ask, report + should_prune, tell)."""
        return sum(s.seconds for s in self.suggestions) + self.prune_seconds + self.tell_seconds

    def final_incumbent(self) -> float:
        """Best error at the full resource within the budget (``inf`` if no trial finished)."""
        return min((c[2] for c in self.completions), default=float("inf"))


class StepObjectives(Protocol):
    """What a trial reports after each unit, and how: the simulator's one point of variation.

    ``values`` are the objectives after ``step`` units (the first is the validation error, which
    events and the incumbent use), ``report_and_check`` reports them and asks the pruner;
    ``directions`` are the study's.
    """

    directions: Sequence[str]

    def values(self, curve: Evaluation, step: int, scale: float) -> tuple[float, ...]: ...

    def report_and_check(self, trial: optuna.Trial, values: tuple[float, ...], step: int) -> bool: ...


class ValidationErrorObjective:
    """One objective, the validation error at the step, through Optuna's own ``trial.report``."""

    directions: Sequence[str] = ("minimize",)

    def values(self, curve: Evaluation, step: int, scale: float) -> tuple[float, ...]:
        return (float(curve.errors[step - 1]),)

    def report_and_check(self, trial: optuna.Trial, values: tuple[float, ...], step: int) -> bool:
        trial.report(values[0], step)
        return trial.should_prune()


@dataclass
class _Running:
    """A trial on a worker: its Optuna handle, its curve and the units done so far."""

    trial: optuna.Trial
    curve: Evaluation
    units_done: int = 0


class _Driver:
    """The one tuner process: times each decision and serialises them on the simulated clock."""

    def __init__(self, clock: Callable[[], float], charge: bool) -> None:
        self._clock = clock
        self._charge = charge
        self.free_at = 0.0

    def decide(self, now: float, action: Callable[[], Any]) -> tuple[Any, float, float]:
        """Run ``action`` for an event at ``now``; returns (its result, start, end) in simulated time."""
        start = max(now, self.free_at) if self._charge else now
        before = self._clock()
        result = action()
        seconds = max(self._clock() - before, 0.0)
        end = start + seconds if self._charge else start
        self.free_at = max(self.free_at, end)
        return result, start, seconds


def simulate(
    table: Benchmark,
    sampler: BaseSampler,
    pruner: BasePruner,
    *,
    workers: int = DEFAULT_WORKERS,
    budget: float | None = None,
    scale: float | None = None,
    charge_decisions: bool = True,
    study_name: str = "simulation",
    clock: Callable[[], float] = time.process_time,
    keep_events: bool = False,
    objectives: StepObjectives | None = None,
) -> Simulation:
    """Run one asynchronous tuning of ``table`` with ``sampler`` + ``pruner`` in simulated time.

    Args:
        table: The benchmark whose learning curves are replayed.
        sampler, pruner: The Optuna tuner (fresh instances: they hold state).
        workers: Number of asynchronous workers ``K``.
        budget: Simulated seconds; default :func:`budget_seconds` for ``workers``.
        scale: Factor on the benchmark's seconds; default :func:`time_scale`.
        charge_decisions: Add the tuner's real CPU seconds to the simulated clock.
        study_name: Name of the in-memory study (Hyperband pruners hash it into brackets).
        clock: Measures decision time; CPU time of this process by default (robust to other
            processes sharing the machine). Tests pass a fake one.
        keep_events: Record every :class:`Event` (tests, debugging).
        objectives: What each step reports; default :class:`ValidationErrorObjective`. With several,
            a completed trial is told all of them.
    """
    import optuna
    from optuna.trial import TrialState

    budget = budget_seconds(workers) if budget is None else budget
    scale = time_scale(table) if scale is None else scale
    space = distributions(table)
    objectives = ValidationErrorObjective() if objectives is None else objectives
    study = optuna.create_study(
        study_name=study_name,
        sampler=sampler,
        pruner=pruner,
        storage=optuna.storages.InMemoryStorage(),
        directions=list(objectives.directions),
    )
    sim = Simulation(table=table.name, workers=workers, budget=budget, scale=scale, study=study)
    driver = _Driver(clock, charge_decisions)
    queue: list[tuple[float, int, int]] = []  # (time a unit finishes, tie-break sequence, worker)
    running: dict[int, _Running] = {}
    waited = [0.0] * workers  # each worker's cumulative wait for decisions (for the free clock)
    results = 0  # intermediate values reported so far, the data size of a suggestion
    sequence = 0

    def log(now: float, worker: int, trial: int, kind: EventKind, step: int = 0, value: float = float("nan")) -> None:
        if keep_events:
            sim.events.append(Event(now, worker, trial, kind, step, value))

    def start_trial(worker: int, now: float) -> None:
        """Ask for a new trial on an idle ``worker`` at ``now`` and queue its first unit."""
        nonlocal sequence
        if now >= budget:
            return
        trials_before = sim.n_trials
        trial, begin, seconds = driver.decide(now, lambda: study.ask(space))
        sim.suggestions.append(Suggestion(seconds, trials_before, results))
        end = begin + seconds if charge_decisions else begin
        waited[worker] += end - now
        curve = table.evaluate(trial.params)
        running[worker] = _Running(trial, curve)
        sim.rows.append(curve.key)
        sim.n_trials += 1
        log(end, worker, trial.number, "start")
        sequence += 1
        heapq.heappush(queue, (end + float(curve.seconds[0]) * scale, sequence, worker))

    for worker in range(workers):
        start_trial(worker, 0.0)

    while queue:
        now, _, worker = heapq.heappop(queue)
        if now > budget:
            break  # every later event is later still: the budget is spent
        job = running[worker]
        job.units_done += 1
        step = job.units_done
        values = objectives.values(job.curve, step, scale)
        value = values[0]  # the validation error
        free_now = now - waited[worker]
        pruned, seen, seconds = driver.decide(now, lambda: objectives.report_and_check(job.trial, values, step))
        sim.prune_seconds += seconds
        results += 1
        log(seen, worker, job.trial.number, "report", step, value)
        if step == table.max_resource:
            # Counted when the driver sees it, which is ``now`` unless it was busy.
            if len(values) == 1 and value < sim.final_incumbent():
                sim.incumbent_config = dict(job.trial.params)
            sim.completions.append((seen, free_now, *values))
            told = value if len(values) == 1 else list(values)
            _, begin, seconds = driver.decide(now, lambda: study.tell(job.trial, told))
            sim.tell_seconds += seconds
            log(begin, worker, job.trial.number, "complete", step, value)
        elif pruned:
            _, begin, seconds = driver.decide(now, lambda: study.tell(job.trial, state=TrialState.PRUNED))
            sim.tell_seconds += seconds
            sim.n_pruned += 1
            log(begin, worker, job.trial.number, "prune", step, value)
        else:
            # The unit after the decision: the worker waited for the driver, then trains on.
            resume = driver.free_at if charge_decisions else now
            waited[worker] += resume - now
            sequence += 1
            heapq.heappush(queue, (resume + float(job.curve.seconds[step]) * scale, sequence, worker))
            continue
        del running[worker]
        resume = driver.free_at if charge_decisions else now
        waited[worker] += resume - now
        start_trial(worker, resume)
    return sim
