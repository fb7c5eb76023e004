"""``lightning-siamese identify``: name the gallery class of query images, or "unknown" below a threshold."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from lightning_siamese.cli.tool import Tool
from lightning_siamese.inference.gallery import (
    Match,
    embed_files,
    identify_threshold,
    open_for_model,
)
from lightning_siamese.inference.images import image_paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gallery", help="a gallery file written by `lightning-siamese enroll`")
    parser.add_argument("inputs", nargs="+", help="query image files or folders")
    parser.add_argument("--ckpt", required=True, help="the checkpoint that built the gallery")
    parser.add_argument("--threshold", type=float, help="scores below it answer 'unknown' (default: the checkpoint's)")
    parser.add_argument(
        "--scoring",
        choices=("prototype", "nearest"),
        default="prototype",
        help="score against each class's mean embedding (default) or its nearest member",
    )
    parser.add_argument(
        "--chunk_size",
        type=int,
        default=1024,
        help="gallery rows scored at a time; bounds the search's memory (default 1024)",
    )
    parser.add_argument("--output", help="write the answers as JSON to this file")


def run_identify(
    gallery_path: str,
    ckpt: str,
    inputs: Sequence[str],
    threshold: float | None,
    scoring: str,
    chunk_size: int,
    output: str | None = None,
) -> list[Match]:
    """Name the best class of each query image, or "unknown" below the threshold; print one line per image."""
    gallery, model, data = open_for_model(gallery_path, ckpt, create=False)
    if not len(gallery):
        raise ValueError(f"gallery {gallery_path} is empty: enroll some classes first (lightning-siamese enroll)")
    threshold, source = identify_threshold(model, ckpt, threshold)
    paths = image_paths(list(inputs))
    embeddings, _, _ = embed_files(model, data, paths)
    matches = gallery.identify(embeddings, paths, model.head.pairwise_similarity, threshold, scoring, chunk_size)
    print(
        f"{len(gallery.classes)} classes, {len(gallery)} images in {gallery_path}; {scoring} scoring; "
        f"threshold {threshold:.4f} from {source}"
    )
    for m in matches:
        print(f"{m.query}: {m.label} (score {m.score:.4f}" + ("" if m.known else f", best class {m.best_class}") + ")")
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        record = {
            "gallery": gallery_path,
            "checkpoint": ckpt,
            "threshold": threshold,
            "threshold_from": source,
            "scoring": scoring,
            "matches": [
                {"query": m.query, "class": m.label, "best_class": m.best_class, "score": m.score} for m in matches
            ],
        }
        Path(output).write_text(json.dumps(record, indent=2) + "\n")
    return matches


def run(args: argparse.Namespace) -> list[Match]:
    return run_identify(
        args.gallery, args.ckpt, args.inputs, args.threshold, args.scoring, args.chunk_size, args.output
    )


TOOL = Tool(
    name="identify",
    help="name the gallery class of query images, or 'unknown'",
    description="Score each query image against the gallery with the model's own similarity (class prototypes = "
    "mean member embedding, or the nearest member) and print the best class, or 'unknown' when its score is below "
    "the threshold: --threshold, else the checkpoint's validation threshold (0.5 for a probability head without one).",
    add_arguments=add_arguments,
    run=run,
)
