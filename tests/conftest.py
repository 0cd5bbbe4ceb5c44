"""Shared test fixtures, and one BLAS thread for NumPy/SciPy: with two cores shared by torch
and BLAS threads, oversubscribed threads wait on each other and a busy machine makes the
learning tests several times slower."""
import os
import signal

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy is first imported

import pytest


@pytest.fixture
def no_hang():
    """A test whose loader blocks (on a pipe, say) or loops fails after 60 s instead of hanging
    the run (SIGALRM raises in the blocked call)."""
    def expire(*_):
        raise TimeoutError("blocked for 60 s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
