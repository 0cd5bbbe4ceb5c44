"""How many threads the render path uses: every pool sized on purpose, never by default."""
from __future__ import annotations

import os

import numba
import torch


def usable_cores() -> int:
    """The processors this process may run on (its affinity, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def use_threads(threads: int) -> None:
    """Size torch's pool (FLAME, the generator) and numba's (projection, the blend) for the
    calling thread's renders; numba's count holds per calling thread."""
    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
