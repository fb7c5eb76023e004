"""Recognise new classes without retraining: enroll a few examples of each, then identify queries.

    python examples/enroll_identify.py CHECKPOINT CLASS_FOLDERS QUERY_FOLDER

CLASS_FOLDERS holds one folder per class (``CLASS_FOLDERS/<class>/<image>``). Each query is
given the class whose prototype (mean embedding of its examples) scores best with the model's
own similarity, or "unknown" below the checkpoint's threshold. ``lightning-siamese enroll`` and
``identify`` do the same with a gallery file that grows over time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from lightning_siamese.inference.gallery import Gallery, model_identity, preprocessing
from lightning_siamese.inference.images import image_paths, labelled_images
from lightning_siamese.inference.model import decision_threshold, embed_paths, load_trained


def main(argv: list[str]) -> dict[str, str]:
    checkpoint, class_folders, queries = argv
    model, data = load_trained(checkpoint)
    examples = labelled_images([class_folders])  # (path, class) for every image, the class from its folder
    paths, classes = [p for p, _ in examples], [c for _, c in examples]
    gallery = Gallery(model_identity(checkpoint), preprocessing(data))
    with torch.no_grad():
        gallery.add(embed_paths(model, data, paths), classes, paths)
        query_paths = image_paths([queries])
        threshold, _ = decision_threshold(model, checkpoint, None)
        matches = gallery.identify(
            embed_paths(model, data, query_paths), query_paths, model.head.pairwise_similarity, threshold
        )
    answers = {Path(m.query).name: m.label for m in matches}
    for name, label in answers.items():
        print(f"{name}: {label}")
    return answers


if __name__ == "__main__":
    main(sys.argv[1:])
