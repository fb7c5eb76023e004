"""``lightning-siamese view2``: LFW's View 2 protocol, a fit and a test per fold, then the mean accuracy and its standard error."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from lightning_siamese.cli.tool import Tool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="an LFW `lightning` config, e.g. experiments/lfw.yaml")
    parser.add_argument(
        "--folds", default="1,2,3,4,5,6,7,8,9,10", help="comma-separated folds to run (default: all 10)"
    )
    parser.add_argument("--save_dir", default="logs", help="where the runs go (default: logs)")
    parser.add_argument("--name", default="lfw_view2", help="experiment folder under save_dir (default: lfw_view2)")


def run(args: argparse.Namespace) -> dict:
    """LFW View 2: for each fold, ``lightning fit`` with ``view2_fold`` then ``lightning test`` of its best checkpoint.

    Each fold is its own run under ``<save_dir>/<name>/fold<k>`` (TensorBoard, checkpoints)
    and ``fold<k>_test``; a fold whose ``verification_test.json`` exists is not run again,
    so an interrupted protocol resumes. A fold that fails is recorded and the others go on.
    ``args.lightning_args`` (the arguments view2 does not know) go to both commands.
    """
    base = Path(args.save_dir) / args.name
    folds = [int(k) for k in args.folds.split(",")]
    records: list[dict[str, Any]] = []  # per fold: its report's numbers, or its error
    for fold in folds:
        test_dir = base / f"fold{fold}_test"
        report = test_dir / "verification_test.json"
        common = [
            "--config",
            args.config,
            "--data.view2_fold",
            str(fold),
            "--trainer.logger.init_args.save_dir",
            args.save_dir,
            "--trainer.logger.init_args.name",
            args.name,
            *args.lightning_args,
        ]
        if not report.exists():
            fit = [
                sys.executable,
                "-m",
                "lightning_siamese",
                "fit",
                *common,
                "--trainer.logger.init_args.version",
                f"fold{fold}",
            ]
            if subprocess.call(fit) != 0:
                records.append({"fold": fold, "error": f"fit failed: {' '.join(fit)}"})
                continue
            best = sorted(
                p for p in (base / f"fold{fold}" / "checkpoints").glob("*.ckpt") if not p.name.startswith("last")
            )
            ckpt = best[-1] if best else base / f"fold{fold}" / "checkpoints" / "last.ckpt"
            test = [
                sys.executable,
                "-m",
                "lightning_siamese",
                "test",
                *common,
                "--trainer.logger.init_args.version",
                f"fold{fold}_test",
                "--ckpt_path",
                str(ckpt),
            ]
            if subprocess.call(test) != 0 or not report.exists():
                records.append({"fold": fold, "error": f"test failed: {' '.join(test)}"})
                continue
        result = json.loads(report.read_text())
        records.append(
            {
                "fold": fold,
                "accuracy": result["accuracy"],
                "auc": result["auc"],
                "eer": result["eer"],
                "threshold": result["threshold"],
                "checkpoint": result["checkpoint"],
            }
        )
    done = [r["accuracy"] for r in records if "accuracy" in r]
    mean = sum(done) / len(done) if done else math.nan
    se = math.sqrt(sum((a - mean) ** 2 for a in done) / (len(done) - 1) / len(done)) if len(done) > 1 else math.nan
    summary = {"config": args.config, "folds": records, "accuracy": mean, "standard_error": se, "completed": len(done)}
    base.mkdir(parents=True, exist_ok=True)
    (base / "view2.json").write_text(json.dumps(summary, indent=2) + "\n")
    for r in records:
        print(
            f"  fold {r['fold']}: " + (f"{r['accuracy']:.2f}% (AUC {r['auc']:.4f})" if "accuracy" in r else r["error"])
        )
    print(
        f"LFW View 2, {len(done)} of {len(folds)} folds: accuracy {mean:.2f}% +- {se:.2f} (standard error); "
        f"written to {base / 'view2.json'}"
    )
    return summary


TOOL = Tool(
    name="view2",
    help="LFW View 2: train and test once per fold of pairs.txt, report mean accuracy +- standard error",
    description=(
        "LFW's official protocol: for each fold k, `lightning fit --config CONFIG --data.view2_fold k` "
        "(training on the other folds' pairs, validating on a share of them), then `lightning test` of "
        "that run's best checkpoint on fold k with the threshold chosen on validation. Arguments it does "
        "not know are passed to both commands (e.g. --trainer.max_epochs 5). Finished folds are skipped "
        "when run again."
    ),
    add_arguments=add_arguments,
    run=run,
    passes_unknown=True,
)
