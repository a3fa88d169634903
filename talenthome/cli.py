"""The `talenthome` command. Each area registers its subcommands from talenthome/commands/."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from talenthome import errors
from talenthome.commands import admin, backup, boards, calendar, data, demo, gifts, service, services, setup, tools
from talenthome.runtime import CliError

# Each command module has register(subparsers) adding its subcommands. Written out: a missing module is an
# import error at start, not a silently absent command.
COMMAND_MODULES = (setup, data, gifts, services, service, tools, boards, backup, calendar, admin, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talenthome", description="Quanzhou Talent Home points platform (bot, worker, scoring).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser




def _fail(message: str) -> None:
    with contextlib.suppress(OSError):
        print(f"talenthome: error: {message}", file=sys.stderr, flush=True)


def _drop_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush raises nothing."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Expected failures (talenthome/errors.py) print one line and exit non-zero."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        result = args.func(args)
        sys.stdout.flush()
    except CliError as err:
        _fail(str(err))
        return 2
    except KeyboardInterrupt:
        _fail("interrupted (Ctrl-C); a command stopped half-way changes nothing it had not committed")
        return errors.EXIT_INTERRUPTED
    except BrokenPipeError:
        _drop_stdout()
        _fail("the output was closed early (a pipe such as `| head`); the rest of the output was dropped")
        return errors.EXIT_PIPE
    except Exception as exc:  # an expected failure becomes one line; anything else is a bug: re-raise
        described = errors.describe(exc)
        if described is None:
            raise
        _fail(described[0])
        return described[1]
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
