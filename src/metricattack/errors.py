"""The error types the CLI prints as one line (bad user input: exit code 2; a computation that went NaN or
infinite on valid input: exit code 3), the one line that says what a foreign exception was, and whether one
means that memory ran out."""


class InputError(ValueError):
    """Bad user input (a path, option or file that is not what was expected)."""


class NumericalError(ArithmeticError):
    """A computation on valid input went NaN or infinite (an attack's loss or gradient, a training loss)."""


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), after its type's name if asked."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if with_type else text.splitlines()[0]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out: Python's MemoryError, torch's CPU allocator, CUDA or MPS out of memory."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)
