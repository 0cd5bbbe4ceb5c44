"""Helpers for tests that run the real command in a child process."""
from __future__ import annotations

import signal


def ctrl_c_reaches_it() -> None:
    """`preexec_fn` for a child that a test stops with Ctrl-C (SIGINT): a shell that starts a job in
    the background without job control (`cmd &` in a script, as CI may) makes it ignore SIGINT, and
    Python keeps an ignored SIGINT ignored, so the child would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
