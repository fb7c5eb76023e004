"""``lightning-siamese enroll``: add labelled images to a gallery of embeddings (new classes without retraining)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lightning_siamese.cli.tool import Tool
from lightning_siamese.inference.gallery import embed_files, open_for_model
from lightning_siamese.inference.images import labelled_images


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gallery", help="the gallery file, e.g. gallery.pt")
    parser.add_argument("folders", nargs="*", help="folders of class folders, or of one class's images")
    parser.add_argument("--list", dest="list_file", help="a CSV file of 'path,class' lines (paths relative to it)")
    parser.add_argument(
        "--ckpt", required=True, help="a checkpoint written by `lightning fit`; the gallery is tied to its model"
    )
    parser.add_argument(
        "--skip_bad_images",
        action="store_true",
        help="skip (and name) images that cannot be decoded instead of stopping with nothing enrolled",
    )


def run_enroll(gallery_path: str, ckpt: str, folders: Sequence[str], list_file: str | None, skip_bad: bool) -> dict:
    """Embed labelled images and add them to the gallery (created if absent); images already there are skipped."""
    items = labelled_images(folders, list_file)
    gallery, model, data = open_for_model(gallery_path, ckpt, create=True)
    enrolled = set(zip(gallery.paths, (gallery.classes[i] for i in gallery.labels.tolist())))
    new = [(p, c) for p, c in items if (p, c) not in enrolled]
    embeddings, kept, skipped = embed_files(model, data, [p for p, _ in new], skip_bad)
    for message in skipped:
        print(f"skipped: {message}")
    if new and not kept:
        raise ValueError(f"none of the {len(new)} images could be read; {gallery_path} is unchanged")
    class_of = dict(new)
    before = set(gallery.classes)
    if kept:
        gallery.add(embeddings, [class_of[p] for p in kept], kept)
    gallery.save(gallery_path)
    added = sorted(set(gallery.classes) - before)
    record = {
        "gallery": gallery_path,
        "added": len(kept),
        "already_enrolled": len(items) - len(new),
        "skipped": skipped,
        "new_classes": added,
        "classes": len(gallery.classes),
        "members": len(gallery),
    }
    print(
        f"Enrolled {len(kept)} images ({len(added)} new classes, {len(items) - len(new)} already enrolled, "
        f"{len(skipped)} skipped) into {gallery_path}: {len(gallery.classes)} classes, {len(gallery)} images"
    )
    return record


def run(args: argparse.Namespace) -> dict:
    return run_enroll(args.gallery, args.ckpt, args.folders, args.list_file, args.skip_bad_images)


TOOL = Tool(
    name="enroll",
    help="add labelled images to a gallery of embeddings (new classes without retraining)",
    description="Embed labelled images with a checkpoint and add them to GALLERY (created if absent; written "
    "atomically, so a failed enrollment leaves it as it was). In each folder named, every folder holding images is a "
    "class named by its path under it (images directly in the folder form a class named after it); --list adds "
    "'path,class' lines. Images already enrolled are skipped. File format: see lightning_siamese/inference/gallery.py.",
    add_arguments=add_arguments,
    run=run,
)
