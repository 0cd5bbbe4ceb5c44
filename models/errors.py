"""The one exception type `models` raises for bad user input."""


class InputError(ValueError):
    """A user-supplied file or value is unusable; the message names it and the problem."""
