"""The command line: ``main`` parses (``parser``), applies a ``--config`` file (``config``) and runs one
subcommand module; bad input is one line on stderr and exit code 2, a computation that went NaN or
infinite one line and exit code 3."""

from __future__ import annotations

import argparse
import shlex
import sys

from metricattack.errors import InputError, NumericalError, is_out_of_memory

NUMERICAL_FAILURE = 3  # exit code of a computation that went NaN or infinite on valid input


def resume_hint(argv: list[str], args: argparse.Namespace) -> str:
    """For an interrupted run or training: the command that continues it (what finished is already saved)."""
    what = getattr(args, "resumes", None)
    if what is None or not getattr(args, "out", None):
        return ""
    extra = ([] if "--out" in argv else ["--out", args.out]) + ([] if "--resume" in argv else ["--resume"])
    return f"; the finished {what} are saved in {args.out}: continue with: metricattack {shlex.join(argv + extra)}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 0 on success, 2 on bad input, 3 on a NaN or infinite computation (one line on stderr)."""
    from metricattack.cli.checks import one_line
    from metricattack.cli.config import apply_config
    from metricattack.cli.memory import check_batches_fit, out_of_memory_message
    from metricattack.cli.parser import build_parser
    from metricattack.system import distributed
    from metricattack.system.runtime import keep_freed_memory
    from metricattack.system.signals import interrupt_exit_code, sigterm_raises

    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()
    try:
        with sigterm_raises():
            args = apply_config(subparsers[args.command_name], argv[1:], args) if args.command_name in subparsers else args
            args.command = "metricattack " + " ".join(shlex.quote(a) for a in argv)
            check_batches_fit(args)
            return args.func(args)
    except InputError as exc:
        print(f"metricattack: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except NumericalError as exc:
        print(f"metricattack: error: {one_line(str(exc))}", file=sys.stderr)
        return NUMERICAL_FAILURE
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        print(f"metricattack: error: {one_line(out_of_memory_message(exc, args))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user named that the system refused (permissions, disk full)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"metricattack: error: {one_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"metricattack: interrupted{one_line(resume_hint(argv, args))}", file=sys.stderr)
        return interrupt_exit_code(exc)
    finally:
        distributed.stop()
