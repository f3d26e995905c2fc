"""Every benchmark by name: the stored tables of real training and the 34 LCBench tasks.

Names: a table's name (``mlp_digits``), or ``lcbench-<OpenML task id>``. Group names expand to
several: ``real`` (every stored table), ``lcbench`` (all 34 tasks), ``lcbench-tuning`` (the ten
tasks on which defaults may be chosen) and ``lcbench-evaluation`` (the other 24).
"""

from __future__ import annotations

from collections.abc import Iterable

from benchmarks import lcbench
from benchmarks.tables import Benchmark, list_tables, load_table


def groups() -> dict[str, list[str]]:
    return {
        "real": list_tables(),
        "lcbench": lcbench.benchmark_names(),
        "lcbench-tuning": lcbench.benchmark_names(lcbench.TUNING_TASKS),
        "lcbench-evaluation": lcbench.benchmark_names(lcbench.EVALUATION_TASKS),
    }


def list_benchmarks() -> list[str]:
    """Every benchmark name (LCBench's are listed whether or not its data is here)."""
    return [*list_tables(), *lcbench.benchmark_names()]


def expand(names: Iterable[str]) -> list[str]:
    """Benchmark and group names -> benchmark names, in order, without repeats."""
    known, named = groups(), []
    for name in names:
        for one in known.get(name, [name]):
            if one not in named:
                named.append(one)
    return named


def load_benchmark(name: str) -> Benchmark:
    """The benchmark ``name``; an LCBench task needs the surrogate's files (a clear error if absent)."""
    if lcbench.is_lcbench(name):
        return lcbench.load(name)
    if name in list_tables():
        return load_table(name)
    raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(list_benchmarks())} and the groups {', '.join(groups())}")


def task_group(name: str) -> str:
    """``real``, ``lcbench-tuning`` or ``lcbench-evaluation``: how the README reports a benchmark."""
    if not lcbench.is_lcbench(name):
        return "real"
    return "lcbench-tuning" if name[len(lcbench.PREFIX):] in lcbench.TUNING_TASKS else "lcbench-evaluation"
