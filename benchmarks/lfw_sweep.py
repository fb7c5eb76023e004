"""Sweep choices for experiments/lfw_best.yaml: each variant is the config plus CLI overrides.

Runs ``lightning fit`` for each variant (several at once), then reads each run's
TensorBoard events: the best validation AUC and the accuracy (tuned threshold) and EER of
that epoch. Writes ``lfw_sweep.json`` and a Markdown table to ``--out``.

    python benchmarks/lfw_sweep.py --root data/lfw --out sweep --parallel 4 [--only a,b]

The sweep that chose lfw_best.yaml ran on a GPU machine over a re-encoded copy of the
training people's images (centre crop 150 px, resized to 112 px, JPEG): ``--precropped``
then turns the config's crop off.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    "cosface_conv4_64px": [],
    "cosface_wide_64px": [
        "--model.encoder.init_args.channels",
        "[64, 128, 256, 512]",
        "--model.encoder.init_args.embedding_dim",
        "256",
    ],
    "cosface_conv5_96px": [
        "--data.image_size",
        "96",
        "--model.encoder.init_args.input_size",
        "96",
        "--model.encoder.init_args.channels",
        "[32, 64, 128, 256, 256]",
    ],
    "cosface_wide_96px": [
        "--data.image_size",
        "96",
        "--model.encoder.init_args.input_size",
        "96",
        "--model.encoder.init_args.channels",
        "[64, 128, 256, 512, 512]",
        "--model.encoder.init_args.embedding_dim",
        "256",
    ],
    "cosface_k2": ["--data.images_per_class", "2"],
    "cosface_m0.2_s16": ["--model.head.init_args.margin", "0.2", "--model.head.init_args.scale", "16"],
    "cosface_no_augment": ["--data.augment", "null"],
    "triplet_hard_k2": [
        "--model.head",
        "lightning_siamese.models.TripletHead",
        "--model.head.init_args.normalize",
        "true",
        "--model.head.init_args.margin",
        "0.2",
        "--data.images_per_class",
        "2",
    ],
    "contrastive_k2": [
        "--model.head",
        "lightning_siamese.models.ContrastiveHead",
        "--model.head.init_args.normalize",
        "true",
        "--model.head.init_args.margin",
        "0.5",
        "--data.images_per_class",
        "2",
    ],
}


def best_epoch(run: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    scalars = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    if "val/auc" not in scalars:
        return {"error": f"no val/auc in {run}"}
    step = max(scalars["val/auc"], key=scalars["val/auc"].get)
    pick = {k.split("/", 1)[1]: v[step] for k, v in scalars.items() if k.startswith("val/") and step in v}
    epochs = scalars.get("epoch", {})
    return {"step": step, "epoch": epochs.get(step), "validations": len(scalars["val/auc"]), **pick}


def run_variant(name: str, overrides: list[str], args: argparse.Namespace) -> dict:
    out = Path(args.out)
    command = [
        sys.executable,
        "-m",
        "lightning_siamese",
        "fit",
        "--config",
        args.config,
        "--data.root",
        args.root,
        "--data.test_pairs",
        "null",
        "--data.num_workers",
        str(args.workers),
        "--trainer.max_epochs",
        str(args.epochs),
        "--model.lr_scheduler.init_args.T_max",
        str(args.epochs),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(out / "logs"),
        "--trainer.logger.init_args.name",
        name,
        *(["--data.crop", "null"] if args.precropped else []),
        *(["--trainer.max_time", args.max_time] if args.max_time else []),
        *overrides,
    ]
    start = time.time()
    with open(out / f"{name}.log", "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    record = {"variant": name, "overrides": overrides, "exit": code, "seconds": round(time.time() - start)}
    runs = sorted((out / "logs" / name).glob("version_*"))
    if runs:
        record |= best_epoch(runs[-1])
    print(json.dumps(record), flush=True)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/lfw_best.yaml")
    parser.add_argument("--root", default="data/lfw")
    parser.add_argument("--out", default="lfw_sweep")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated variant names")
    parser.add_argument("--precropped", action="store_true")
    parser.add_argument("--max_time", default="", help="cap per run, DD:HH:MM:SS")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    chosen = [v for v in VARIANTS if not args.only or v in args.only.split(",")]
    with ThreadPoolExecutor(args.parallel) as pool:
        records = list(pool.map(lambda v: run_variant(v, VARIANTS[v], args), chosen))
    Path(args.out, "lfw_sweep.json").write_text(json.dumps(records, indent=2) + "\n")
    lines = [
        "| variant | val AUC | val acc (tuned) | EER | best epoch | time (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        lines.append(
            f"| {r['variant']} | {r.get('auc', float('nan')):.4f} | {r.get('acc', float('nan')):.2f} | "
            f"{r.get('eer', float('nan')):.2f} | {r.get('epoch')} | {r['seconds']} |"
        )
    Path(args.out, "lfw_sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
