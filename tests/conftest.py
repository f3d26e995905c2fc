"""Test-suite settings: one torch thread (the machines have 2 cores, shared with Ray workers)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
