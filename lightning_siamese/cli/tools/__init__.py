"""The ``lightning-siamese`` subcommands, one module each."""
