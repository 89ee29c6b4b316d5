"""The error type for bad user input: the CLI prints its message on one line and exits with 2."""


class InputError(ValueError):
    """Bad user input (a path, option or file that is not what was expected)."""
