#!/usr/bin/env bash
# Build the reference MOBSTER (Syne Tune 0.13.0, the last release with its GP searchers) in its
# own virtual environment. It wants numpy<2, so it can never share the library's environment, and
# it is never a dependency of the library: only benchmarks/reference/run_synetune.py uses it.
#
#   bash benchmarks/reference/setup.sh            # creates .venv-synetune in the repo root
#   VENV=/somewhere/else bash benchmarks/reference/setup.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv-synetune}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# numpy<2 pinned explicitly: syne-tune 0.13.0's autograd-based GP code predates numpy 2.
# scikit-learn: syne_tune.blackbox_repository (its simulator backend) imports it at load time.
# scipy: benchmarks.protocol (imported by benchmarks.report) uses it.
# onnxruntime: the LCBench surrogate (benchmarks/lcbench.py); resolved together with numpy<2.
"$VENV/bin/python" -m pip install -q "syne-tune[gpsearchers]==0.13.0" "numpy<2" scikit-learn scipy "onnxruntime>=1.17"
"$VENV/bin/python" -c "import syne_tune, numpy, scipy, onnxruntime; print('syne-tune', syne_tune.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'onnxruntime', onnxruntime.__version__)"
# Everything the runner imports from the project must load without torch or Optuna (never installed here).
(cd "$ROOT" && "$VENV/bin/python" -c "import benchmarks.reference.run_synetune, benchmarks.report, benchmarks.suite, benchmarks.lcbench, benchmarks.simulator")
