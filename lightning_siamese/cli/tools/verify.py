"""``lightning-siamese verify``: score two images with a checkpoint; same or different (genuine or forged)."""

from __future__ import annotations

import argparse

import torch

from lightning_siamese.cli.tool import Tool
from lightning_siamese.inference.images import image_paths, read_image
from lightning_siamese.inference.model import (
    decision_threshold,
    load_trained,
    writer_threshold,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("first", help="an image file")
    parser.add_argument("second", help="an image file")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    parser.add_argument("--threshold", type=float, help="override the stored threshold")
    parser.add_argument(
        "--references",
        nargs="+",
        help="signatures: the writer's genuine references (files or folders); "
        "decide at the writer's own threshold, mean - k std of their mutual scores (k from validation)",
    )


def run(args: argparse.Namespace) -> dict:
    """Score two images with a checkpoint; same or different at the threshold it keeps (or --threshold)."""
    model, data = load_trained(args.ckpt)
    first, second = read_image(args.first, data), read_image(args.second, data)
    with torch.no_grad():
        score = float(model.similarity(first, second))
    if args.references and args.threshold is not None:
        raise ValueError("--threshold and --references each set the threshold: give one of them")
    if args.references:
        threshold, source = writer_threshold(model, data, args.ckpt, image_paths(args.references))
    else:
        threshold, source = decision_threshold(model, args.ckpt, args.threshold)
    record = {
        "first": args.first,
        "second": args.second,
        "score": score,
        "threshold": threshold,
        "threshold_from": source,
        "same": score >= threshold,
        "checkpoint": args.ckpt,
    }
    words = ("GENUINE", "FORGED") if data.get("kind") == "signatures" else ("SAME", "DIFFERENT")
    print(
        f"{args.first} vs {args.second}: score {score:.4f}, threshold {threshold:.4f} from {source}: "
        f"{words[0] if record['same'] else words[1]}"
    )
    return record


TOOL = Tool(
    name="verify",
    help="score two images with a checkpoint: same or different",
    description=(
        "Prepare both images as the checkpoint's data module did (channels, centre crop, size, inversion), "
        "score them with its head, and compare with the threshold chosen on validation that the checkpoint "
        "keeps (or --threshold; 0.5 for a probability head without one). For a signature checkpoint the first "
        "image is the reference and the answer is GENUINE or FORGED; --references fits the writer's own threshold."
    ),
    add_arguments=add_arguments,
    run=run,
)
