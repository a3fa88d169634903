"""The `talenthome` command. Each area registers its subcommands from talenthome/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from talenthome.runtime import CliError

# Modules under talenthome.commands, each with register(subparsers) adding its subcommands.
COMMAND_MODULES = ("setup", "data", "service", "tools", "boards", "calendar", "admin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talenthome", description="Quanzhou Talent Home points platform (bot, worker, scoring).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"talenthome.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"talenthome.commands.{name}":
                continue  # that area is not built yet
            raise
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
