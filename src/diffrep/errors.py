"""The exception types a user sees: bad input at the library's edge, and a run that cannot go on; and the
warning for a valid choice that was measured to go wrong."""


class InputError(ValueError):
    """A user-supplied value is not allowed; the message names the value and what is allowed.

    The CLI turns it into one line on stderr and exit code 2."""


class RunError(RuntimeError):
    """A run stopped before its end for a reason it states (non-finite values, an output it cannot
    write); its last good checkpoint is kept. The CLI turns it into one line on stderr and exit code 1."""


class AdviceWarning(UserWarning):
    """A valid configuration that a benchmark measured to go wrong, and what to give instead. The CLI prints it as
    one line (``diffrep: note: ...``) before the run's work starts."""
