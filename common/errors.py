"""The one exception type `models` raises for bad user input, and how a library's exception
becomes part of its one-line message."""


class InputError(ValueError):
    """A user-supplied file or value is unusable; the message names it and the problem."""


def error_detail(err: BaseException, limit: int = 160) -> str:
    """`Type: message` of a library's exception, as one short printable line."""
    text = "".join(c if c.isprintable() else " " for c in str(err))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
