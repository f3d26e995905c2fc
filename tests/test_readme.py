"""The README's quickstarts, and those of docs/multi-objective.md it links to, pasted into files
and run as written (each in a fresh directory)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
MULTI_OBJECTIVE = README.parent / "docs" / "multi-objective.md"


def python_blocks(page: Path = README) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)


def block_importing(module: str) -> str:
    found = [block for block in python_blocks() if f"from {module} import" in block]
    assert len(found) == 1, f"expected one README snippet importing {module}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize(
    ("module", "printed"),
    [("optuna_mobster", r"best error (\d\.\d{4}) with \{'lr'"), ("tune_mobster", r"best loss (\d\.\d{4}) with \{'lr'")],
)
def test_quickstart_runs_as_written(tmp_path: Path, module: str, printed: str) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(block_importing(module))
    run = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=540
    )
    assert run.returncode == 0, run.stderr[-3000:]
    best = re.search(printed, run.stdout)
    assert best is not None, run.stdout[-2000:]
    # Both synthetic curves are at least 1/sqrt(27) ~ 0.19 at the last epoch, and the search must
    # get well below a random configuration's (about 0.5 or more).
    assert 0.19 < float(best.group(1)) < 0.4


@pytest.mark.parametrize("marker", ["optuna_mobster.report", "tune_mobster.MobsterSearcher(metric=METRICS"])
def test_multi_objective_quickstart_runs_as_written(tmp_path: Path, marker: str) -> None:
    (block,) = [b for b in python_blocks(MULTI_OBJECTIVE) if marker in b]
    script = tmp_path / "quickstart_mo.py"
    script.write_text(block)
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert run.returncode == 0, run.stderr[-3000:]
    front = [(float(e), float(s)) for e, s in re.findall(r"front: error (\d\.\d{4}), (?:size|params) (\d+)", run.stdout)]
    assert front, run.stdout[-2000:]
    # A front: no printed point is dominated by another.
    for error, size in front:
        assert not any(e <= error and s <= size and (e, s) != (error, size) for e, s in front)
