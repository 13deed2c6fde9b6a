"""The one exception type for bad input at the library's edge."""


class InputError(ValueError):
    """A user-supplied value is not allowed; the message names the value and what is allowed.

    The CLI turns it into one line on stderr and exit code 2."""
