"""``enroll``, ``identify``, ``remove``: a gallery of embeddings that grows without retraining."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from lightning_siamese.inference.gallery import (
    Gallery,
    Match,
    embed_files,
    identify_threshold,
    open_for_model,
)
from lightning_siamese.inference.images import image_paths, labelled_images


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
    record = {"gallery": gallery_path, "added": len(kept), "already_enrolled": len(items) - len(new), "skipped": skipped,
              "new_classes": added, "classes": len(gallery.classes), "members": len(gallery)}
    print(f"Enrolled {len(kept)} images ({len(added)} new classes, {len(items) - len(new)} already enrolled, "
          f"{len(skipped)} skipped) into {gallery_path}: {len(gallery.classes)} classes, {len(gallery)} images")
    return record


def run_identify(
    gallery_path: str, ckpt: str, inputs: Sequence[str], threshold: float | None, scoring: str, chunk_size: int,
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
    print(f"{len(gallery.classes)} classes, {len(gallery)} images in {gallery_path}; {scoring} scoring; "
          f"threshold {threshold:.4f} from {source}")
    for m in matches:
        print(f"{m.query}: {m.label} (score {m.score:.4f}" + ("" if m.known else f", best class {m.best_class}") + ")")
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        record = {"gallery": gallery_path, "checkpoint": ckpt, "threshold": threshold, "threshold_from": source, "scoring": scoring,
                  "matches": [{"query": m.query, "class": m.label, "best_class": m.best_class, "score": m.score} for m in matches]}
        Path(output).write_text(json.dumps(record, indent=2) + "\n")
    return matches


def run_remove(gallery_path: str, names: Sequence[str]) -> int:
    """Drop classes from the gallery (no checkpoint needed)."""
    gallery = Gallery.load(gallery_path)
    removed = gallery.remove(names)
    gallery.save(gallery_path)
    print(f"Removed {len(set(names))} classes ({removed} images) from {gallery_path}: {len(gallery.classes)} classes left")
    return removed
