"""The former home of the ``lightning-siamese`` command, now :mod:`lightning_siamese.cli.main`.

Kept so that ``python -m lightning_siamese.cli.siamese``, console scripts installed before
the move (``lightning_siamese.cli.siamese:main``) and scripts that import ``main`` from here
(benchmarks/darkshot.py) keep working. New code imports :mod:`lightning_siamese.cli.main`.
"""

from lightning_siamese.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    main()
