"""The exception types a user sees: bad input at the library's edge, and a run that cannot go on."""


class InputError(ValueError):
    """A user-supplied value is not allowed; the message names the value and what is allowed.

    The CLI turns it into one line on stderr and exit code 2."""


class RunError(RuntimeError):
    """A run stopped before its end for a reason it states (non-finite values, an output it cannot
    write); its last good checkpoint is kept. The CLI turns it into one line on stderr and exit code 1."""
