"""The command line: ``lightning`` (LightningCLI) and the ``lightning-siamese`` tools."""
