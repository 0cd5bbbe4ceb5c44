"""The one exception type `models` raises for bad user input, and how a library's exception
becomes part of its one-line message."""

import contextlib
from collections.abc import Iterator


class InputError(ValueError):
    """A user-supplied file or value is unusable; the message names it and the problem."""


@contextlib.contextmanager
def labelled(label: str) -> Iterator[None]:
    """An InputError raised inside comes out with `label: ` in front (the option or file that
    carried the bad value), still one line."""
    try:
        yield
    except InputError as err:
        raise InputError(f"{label}: {err}") from None


def error_detail(err: BaseException, limit: int = 160) -> str:
    """`Type: message` of a library's exception, as one short printable line."""
    text = "".join(c if c.isprintable() else " " for c in str(err))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def interrupt_behind(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM, raised as one) at the root of `err`, if any: an interrupt that
    lands while compiled code (numba's dispatcher) runs a Python callback surfaces as a chain
    of SystemErrors, "… returned a result with an exception set", caused by it."""
    while isinstance(err, SystemError) and err.__cause__ is not None:
        err = err.__cause__
    return err if isinstance(err, KeyboardInterrupt) else None
