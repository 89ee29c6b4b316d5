"""The one place where option values are parsed and checked, from the command line or a YAML file.

Each checker is an argparse ``type=``: it takes the text the user typed and returns the value, or
raises ``argparse.ArgumentTypeError`` saying what was expected (argparse then prints the usage and
one line, exit 2). ``config_values`` runs the values of a ``--config`` file through the same
checkers, so an option is checked the same way wherever its value comes from. A new option gets
its check with one word: ``parser.add_argument("--steps", type=positive_int)``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from metricattack.errors import InputError
from metricattack.system.atomic import folder_problem

LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on


def one_line(message: str) -> str:
    """``message`` with line breaks escaped (a file name may hold one), so an error is always one line."""
    return "".join(repr(c)[1:-1] if c in LINE_BREAKS else c for c in message)


class Parser(argparse.ArgumentParser):
    """argparse whose error stays one line after the usage (values holding a line break are escaped)."""

    def error(self, message: str):
        """Print the usage and the escaped message, exit 2."""
        super().error(one_line(message))


def _number(text: str, convert: Callable[[str], float], kind: str, accept: Callable[[float], bool], bound: str):
    """``convert(text)`` when it parses and ``accept`` holds; otherwise an error naming ``kind`` and ``bound``."""
    try:
        value = convert(str(text))
    except ValueError:
        value = None
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {kind}{bound}, got {text!r}")
    return value


def integer(text: str) -> int:
    """Any integer (seeds, identities)."""
    return _number(text, int, "an integer", lambda v: True, "")


def random_seed(text: str) -> int:
    """A random seed: an integer from 0 to 2**32 - 1 (derived seeds must still fit torch's 64 bits)."""
    return _number(text, int, "an integer", lambda v: 0 <= v < 2**32, " from 0 to 4294967295")


def positive_int(text: str) -> int:
    """An integer >= 1 (sizes, counts, steps)."""
    return _number(text, int, "an integer", lambda v: v >= 1, " >= 1")


def nonneg_int(text: str) -> int:
    """An integer >= 0 (workers, how many examples to keep)."""
    return _number(text, int, "an integer", lambda v: v >= 0, " >= 0")


def finite_float(text: str) -> float:
    """Any finite number."""
    return _number(text, float, "a finite number", lambda v: True, "")


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rate, step size)."""
    return _number(text, float, "a number", lambda v: v > 0, " > 0")


def nonneg_float(text: str) -> float:
    """A finite number >= 0 (weight decay, margin)."""
    return _number(text, float, "a number", lambda v: v >= 0, " >= 0")


def probability(text: str) -> float:
    """A number between 0 and 1."""
    return _number(text, float, "a number", lambda v: 0 <= v <= 1, " between 0 and 1")


def out_folder(text: str) -> str:
    """A folder to write into: an existing folder we can write in, or one we can create."""
    problem = folder_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def out_file(text: str) -> str:
    """A file to write: not a folder, in a folder we can write in or create."""
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder (expected a file name)")
    problem = folder_problem(Path(text).parent)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def yaml_only(text: str) -> str:
    """Marks an option whose structured value comes from a ``--config`` file only (e.g. ``settings``)."""
    raise argparse.ArgumentTypeError("can only be given in a --config file")


def model_reference(text: str) -> str:
    """A model reference as typed on the command line; in YAML it may also be a mapping (see models.references)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a model reference, got an empty string")
    return text


def check_value(check: Callable[[str], object] | None, value: object, label: str) -> object:
    """A YAML scalar through an option's checker; a one-line InputError naming ``label`` when it fails."""
    if check is model_reference and isinstance(value, dict):
        return value  # checked when parsed as a reference
    if isinstance(value, (list, dict)):
        raise InputError(f"{label}: expected a single value, got {value!r}")
    if check is None:
        return str(value)
    try:
        return check(str(value))
    except (argparse.ArgumentTypeError, ValueError) as exc:
        kind = getattr(check, "__name__", "value")
        reason = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else f"expected a valid {kind}, got {value!r}"
        raise InputError(f"{label}: {reason}") from None


def config_value(action: argparse.Action, value: object, label: str) -> object:
    """One YAML value for ``action``, checked as the command line would check it."""
    if action.type is yaml_only:
        if isinstance(value, str):
            raise InputError(f"{label}: expected a YAML list or mapping, got {value!r}")
        return value
    if value is None and action.default is None:
        return value
    if value is None:
        raise InputError(f"{label}: expected a value (leave the option out to get its default {action.default!r})")
    if action.nargs == 0:  # a flag: store_true / store_false
        if not isinstance(value, bool):
            raise InputError(f"{label}: expected true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction) or action.nargs not in (None, "?"):
        values = value if isinstance(value, list) else [value] if isinstance(action, argparse._AppendAction) else None
        if values is None:
            raise InputError(f"{label}: expected a list, got {value!r}")
        if isinstance(action.nargs, int) and len(values) != action.nargs:
            raise InputError(f"{label}: expected a list of {action.nargs} values, got {value!r}")
        if action.nargs == "+" and not values:
            raise InputError(f"{label}: expected a non-empty list, got {value!r}")
        return [config_value_one(action, v, label) for v in values]
    return config_value_one(action, value, label)


def config_value_one(action: argparse.Action, value: object, label: str) -> object:
    """A single value through the action's checker and choices."""
    checked = check_value(action.type, value, label)
    if action.choices is not None and checked not in action.choices:
        raise InputError(f"{label}: expected one of {', '.join(map(str, action.choices))}, got {value!r}")
    return checked


def config_values(parser: argparse.ArgumentParser, values: dict, source: str) -> dict:
    """Check every ``values[dest]`` (from a YAML file) with the parser's own option checks (unknown names pass as they are)."""
    actions = {action.dest: action for action in parser._actions}
    return {
        dest: config_value(actions[dest], value, f"{source}: {dest}") if dest in actions else value
        for dest, value in values.items()
    }
