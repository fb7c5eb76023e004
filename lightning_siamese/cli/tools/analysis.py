"""``lightning-siamese retrieve`` and ``probe``: what a trained embedding is good for beyond N-way tasks.

``retrieve`` builds a gallery from a folder of known identities (one folder per identity,
nested names allowed: ``Angelic/character01``) and returns each query's k nearest gallery
images (scikit-learn ``NearestNeighbors``, Euclidean, as the ekeany seed's celebrity
retrieval); with labelled queries, or leave-one-out over the gallery, it scores
precision@k, R-precision and MAP@R (:mod:`lightning_siamese.evaluation.retrieval`).

``probe`` fits a softmax classifier on frozen embeddings (the ekeany seed's classifier)
and scores it on held-out labelled images; with ``--ood`` images it applies the seed's
out-of-distribution rule, the Gini coefficient of the softmax output against a threshold
(:mod:`lightning_siamese.evaluation.probe`), and reports both rates, the ROC AUC and a ROC
figure.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from lightning_siamese.callbacks.figures import plot_roc
from lightning_siamese.evaluation.probe import GINI_THRESHOLD, fit_probe, gini_ood
from lightning_siamese.evaluation.retrieval import Gallery, evaluate_retrieval
from lightning_siamese.inference.config import data_module_from_config
from lightning_siamese.inference.images import image_paths, labelled_images
from lightning_siamese.inference.model import embed_paths, load_trained
from lightning_siamese.models.embedding import embed_all


def _write_json(path: str | None, record: dict) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(record, indent=2) + "\n")
        print(f"  written to {path}")


def retrieval_embeddings(model, data: dict, paths: list[str]) -> np.ndarray:  # noqa: ANN001 - a SiameseModule
    """Embeddings in the space the model's head measures distances in (L2-normalised for a
    ``normalize`` distance head); a head without one (Koch's) gets the raw embeddings."""
    embeddings = embed_paths(model, data, paths)
    prepare = getattr(model.head, "prepare", None)
    return (embeddings if prepare is None else prepare(embeddings)).numpy()


def run_retrieve(args: argparse.Namespace) -> dict:
    """Gallery from ``args.gallery``; neighbours of the queries; metrics when the queries are labelled."""
    model, data = load_trained(args.ckpt)
    items = labelled_images([args.gallery])
    gallery = Gallery(retrieval_embeddings(model, data, [p for p, _ in items]), [c for _, c in items], [p for p, _ in items])
    ks = sorted(set(args.k))
    record: dict = {"checkpoint": args.ckpt, "gallery": args.gallery, "gallery_images": len(gallery),
                    "identities": len(set(gallery.labels))}
    if args.query is None:
        result = evaluate_retrieval(gallery, ks=ks)
        print(f"Leave-one-out retrieval over the gallery {args.gallery} ({len(gallery)} images, "
              f"{record['identities']} identities): {result}")
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
            {"query": p, "nearest": [{"path": gallery.paths[j], "identity": gallery.labels[j], "distance": float(d)}
                                     for j, d in zip(row, dist)]}
            for p, row, dist in zip(paths, index, distances)
        ]
        for entry in record["neighbours"][: args.show]:
            print(entry["query"])
            for rank, hit in enumerate(entry["nearest"], 1):
                print(f"  {rank}. {hit['identity']}  {hit['path']}  (distance {hit['distance']:.4f})")
        if labels is not None and set(labels) & set(gallery.labels):
            result = evaluate_retrieval(gallery, queries, labels, ks=ks)
            print(f"Queries {args.query} ({len(paths)} images) against the gallery {args.gallery} "
                  f"({len(gallery)} images): {result}")
            record |= {"protocol": "queries", "query": args.query, **result.as_dict()}
    _write_json(args.output, record)
    return record


def _labelled_embeddings(model, data: dict, args: argparse.Namespace, which: str):  # noqa: ANN001, ANN202
    """Embeddings and labels of the probe's training or evaluation images, from a config's split or a folder."""
    if args.config is not None:
        module, _ = data_module_from_config(args.config)
        if module.image_size != data["image_size"]:
            raise ValueError(f"--config {args.config} loads {module.image_size} px images, but {args.ckpt} was trained on "
                             f"{data['image_size']} px: expected the config the checkpoint was trained with")
        split = module.split(args.train_split if which == "train" else args.eval_split)
        images, labels = split.images, split.labels.numpy()
        if which == "train" and args.train_images is not None and args.train_images < len(images):
            keep = np.sort(np.random.default_rng(args.seed).permutation(len(images))[: args.train_images])
            images, labels = images[keep], labels[keep]
        return embed_all(model, images).numpy(), labels, f"the {args.train_split if which == 'train' else args.eval_split} split of {args.config}"
    folder = args.train if which == "train" else args.eval
    items = labelled_images([folder])
    return embed_paths(model, data, [p for p, _ in items]).numpy(), np.array([c for _, c in items]), folder


def run_probe(args: argparse.Namespace) -> dict:
    """Softmax probe on frozen embeddings; accuracy on held-out images; the Gini rule against ``--ood`` images."""
    if (args.config is None) == (args.train is None or args.eval is None):
        raise ValueError("probe needs --config (a data module's splits) or both --train and --eval (folders of class folders)")
    model, data = load_trained(args.ckpt)
    train_x, train_y, train_from = _labelled_embeddings(model, data, args, "train")
    eval_x, eval_y, eval_from = _labelled_embeddings(model, data, args, "eval")
    probe = fit_probe(train_x, train_y, args.seed)
    accuracy = float((probe.predict(eval_x) == eval_y).mean())
    half_width = 1.96 * math.sqrt(accuracy * (1 - accuracy) / len(eval_y))
    print(f"Softmax probe on {len(train_y)} embeddings of {train_from}: accuracy {100 * accuracy:.2f}% "
          f"+- {100 * half_width:.2f} (95% CI) on {len(eval_y)} images of {eval_from}")
    record: dict = {"checkpoint": args.ckpt, "train": train_from, "train_images": len(train_y), "eval": eval_from,
                    "eval_images": len(eval_y), "accuracy": accuracy, "accuracy_ci95": half_width}
    if args.ood:
        paths = image_paths(args.ood)
        # --ood_invert: images of the other polarity (e.g. Omniglot's dark strokes for an MNIST model)
        ood_data = {**data, "invert": not data.get("invert", False)} if args.ood_invert else data
        out = embed_paths(model, ood_data, paths)
        result = gini_ood(probe.predict_proba(eval_x), probe.predict_proba(out.numpy()), args.gini_threshold)
        print(f"Out-of-distribution ({len(paths)} images from {', '.join(args.ood)}): {result}")
        record |= {"ood": args.ood, "ood_invert": args.ood_invert, **result.as_dict()}
        if args.roc is not None:
            Path(args.roc).parent.mkdir(parents=True, exist_ok=True)
            plot_roc(result, args.roc, f"Gini of the softmax probe's output\nin: {eval_from}\nout: {', '.join(args.ood)}")
            print(f"  ROC written to {args.roc}")
    _write_json(args.output, record)
    return record


def add_parsers(commands) -> None:  # noqa: ANN001 - argparse's subparsers action
    retrieve = commands.add_parser(
        "retrieve", help="k nearest gallery images for queries; precision@k and MAP@R",
        description="Embed a gallery of known identities (GALLERY/<identity>/<image>, identities may nest) with a "
        "checkpoint and return each query's k nearest gallery images (Euclidean). Queries in identity folders "
        "are scored (precision@k, R-precision, MAP@R as in Musgrave et al. 2020); without --query every gallery "
        "image queries the others (leave-one-out).")
    retrieve.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    retrieve.add_argument("--gallery", required=True, help="folder of identity folders")
    retrieve.add_argument("--query", help="an image, or a folder (of identity folders, to score the retrieval)")
    retrieve.add_argument("-k", type=int, nargs="+", default=[1, 5], help="neighbours returned and precision@k reported (default: 1 5)")
    retrieve.add_argument("--show", type=int, default=10, help="queries whose neighbours are printed (default 10; all go to --output)")
    retrieve.add_argument("--output", help="write metrics and every query's neighbours as JSON")
    probe = commands.add_parser(
        "probe", help="softmax classifier on frozen embeddings; Gini out-of-distribution rule",
        description="Fit a softmax (multinomial logistic regression) classifier on a checkpoint's frozen embeddings and "
        "score it on held-out images; with --ood, the ekeany seed's rule: an image whose softmax output has a Gini "
        "coefficient below --gini_threshold is out of distribution. Reports both rates, the ROC AUC and a ROC figure.")
    probe.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    probe.add_argument("--config", help="the checkpoint's `lightning` config: its data module's splits are the probe's data")
    probe.add_argument("--train_split", default="train", choices=("train", "val", "test"), help="with --config (default train)")
    probe.add_argument("--eval_split", default="val", choices=("train", "val", "test"), help="with --config (default val)")
    probe.add_argument("--train_images", type=int, help="with --config: a seeded subset of this many training images")
    probe.add_argument("--train", help="instead of --config: folder of class folders to fit the probe on")
    probe.add_argument("--eval", help="instead of --config: folder of class folders to score it on")
    probe.add_argument("--ood", nargs="+", help="out-of-distribution images (files or folders)")
    probe.add_argument("--ood_invert", action="store_true", help="flip the --ood images' polarity (dark strokes on white -> bright on black)")
    probe.add_argument("--gini_threshold", type=float, default=GINI_THRESHOLD, help=f"in distribution at or above it (default {GINI_THRESHOLD}, the seed's)")
    probe.add_argument("--roc", help="write the ROC of the Gini score to this PNG")
    probe.add_argument("--seed", type=int, default=0, help="seed of the subset and the classifier (default 0)")
    probe.add_argument("--output", help="write the results as JSON")
