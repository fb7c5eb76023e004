"""Are two images of the same class? Score them with a checkpoint and decide at its stored threshold.

    python examples/verify_pair.py CHECKPOINT FIRST_IMAGE SECOND_IMAGE

The score is the head's own similarity (higher = more alike); the threshold is the one fitted on
validation pairs and kept in the checkpoint (``decision_threshold`` says where it came from).
"""

from __future__ import annotations

import sys

import torch

from lightning_siamese.inference.images import read_image
from lightning_siamese.inference.model import decision_threshold, load_trained


def main(argv: list[str]) -> tuple[float, bool]:
    checkpoint, first, second = argv
    model, data = load_trained(checkpoint)
    with torch.no_grad():
        score = float(model.similarity(read_image(first, data), read_image(second, data)))
    threshold, source = decision_threshold(model, checkpoint, None)
    same = score >= threshold
    print(f"score {score:.4f}, threshold {threshold:.4f} ({source}): {'same class' if same else 'different classes'}")
    return score, same


if __name__ == "__main__":
    main(sys.argv[1:])
