"""What a ``lightning-siamese`` subcommand declares: :class:`Tool`, and :class:`UsageError` for its argument checks.

Each module under ``cli/tools/`` ends with one ``TOOL = Tool(...)``; ``cli/tools/__init__.py``
lists them and ``cli/main.py`` builds the parser and dispatches from that list alone. This
module sits outside ``cli/tools/`` so that every tool can import it while no tool imports
another (the import-linter independence contract).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


class UsageError(ValueError):
    """A combination of arguments a tool cannot run with (argparse cannot say it).

    ``lightning-siamese`` shows it as argparse shows its own errors: the subcommand's usage,
    ``lightning-siamese NAME: error: MESSAGE``, exit status 2.
    """


@dataclass(frozen=True)
class Tool:
    """One ``lightning-siamese`` subcommand.

    - ``name``: the subcommand (``lightning-siamese NAME``).
    - ``help``: its line in ``lightning-siamese --help``.
    - ``description``: the text of ``lightning-siamese NAME --help``.
    - ``add_arguments``: adds its arguments to its own subparser.
    - ``run``: does the work with the parsed arguments; what it returns (a JSON record, a
      path) is for callers in Python, the command ignores it.
    - ``passes_unknown``: arguments it does not know are handed on to the ``lightning`` runs
      it starts, in ``args.lightning_args`` (``view2``, ``sweep``); otherwise they are refused
      before anything runs.
    - ``user_errors``: exception types that mean a wrong input rather than a bug; shown as one
      line, ``lightning-siamese NAME: error: MESSAGE``, exit status 2, without a traceback.
    """

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], object]
    passes_unknown: bool = False
    user_errors: tuple[type[Exception], ...] = ()
