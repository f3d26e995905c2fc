"""The Ray Tune quickstart runs as a script, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ray_quickstart_runs(tmp_path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    command = [
        sys.executable,
        str(REPO / "examples" / "ray_quickstart.py"),
        "--num-samples", "8",
        "--max-t", "9",
        "--storage-path", str(tmp_path),
    ]  # fmt: skip
    finished = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "best loss" in finished.stdout
