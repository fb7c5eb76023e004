"""``lightning-siamese probe``: a softmax classifier on frozen embeddings, and the Gini out-of-distribution rule.

It fits a softmax classifier on frozen embeddings (the ekeany seed's classifier) and scores
it on held-out labelled images; with ``--ood`` images it applies the seed's
out-of-distribution rule, the Gini coefficient of the softmax output against a threshold
(:mod:`lightning_siamese.evaluation.probe`), and reports both rates, the ROC AUC and a ROC
figure.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lightning_siamese.callbacks.figures import plot_roc
from lightning_siamese.cli.tool import Tool
from lightning_siamese.evaluation.probe import GINI_THRESHOLD, fit_probe, gini_ood
from lightning_siamese.inference.config import data_module_from_config, with_checkpoint_state
from lightning_siamese.inference.files import write_json
from lightning_siamese.inference.images import image_paths, labelled_images
from lightning_siamese.inference.model import embed_paths, load_trained
from lightning_siamese.models.embedding import embed_all

if TYPE_CHECKING:
    from lightning_siamese.models import SiameseModule


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    parser.add_argument(
        "--config", help="the checkpoint's `lightning` config: its data module's splits are the probe's data"
    )
    parser.add_argument(
        "--train_split", default="train", choices=("train", "val", "test"), help="with --config (default train)"
    )
    parser.add_argument(
        "--eval_split", default="val", choices=("train", "val", "test"), help="with --config (default val)"
    )
    parser.add_argument("--train_images", type=int, help="with --config: a seeded subset of this many training images")
    parser.add_argument("--train", help="instead of --config: folder of class folders to fit the probe on")
    parser.add_argument("--eval", help="instead of --config: folder of class folders to score it on")
    parser.add_argument("--ood", nargs="+", help="out-of-distribution images (files or folders)")
    parser.add_argument(
        "--ood_invert",
        action="store_true",
        help="flip the --ood images' polarity (dark strokes on white -> bright on black)",
    )
    parser.add_argument(
        "--gini_threshold",
        type=float,
        default=GINI_THRESHOLD,
        help=f"in distribution at or above it (default {GINI_THRESHOLD}, the seed's)",
    )
    parser.add_argument("--roc", help="write the ROC of the Gini score to this PNG")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and the classifier (default 0)")
    parser.add_argument("--output", help="write the results as JSON")


def _labelled_embeddings(
    model: SiameseModule, data: dict, args: argparse.Namespace, which: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Embeddings and labels of the probe's training or evaluation images, from a config's split or a folder."""
    if args.config is not None:
        module = with_checkpoint_state(data_module_from_config(args.config)[0], data)
        if module.image_size != data["image_size"]:
            raise ValueError(
                f"--config {args.config} loads {module.image_size} px images, but {args.ckpt} was trained on "
                f"{data['image_size']} px: expected the config the checkpoint was trained with"
            )
        split = module.split(args.train_split if which == "train" else args.eval_split)
        images, labels = split.images, split.labels.numpy()
        if which == "train" and args.train_images is not None and args.train_images < len(images):
            keep = np.sort(np.random.default_rng(args.seed).permutation(len(images))[: args.train_images])
            images, labels = images[keep], labels[keep]
        return (
            embed_all(model, images, prepare=module.prepare).numpy(),
            labels,
            f"the {args.train_split if which == 'train' else args.eval_split} split of {args.config}",
        )
    folder = args.train if which == "train" else args.eval
    items = labelled_images([folder])
    return embed_paths(model, data, [p for p, _ in items]).numpy(), np.array([c for _, c in items]), folder


def run(args: argparse.Namespace) -> dict:
    """Softmax probe on frozen embeddings; accuracy on held-out images; the Gini rule against ``--ood`` images."""
    if (args.config is None) == (args.train is None or args.eval is None):
        raise ValueError(
            "probe needs --config (a data module's splits) or both --train and --eval (folders of class folders)"
        )
    model, data = load_trained(args.ckpt)
    train_x, train_y, train_from = _labelled_embeddings(model, data, args, "train")
    eval_x, eval_y, eval_from = _labelled_embeddings(model, data, args, "eval")
    probe = fit_probe(train_x, train_y, args.seed)
    accuracy = float((probe.predict(eval_x) == eval_y).mean())
    half_width = 1.96 * math.sqrt(accuracy * (1 - accuracy) / len(eval_y))
    print(
        f"Softmax probe on {len(train_y)} embeddings of {train_from}: accuracy {100 * accuracy:.2f}% "
        f"+- {100 * half_width:.2f} (95% CI) on {len(eval_y)} images of {eval_from}"
    )
    record: dict = {
        "checkpoint": args.ckpt,
        "train": train_from,
        "train_images": len(train_y),
        "eval": eval_from,
        "eval_images": len(eval_y),
        "accuracy": accuracy,
        "accuracy_ci95": half_width,
    }
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
            plot_roc(
                result, args.roc, f"Gini of the softmax probe's output\nin: {eval_from}\nout: {', '.join(args.ood)}"
            )
            print(f"  ROC written to {args.roc}")
    write_json(args.output, record)
    return record


TOOL = Tool(
    name="probe",
    help="softmax classifier on frozen embeddings; Gini out-of-distribution rule",
    description="Fit a softmax (multinomial logistic regression) classifier on a checkpoint's frozen embeddings and "
    "score it on held-out images; with --ood, the ekeany seed's rule: an image whose softmax output has a Gini "
    "coefficient below --gini_threshold is out of distribution. Reports both rates, the ROC AUC and a ROC figure.",
    add_arguments=add_arguments,
    run=run,
)
