"""The DarkShotLearning networks, reproduced: one command, one table at N-way one-shot.

The seed's three Siamese variants (|e1 - e2| + sigmoid with BCE, Euclidean + contrastive,
triplet) and its categorical CNN baseline are trained by the real ``lightning fit``
(experiments/darkshot.yaml and its overlays), one after the other, on a nested
folder-per-class tree at the chosen ``class_depth``; then every checkpoint and the seed's
kNN (raw pixels) and random baselines are scored by ``lightning-siamese compare`` on the
same fixed test-split episodes, 10-way and 8-way one-shot, and one Markdown table is
printed and written to ``benchmarks/results/darkshot.md``.

No dark-web images exist here, so the tree is assembled from Omniglot's background set as
``<alphabet>/<character>/<image>.png`` (class_depth 1 = alphabet, 2 = character):

    python benchmarks/darkshot.py --omniglot ../shared/data/omniglot/images_background.zip --class_depth 2
    python benchmarks/darkshot.py --root /path/to/nested/tree --class_depth 1 --epochs 20
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import yaml

from lightning_siamese.cli.main import main as lightning_siamese
from lightning_siamese.data.datamodules.folder import FolderDataModule

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
# Row name -> overlay on experiments/darkshot.yaml (None: the base config itself).
VARIANTS = {
    "Siamese abs(e1-e2) + sigmoid, BCE": None,
    "Siamese Euclidean, contrastive": "darkshot_contrastive.yaml",
    "triplet, squared Euclidean": "darkshot_triplet.yaml",
    "categorical CNN (penultimate layer)": "darkshot_cnn.yaml",
}


def build_omniglot_tree(archive: Path, out: Path, alphabets: int | None = None) -> Path:
    """Extract an Omniglot set zip to ``out/<alphabet>/<character>/<image>.png`` (a two-level tree).

    ``alphabets`` keeps the first that many alphabets by name. An existing ``out`` is reused.
    """
    if out.is_dir() and any(out.iterdir()):
        return out
    with zipfile.ZipFile(archive) as source:
        members = [m for m in source.namelist() if m.endswith(".png")]
        names = sorted({Path(m).parts[-3] for m in members})
        keep = set(names[:alphabets] if alphabets else names)
        if not members or len(Path(members[0]).parts) < 3:
            raise ValueError(f"{archive} holds no <alphabet>/<character>/<image>.png members")
        for member in members:
            alphabet, character, image = Path(member).parts[-3:]
            if alphabet in keep:
                target = out / alphabet / character / image
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(source.read(member))
    return out


def lightning_fit(configs: list[Path], overrides: list[str], log_dir: Path, name: str) -> tuple[Path, Path, float]:
    """Run ``lightning fit`` and return the run's best checkpoint, its saved config and the wall time."""
    command = [sys.executable, "-m", "lightning_siamese", "fit"]
    for config in configs:
        command += ["--config", str(config)]
    command += [
        *overrides,
        "--trainer.logger.init_args.save_dir",
        str(log_dir),
        "--trainer.logger.init_args.name",
        name,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    run = max((log_dir / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    best = [p for p in (run / "checkpoints").glob("*.ckpt") if p.name != "last.ckpt"]
    if not best:
        raise RuntimeError(f"lightning fit left no best checkpoint in {run / 'checkpoints'}")
    return max(best, key=lambda p: p.stat().st_mtime), run / "config.yaml", seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="a nested folder-per-class tree")
    source.add_argument("--omniglot", help="an Omniglot set zip to assemble the tree from (into --tree)")
    parser.add_argument(
        "--tree", default="data/darkshot_omniglot", help="where --omniglot's tree is built (reused if there)"
    )
    parser.add_argument("--alphabets", type=int, help="with --omniglot: keep the first N alphabets only")
    parser.add_argument("--class_depth", default="2", help="1, 2, ... or leaf (default 2)")
    parser.add_argument("--n_way", type=int, nargs="+", default=[10, 8])
    parser.add_argument("--tasks", type=int, default=1000, help="test episodes per task")
    # CPU-sized training (2 shared cores): a few hundred steps per network, capped by --minutes.
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--pairs_per_epoch", type=int, default=3200, help="training examples per epoch")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=7.0, help="wall-clock cap on each network's training")
    parser.add_argument("--variants", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--fit_args",
        nargs=argparse.REMAINDER,
        default=[],
        help="further `lightning fit` options for every run (must come last)",
    )
    parser.add_argument("--log_dir", default="logs/darkshot")
    parser.add_argument("--output", default="benchmarks/results/darkshot.md")
    options = parser.parse_args(argv)
    depth = options.class_depth if options.class_depth == "leaf" else int(options.class_depth)
    root = (
        Path(options.root)
        if options.root
        else build_omniglot_tree(Path(options.omniglot), Path(options.tree), options.alphabets)
    )

    # The data summary first: class counts at every depth, the split (fails early when too deep).
    data = split_preview(root, depth)
    train_classes = data.split("train").num_classes

    log_dir = Path(options.log_dir)
    overrides = [
        "--data.init_args.root",
        str(root),
        "--data.init_args.class_depth",
        str(depth),
        "--trainer.max_epochs",
        str(options.epochs),
        "--data.init_args.pairs_per_epoch",
        str(options.pairs_per_epoch),
        "--data.init_args.batch_size",
        str(options.batch_size),
        "--trainer.max_time",
        f"00:00:{int(options.minutes * 60) // 60:02d}:{int(options.minutes * 60) % 60:02d}",
        "--oneshot_report.tasks",
        str(options.tasks),
        *options.fit_args,
    ]
    checkpoints, times, config = [], {}, None
    for label in options.variants:
        overlay = VARIANTS[label]
        configs = [EXPERIMENTS / "darkshot.yaml"] + ([EXPERIMENTS / overlay] if overlay else [])
        extra = (
            ["--model.init_args.head.init_args.num_classes", str(train_classes)]
            if overlay == "darkshot_cnn.yaml"
            else []
        )
        name = Path(overlay or "darkshot_siamese").stem
        best, saved, seconds = lightning_fit(configs, overrides + extra, log_dir, name)
        checkpoints.append(f"{label}={best}")
        times[label] = seconds
        config = config or saved
        print(f"{label}: {seconds / 60:.1f} min, best checkpoint {best}")

    # Every checkpoint and baseline on the same test episodes (the first run's saved config fixes them).
    lightning_siamese(
        [
            "compare",
            "--config",
            str(config),
            "--split",
            "test",
            "--tasks",
            str(options.tasks),
            "--seed",
            "1234",
            "--n_way",
            *map(str, options.n_way),
            "--k_shot",
            "1",
            "--baselines",
            "knn",
            "chance",
            "--ckpt",
            *checkpoints,
            "--output",
            options.output,
        ]
    )
    output = Path(options.output)
    timing = "\n".join(f"- {label}: {seconds / 60:.1f} min" for label, seconds in times.items())
    command = " ".join(sys.argv[1:] if argv is None else argv)
    output.write_text(
        output.read_text()
        + f"\nData:\n\n```\n{data.summary}\n```\n\nTraining (at most {options.epochs} epochs of {options.pairs_per_epoch} "
        + f"examples in batches of {options.batch_size}, at most {options.minutes:g} min each), wall time of each "
        + f"`lightning fit` on this machine:\n\n{timing}\n\nCommand: `python benchmarks/darkshot.py {command}`\n"
    )
    print(output.read_text())


def split_preview(root: Path, depth: int | str) -> FolderDataModule:
    """experiments/darkshot.yaml's data module on ``root`` at ``depth``, set up: it prints the data summary
    (class counts at every depth, the split) and gives the training class count the CNN's softmax needs."""
    settings = yaml.safe_load((EXPERIMENTS / "darkshot.yaml").read_text())["data"]["init_args"]
    keep = ("image_size", "channels", "min_images", "small_classes", "val_fraction", "test_fraction")
    data = FolderDataModule(str(root), class_depth=depth, **{k: settings[k] for k in keep})
    data.setup("predict")
    return data


if __name__ == "__main__":
    main()
