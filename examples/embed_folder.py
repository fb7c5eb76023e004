"""Embed every image in a folder with a trained checkpoint, as the model was trained to see them.

    python examples/embed_folder.py CHECKPOINT FOLDER OUTPUT.npz

Images are read and prepared exactly as the checkpoint's data module prepared its own (size,
crop, channels, inversion, centring on the ink): ``read_image`` takes those settings from the
checkpoint, so nothing here needs to know how the model was trained.
"""

from __future__ import annotations

import sys

import numpy as np

from lightning_siamese.inference.images import image_paths
from lightning_siamese.inference.model import embed_paths, load_trained


def main(argv: list[str]) -> np.ndarray:
    checkpoint, folder, output = argv
    model, data = load_trained(checkpoint)  # the model in eval mode, and its data module's settings
    paths = image_paths([folder])  # every image file under the folder, sorted
    embeddings = embed_paths(model, data, paths).numpy()
    np.savez(output, embeddings=embeddings, paths=np.array(paths))
    print(f"{len(paths)} images -> {embeddings.shape[1]}-d embeddings in {output}")
    return embeddings


if __name__ == "__main__":
    main(sys.argv[1:])
