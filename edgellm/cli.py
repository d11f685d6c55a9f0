"""The ``edgellm`` command. Each sub-package contributes its subcommands through a
``register(subparsers)`` function; heavy imports happen only when a command runs."""

from __future__ import annotations

import argparse
import importlib
import sys

from edgellm import __version__
from edgellm.errors import EdgeLLMError

# Modules that add subcommands, in help order.
COMMAND_MODULES = (
    "edgellm.dftsp.cli",       # solve
    "edgellm.envs.cli",        # scenario
    "edgellm.eval.cli",        # eval, sweep
    "edgellm.horizon.cli",     # bound
    "edgellm.train.cli",       # train
    "edgellm.profiling.cli",   # profile
    "edgellm.demo",            # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgellm",
        description="Batch scheduling of quantized LLM inference at the wireless edge.")
    parser.add_argument("--version", action="version", version=f"edgellm-gym {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeLLMError as e:
        print(f"edgellm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgellm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
