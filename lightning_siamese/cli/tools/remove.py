"""``lightning-siamese remove``: drop whole classes from a gallery (no checkpoint needed)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lightning_siamese.cli.tool import Tool
from lightning_siamese.inference.gallery import Gallery


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gallery", help="a gallery file")
    parser.add_argument("classes", nargs="+", help="class names, as `identify` prints them")


def run_remove(gallery_path: str, names: Sequence[str]) -> int:
    """Drop classes from the gallery (no checkpoint needed)."""
    gallery = Gallery.load(gallery_path)
    removed = gallery.remove(names)
    gallery.save(gallery_path)
    print(
        f"Removed {len(set(names))} classes ({removed} images) from {gallery_path}: {len(gallery.classes)} classes left"
    )
    return removed


def run(args: argparse.Namespace) -> int:
    return run_remove(args.gallery, args.classes)


TOOL = Tool(
    name="remove",
    help="drop classes from a gallery",
    description="Drop whole classes from GALLERY.",
    add_arguments=add_arguments,
    run=run,
)
