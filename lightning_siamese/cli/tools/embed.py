"""``lightning-siamese embed``: embeddings of image files or folders, as ``.npz`` or ``.csv``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lightning_siamese.cli.tool import Tool
from lightning_siamese.inference.images import image_paths
from lightning_siamese.inference.model import embed_paths, load_trained


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files or folders")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    parser.add_argument("--output", required=True, help="embeddings.npz or embeddings.csv")


def run(args: argparse.Namespace) -> Path:
    """Embed image files with a checkpoint; write ``.npz`` (embeddings, paths) or ``.csv`` (path, e0, e1, ...)."""
    import numpy as np

    model, data = load_trained(args.ckpt)
    paths = image_paths(args.inputs)
    embeddings = embed_paths(model, data, paths).numpy()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".csv":
        rows = [",".join(["path", *(f"e{j}" for j in range(embeddings.shape[1]))])]
        rows += [",".join([json.dumps(p), *(f"{v:.7g}" for v in row)]) for p, row in zip(paths, embeddings)]
        output.write_text("\n".join(rows) + "\n")
    elif output.suffix == ".npz":
        np.savez(output, embeddings=embeddings, paths=np.array(paths))
    else:
        raise ValueError(f"--output {output}: expected a .npz or .csv file name")
    print(f"Wrote {len(paths)} embeddings of dimension {embeddings.shape[1]} to {output}")
    return output


TOOL = Tool(
    name="embed",
    help="embed image files or folders with a checkpoint",
    description="Embed images (files, or folders searched recursively) as the checkpoint's "
    "data module prepares them; write .npz (embeddings, paths) or .csv (path, e0, e1, ...).",
    add_arguments=add_arguments,
    run=run,
)
