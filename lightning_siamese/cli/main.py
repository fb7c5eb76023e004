"""The ``lightning-siamese`` command: tools beside ``lightning``, one subcommand per module of ``cli/tools/``.

``lightning-siamese --help`` lists them; ``lightning-siamese NAME --help`` describes one.
The parser and the dispatch are a loop over the registry (:data:`lightning_siamese.cli.tools.TOOLS`):
a tool declares its name, help, description, arguments and run function
(:class:`lightning_siamese.cli.tool.Tool`), and nothing here names a tool.
"""

from __future__ import annotations

import argparse

from lightning_siamese.cli.tool import Tool, UsageError
from lightning_siamese.cli.tools import TOOLS

PROG = "lightning-siamese"


def build_parser(tools: tuple[Tool, ...] = TOOLS) -> argparse.ArgumentParser:
    """The ``lightning-siamese`` parser: one subparser per tool, in the registry's order."""
    parser = argparse.ArgumentParser(prog=PROG, description="Tools beside the `lightning` command.")
    commands = parser.add_subparsers(dest="command", required=True)
    for tool in tools:
        subparser = commands.add_parser(tool.name, help=tool.help, description=tool.description)
        tool.add_arguments(subparser)
        subparser.set_defaults(tool=tool, tool_parser=subparser)
    return parser


def main(argv: list[str] | None = None, tools: tuple[Tool, ...] = TOOLS) -> None:
    """Parse ``argv`` (default: the command line), then run the chosen tool.

    Arguments a tool does not know are refused (exit 2) before anything runs, unless it
    passes them on (``Tool.passes_unknown``). A tool's :class:`UsageError` is shown with its
    usage, its ``user_errors`` as one line, both with exit status 2.
    """
    parser = build_parser(tools)
    args, extra = parser.parse_known_args(argv)
    tool: Tool = args.tool
    if tool.passes_unknown:
        args.lightning_args = extra  # handed on to the `lightning` runs it starts
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        tool.run(args)
    except UsageError as err:
        args.tool_parser.error(str(err))  # its usage, then "lightning-siamese NAME: error: ...", exit 2
    except tool.user_errors as err:
        parser.exit(2, f"{PROG} {tool.name}: error: {err}\n")


if __name__ == "__main__":
    main()
