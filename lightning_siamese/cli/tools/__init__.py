"""The ``lightning-siamese`` subcommands: one module each, and :data:`TOOLS`, the registry.

Each module declares one :class:`~lightning_siamese.cli.tool.Tool` (its name, help,
description, arguments and run function) as ``TOOL``; ``cli/main.py`` builds the parser and
dispatches from :data:`TOOLS` alone, in this order (the order of ``lightning-siamese --help``).
A new subcommand is a new module here and one line below. Tools never import each other
(an import-linter contract): what two tools share lives in ``lightning_siamese.inference``.
"""

from lightning_siamese.cli.tool import Tool
from lightning_siamese.cli.tools import (
    baseline,
    compare,
    embed,
    enroll,
    export,
    identify,
    probe,
    remove,
    report,
    retrieve,
    sweep,
    tsne,
    verify,
    view2,
)

TOOLS: tuple[Tool, ...] = tuple(
    module.TOOL
    for module in (
        baseline,  # a fixed baseline on Lake's runs or a config's episodes
        view2,  # LFW's View 2 protocol (runs `lightning`)
        verify,  # two images: same or different
        embed,  # image files -> embeddings
        export,  # the embedding network -> TorchScript / ONNX
        enroll,  # gallery: add classes
        identify,  # gallery: name query images
        remove,  # gallery: drop classes
        compare,  # baselines and checkpoints on the same episodes
        tsne,  # t-SNE picture and TensorBoard projector
        sweep,  # a grid of config values (runs `lightning`)
        report,  # a Markdown report of one run
        retrieve,  # k nearest gallery images; precision@k, MAP@R
        probe,  # softmax probe on frozen embeddings; Gini OOD rule
    )
)
