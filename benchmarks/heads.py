"""Which head wins? Five losses, one encoder, one training-time budget, one set of episodes.

Each variant is trained by the real ``lightning fit`` (a subprocess) for the same wall-clock
budget (``trainer.max_time``), then scored by the end-of-run report on the same fixed
N-way 1-shot validation episodes. Prints a Markdown table and writes it to
``benchmarks/results/heads_<data>.md``.

    python benchmarks/heads.py --data omniglot --minutes 6
    python benchmarks/heads.py --data folder --root /path/to/classes --minutes 4
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

VARIANTS = {
    "BCE (Koch head)": ({"class_path": "lightning_siamese.models.KochHead", "init_args": {"init": "default"}}, "pairs"),
    "contrastive": (
        {"class_path": "lightning_siamese.models.ContrastiveHead", "init_args": {"margin": 1.0, "normalize": True}},
        "pairs",
    ),
    "triplet (offline)": (
        {"class_path": "lightning_siamese.models.TripletHead", "init_args": {"margin": 0.2, "normalize": True}},
        "triplets",
    ),
    "triplet (batch-hard)": (
        {
            "class_path": "lightning_siamese.models.TripletHead",
            "init_args": {"margin": 0.2, "normalize": True, "mining": "hard"},
        },
        "classes",
    ),
    "triplet (semi-hard)": (
        {
            "class_path": "lightning_siamese.models.TripletHead",
            "init_args": {"margin": 0.2, "normalize": True, "mining": "semihard"},
        },
        "classes",
    ),
}


def base_config(data: str, root: str | None) -> dict:
    config = yaml.safe_load((REPO / "experiments" / "omniglot_triplet.yaml").read_text())
    if data == "folder":
        config["data"] = {
            "class_path": "lightning_siamese.data.FolderDataModule",
            "init_args": {
                "root": root,
                "image_size": 52,
                "batch_size": 128,
                "images_per_class": 4,
                "pairs_per_epoch": 12800,
                "augment": {"class_path": "lightning_siamese.data.KochAffine"},
                "n_way": 10,
                "val_tasks": 400,
                "num_workers": 1,
            },
        }
    config["trainer"]["max_epochs"] = 1000
    config["early_stopping"] = {"patience": 1000}
    config["oneshot_report"] = {"split": "val", "tasks": 1000, "seed": 1234}
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["omniglot", "folder"], default="omniglot")
    parser.add_argument("--root", help="the folder-per-class tree (with --data folder)")
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per variant")
    parser.add_argument("--workdir", default="logs/bench_heads")
    options = parser.parse_args()
    workdir = Path(options.workdir) / options.data
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, (head, kind) in VARIANTS.items():
        config = copy.deepcopy(base_config(options.data, options.root))
        config["model"]["init_args"]["head"] = head
        config["data"]["init_args"]["batch_kind"] = kind
        if options.data == "omniglot":
            config["data"]["init_args"]["same_alphabet_prob"] = 0.8
        name = label.split(" ")[0].lower() + ("_" + kind)
        config["trainer"]["logger"]["init_args"] = {"save_dir": str(workdir), "name": name}
        budget = int(options.minutes * 60)
        config["trainer"]["max_time"] = f"00:00:{budget // 60:02d}:{budget % 60:02d}"
        path = workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "lightning_siamese", "fit", "--config", str(path)],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        runs = sorted((workdir / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
        report_path = runs[-1] / "oneshot_val.json" if runs else None
        if result.returncode != 0 or report_path is None or not report_path.exists():
            print(result.stderr[-3000:], file=sys.stderr)
            rows.append((label, kind, "failed", "", f"{wall:.0f}"))
            continue
        report = json.loads(report_path.read_text())
        steps = report["checkpoint"].split("step=")[1].split("-")[0] if "step=" in report["checkpoint"] else "?"
        rows.append((label, kind, f"{report['accuracy']:.2f} ± {report['ci95']:.2f}", steps, f"{wall:.0f}"))
        print(rows[-1], flush=True)
    n_way = config["data"]["init_args"].get("n_way", 20)
    lines = [
        f"| head | batches | {n_way}-way 1-shot val accuracy, % (1,000 tasks, seed 1234) | step of best checkpoint | wall time, s |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
    ]
    table = "\n".join(lines)
    print(table)
    out = REPO / "benchmarks" / "results" / f"heads_{options.data}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"Training budget {options.minutes} min per variant (trainer.max_time), same encoder, "
        f"data `{options.data}`{' from ' + Path(options.root).name if options.root else ''}.\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
