"""The ekeany seed's margin sweep (its Figure 1): one triplet network per margin, one t-SNE panel each.

    python benchmarks/mnist_triplet.py --files ../shared/data/mnist --max_epochs 2 --pairs_per_epoch 3000

For each margin (default 0.0, 0.1, ..., 0.9) it runs ``lightning fit`` on
experiments/mnist_triplet.yaml with that margin (runs under logs/mnist_margin_sweep/margin_M;
a margin whose run finished is not trained again), embeds the same seeded subset of MNIST
test digits with the run's last checkpoint, and draws the t-SNE of those embeddings (scikit-
learn, seeded) coloured by digit, all panels in one PNG, each titled with the run's 10-way
1-shot validation accuracy. A summary table (margin, accuracy, seconds) goes to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightning_siamese.data.transforms.views import to_float  # noqa: E402 - after sys.path gets the repository
from lightning_siamese.inference.config import data_module_from_config  # noqa: E402 - as above
from lightning_siamese.inference.model import load_trained  # noqa: E402 - as above


def train(margin: float, args: argparse.Namespace) -> tuple[Path, float]:
    """``lightning fit`` at this margin (skipped when its run finished); the run folder and its seconds."""
    run = REPO / args.save_dir / args.name / f"margin_{margin:.1f}"
    record = run / "sweep_run.json"
    if record.exists():
        return run, json.loads(record.read_text())["seconds"]
    command = [
        sys.executable,
        "-m",
        "lightning_siamese",
        "fit",
        "--config",
        args.config,
        "--model.init_args.head.init_args.margin",
        str(margin),
        "--trainer.max_epochs",
        str(args.max_epochs),
        "--data.init_args.pairs_per_epoch",
        str(args.pairs_per_epoch),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger.init_args.save_dir",
        args.save_dir,
        "--trainer.logger.init_args.name",
        args.name,
        "--trainer.logger.init_args.version",
        run.name,
    ]
    if args.files is not None:
        command += ["--data.init_args.files", args.files]
    start = time.time()
    subprocess.run(command, check=True, cwd=REPO)
    seconds = time.time() - start
    record.write_text(json.dumps({"margin": margin, "seconds": seconds}) + "\n")
    return run, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/mnist_triplet.yaml")
    parser.add_argument("--files", help="folder with the four MNIST .gz files (passed to the data module)")
    parser.add_argument("--margins", type=float, nargs="+", default=[round(0.1 * i, 1) for i in range(10)])
    parser.add_argument("--max_epochs", type=int, default=2, help="epochs per margin (the config: 20)")
    parser.add_argument("--pairs_per_epoch", type=int, default=3000, help="triplets per epoch (the config: 2000)")
    parser.add_argument("--points", type=int, default=1000, help="MNIST test digits in each t-SNE panel")
    parser.add_argument("--save_dir", default="logs")
    parser.add_argument("--name", default="mnist_margin_sweep")
    parser.add_argument("--figure", default="benchmarks/results/mnist_margin_sweep.png")
    parser.add_argument("--summary", default="benchmarks/results/mnist_margin_sweep.json")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    data, _ = data_module_from_config(REPO / args.config)
    if args.files is not None:
        data.files = args.files
    test = data.split("test")
    subset = np.sort(np.random.default_rng(0).permutation(len(test))[: args.points])
    images, labels = to_float(test.images[subset]), test.labels[subset].numpy()

    columns = 5
    rows = -(-len(args.margins) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    summary = []
    for axis, margin in zip(axes.flat, args.margins):
        run, seconds = train(margin, args)
        report = json.loads((run / "oneshot_val.json").read_text())  # the end-of-run report, on the best checkpoint
        model, _ = load_trained(str(REPO / report["checkpoint"]))
        with torch.no_grad():
            embeddings = model.embed(images).numpy()
        accuracy = report["accuracy"]
        points = TSNE(n_components=2, init="pca", random_state=0, perplexity=30).fit_transform(embeddings)
        axis.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
        axis.set_title(f"margin {margin:.1f}: 10-way 1-shot {accuracy:.1f}%", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
        summary.append(
            {"margin": margin, "val_10way_1shot": accuracy, "seconds": seconds, "run": str(run.relative_to(REPO))}
        )
        print(f"margin {margin:.1f}: 10-way 1-shot val {accuracy:.1f}% ({seconds:.0f} s)", flush=True)
    for axis in list(axes.flat)[len(args.margins) :]:
        axis.axis("off")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=plt.cm.tab10(d), label=str(d)) for d in range(10)]
    figure.legend(handles=handles, loc="lower center", ncol=10, title="digit", fontsize=8)
    figure.suptitle(
        f"t-SNE of {args.points} MNIST test embeddings per triplet margin "
        f"({args.max_epochs} epochs x {args.pairs_per_epoch} triplets each)"
    )
    figure.tight_layout(rect=(0, 0.07, 1, 0.96))
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.figure, dpi=110)
    Path(args.summary).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"figure {args.figure}, summary {args.summary}")


if __name__ == "__main__":
    main()
