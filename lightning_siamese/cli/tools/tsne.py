"""``lightning-siamese tsne``: t-SNE picture and TensorBoard projector of a checkpoint's embeddings.

The same pictures the ``projector`` callback draws at the end of a run, for any checkpoint
afterwards: ``tsne_<split>.png`` and TensorBoard event and projector files in the
checkpoint's run folder (or ``--logdir``), so ``tensorboard --logdir logs`` shows them beside
the run's curves.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from lightning_siamese.callbacks.figures import write_embedding_visuals
from lightning_siamese.cli.tool import Tool
from lightning_siamese.evaluation.projection import sample_classes
from lightning_siamese.inference.config import data_module_from_config, with_checkpoint_state
from lightning_siamese.inference.model import load_trained
from lightning_siamese.inference.runs import checkpoint_name, run_folder
from lightning_siamese.models.embedding import embed_all


def run_tsne(args: argparse.Namespace) -> Path:
    """Embed ``args.classes`` classes of the split, write the PNG, the TensorBoard figure and projector; return the PNG."""
    ckpt = Path(args.ckpt)
    model, saved = load_trained(str(ckpt))
    config = Path(args.config) if args.config else run_folder(ckpt) / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(
            f"no config {config} beside checkpoint {ckpt}: pass --config, the config it was trained with"
        )
    data = with_checkpoint_state(data_module_from_config(config, saved["image_size"])[0], saved)
    collection = sample_classes(data.split(args.split), args.classes, args.seed, args.groups)
    embeddings = embed_all(model, collection.images, prepare=data.prepare)
    logdir = Path(args.logdir) if args.logdir else run_folder(ckpt)
    png = Path(args.output) if args.output else logdir / f"tsne_{args.split}.png"
    with SummaryWriter(str(logdir)) as writer:
        write_embedding_visuals(writer, png, args.split, embeddings, collection, 0, args.seed, checkpoint_name(ckpt))
    print(
        f"t-SNE of {len(collection)} images of {collection.num_classes} {args.split} classes written to {png}; "
        f"TensorBoard figure and projector in {logdir} (tensorboard --logdir {logdir})"
    )
    return png


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    parser.add_argument("--config", help="its config (default: config.yaml of the checkpoint's run folder)")
    parser.add_argument(
        "--split", choices=("train", "val", "test"), default="val", help="which split's classes (default: val)"
    )
    parser.add_argument("--classes", type=int, default=20, help="how many classes to show (default: 20)")
    parser.add_argument(
        "--groups", nargs="+", help="draw the classes from these groups only (Omniglot: alphabet names)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the class draw and of t-SNE (default: 0)")
    parser.add_argument("--logdir", help="where the TensorBoard files go (default: the checkpoint's run folder)")
    parser.add_argument("--output", help="the PNG file (default: tsne_<split>.png in the log folder)")


TOOL = Tool(
    name="tsne",
    help="t-SNE picture and TensorBoard projector (with thumbnails) of a checkpoint's embeddings",
    description=(
        "Embed the images of --classes classes of a split (drawn with --seed) with a checkpoint; write a t-SNE "
        "scatter coloured by class (tsne_<split>.png), the same figure to TensorBoard, and the embeddings with class "
        "names and image thumbnails to TensorBoard's projector, in the checkpoint's run folder (or --logdir)."
    ),
    add_arguments=add_arguments,
    run=run_tsne,
)
