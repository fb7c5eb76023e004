"""lightning-siamese: one-shot and few-shot recognition with Siamese networks on Lightning."""

__version__ = "0.1.0"
