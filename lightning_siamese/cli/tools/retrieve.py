"""``lightning-siamese retrieve``: each query's k nearest images in a gallery of known identities.

It builds a gallery from a folder of known identities (one folder per identity, nested
names allowed: ``Angelic/character01``) and returns each query's k nearest gallery images
(scikit-learn ``NearestNeighbors``, Euclidean, as the ekeany seed's celebrity retrieval);
with labelled queries, or leave-one-out over the gallery, it scores precision@k,
R-precision and MAP@R (:mod:`lightning_siamese.evaluation.retrieval`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lightning_siamese.cli.tool import Tool
from lightning_siamese.evaluation.retrieval import NeighbourIndex, evaluate_retrieval
from lightning_siamese.inference.files import write_json
from lightning_siamese.inference.images import image_paths, labelled_images
from lightning_siamese.inference.model import embed_paths, load_trained

if TYPE_CHECKING:
    from lightning_siamese.models import SiameseModule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    parser.add_argument("--gallery", required=True, help="folder of identity folders")
    parser.add_argument("--query", help="an image, or a folder (of identity folders, to score the retrieval)")
    parser.add_argument(
        "-k", type=int, nargs="+", default=[1, 5], help="neighbours returned and precision@k reported (default: 1 5)"
    )
    parser.add_argument(
        "--show", type=int, default=10, help="queries whose neighbours are printed (default 10; all go to --output)"
    )
    parser.add_argument("--output", help="write metrics and every query's neighbours as JSON")


def retrieval_embeddings(model: SiameseModule, data: dict, paths: list[str]) -> np.ndarray:
    """Embeddings in the space the model's head measures distances in (L2-normalised for a
    ``normalize`` distance head); a head without one (Koch's) gets the raw embeddings."""
    embeddings = embed_paths(model, data, paths)
    prepare = getattr(model.head, "prepare", None)
    return (embeddings if prepare is None else prepare(embeddings)).numpy()


def run(args: argparse.Namespace) -> dict:
    """Gallery from ``args.gallery``; neighbours of the queries; metrics when the queries are labelled."""
    model, data = load_trained(args.ckpt)
    items = labelled_images([args.gallery])
    gallery = NeighbourIndex(
        retrieval_embeddings(model, data, [p for p, _ in items]), [c for _, c in items], [p for p, _ in items]
    )
    ks = sorted(set(args.k))
    record: dict = {
        "checkpoint": args.ckpt,
        "gallery": args.gallery,
        "gallery_images": len(gallery),
        "identities": len(set(gallery.labels)),
    }
    if args.query is None:
        result = evaluate_retrieval(gallery, ks=ks)
        print(
            f"Leave-one-out retrieval over the gallery {args.gallery} ({len(gallery)} images, "
            f"{record['identities']} identities): {result}"
        )
        record |= {"protocol": "leave-one-out", **result.as_dict()}
    else:
        if Path(args.query).is_dir():
            labelled = labelled_images([args.query])
            paths, labels = [p for p, _ in labelled], [c for _, c in labelled]
        else:
            paths, labels = image_paths([args.query]), None
        queries = retrieval_embeddings(model, data, paths)
        distances, index = gallery.nearest(queries, max(ks))
        record["neighbours"] = [
            {
                "query": p,
                "nearest": [
                    {"path": gallery.paths[j], "identity": gallery.labels[j], "distance": float(d)}
                    for j, d in zip(row, dist)
                ],
            }
            for p, row, dist in zip(paths, index, distances)
        ]
        for entry in record["neighbours"][: args.show]:
            print(entry["query"])
            for rank, hit in enumerate(entry["nearest"], 1):
                print(f"  {rank}. {hit['identity']}  {hit['path']}  (distance {hit['distance']:.4f})")
        if labels is not None and set(labels) & set(gallery.labels):
            result = evaluate_retrieval(gallery, queries, labels, ks=ks)
            print(
                f"Queries {args.query} ({len(paths)} images) against the gallery {args.gallery} "
                f"({len(gallery)} images): {result}"
            )
            record |= {"protocol": "queries", "query": args.query, **result.as_dict()}
    write_json(args.output, record)
    return record


TOOL = Tool(
    name="retrieve",
    help="k nearest gallery images for queries; precision@k and MAP@R",
    description="Embed a gallery of known identities (GALLERY/<identity>/<image>, identities may nest) with a "
    "checkpoint and return each query's k nearest gallery images (Euclidean). Queries in identity folders "
    "are scored (precision@k, R-precision, MAP@R as in Musgrave et al. 2020); without --query every gallery "
    "image queries the others (leave-one-out).",
    add_arguments=add_arguments,
    run=run,
)
