"""The `talenthome` command. Each area registers its subcommands from talenthome/commands/."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from talenthome.commands import admin, boards, calendar, data, demo, gifts, service, setup, tools
from talenthome.runtime import CliError

# Each command module has register(subparsers) adding its subcommands. Written out: a missing module is an
# import error at start, not a silently absent command.
COMMAND_MODULES = (setup, data, gifts, service, tools, boards, calendar, admin, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talenthome", description="Quanzhou Talent Home points platform (bot, worker, scoring).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser




def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except CliError as err:
        print(f"talenthome: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
