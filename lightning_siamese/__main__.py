"""``python -m lightning_siamese`` is the ``lightning`` command."""

from lightning_siamese.cli.lightning import main

if __name__ == "__main__":
    main()
