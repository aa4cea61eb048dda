"""Command line: ``python -m core <command>``.

Commands (stable, see docs/architecture.md): demo, build-dataset, train, evaluate, sample.
A user error prints one readable line to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    # Each part of the library registers its own sub-commands, so this file stays a router.
    from core.data import cli as data_cli
    from core.evaluation import cli as evaluation_cli
    from core.training import cli as training_cli

    data_cli.register(commands)
    training_cli.register(commands)
    evaluation_cli.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
