"""Score a signature checkpoint on unseen writers, with 95% confidence intervals.

The same numbers as ``lightning test --data.test_root`` (the global threshold and the
per-writer k, both from validation, stored in the checkpoint), plus percentile bootstrap
intervals that resample whole writers (pairs of one writer are not independent)::

    python benchmarks/signatures.py --ckpt logs/signatures_cpu/version_0/checkpoints/last.ckpt \
        --test_root /tmp/sigdata/test --output benchmarks/results/signatures_test.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lightning_siamese.data.datamodules.signatures import SignatureDataModule
from lightning_siamese.evaluation.verification import verification_metrics
from lightning_siamese.evaluation.writers import (
    error_rates,
    reference_normalized_scores,
)
from lightning_siamese.inference.model import load_trained


def scores_on(ckpt: str, test_root: str) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, object]:
    """The checkpoint's model, and the test pairs' raw and reference-normalised scores, labels and writers."""
    model, data = load_trained(ckpt)
    settings = {k: v for k, v in data.items() if not k.startswith("_") and k not in ("pixel_std", "kind")}
    module = SignatureDataModule(**{**settings, "test_root": test_root})
    module.load_state_dict({"pixel_std": data["pixel_std"]})
    module.setup("test")
    test = module.test_dataloader().dataset
    with torch.no_grad():
        table = torch.cat(
            [
                model.embed(torch.stack([test[i][0] for i in range(s, min(s + 64, len(test)))]))
                for s in range(0, len(test), 64)
            ]
        )
        first, second, same, writer = (test.pairs[k] for k in ("first", "second", "same", "writer"))
        scores = model.head.similarity(table[first], table[second])
        normalized = reference_normalized_scores(scores, writer, table, test.references, model.head.similarity)
    return model, scores, normalized, same, writer, test


def metrics(scores: torch.Tensor, normalized: torch.Tensor, same: torch.Tensor, threshold: float, k: float) -> dict:
    glob = verification_metrics(scores, same, threshold)
    per_writer = verification_metrics(normalized, same, -k)
    far, frr = error_rates(scores, same, threshold)
    writer_far, writer_frr = error_rates(normalized, same, -k)
    return {
        "accuracy": glob.accuracy,
        "far": far,
        "frr": frr,
        "auc": glob.auc,
        "eer": glob.eer,
        "writer_accuracy": per_writer.accuracy,
        "writer_far": writer_far,
        "writer_frr": writer_frr,
        "writer_auc": per_writer.auc,
        "writer_eer": per_writer.eer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--test_root", required=True, help="folder of writers never trained or validated on")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write the record as JSON here")
    args = parser.parse_args()
    start = time.time()
    model, scores, normalized, same, writer, _ = scores_on(args.ckpt, args.test_root)
    threshold, k = model.verification_threshold, model.writer_threshold_k
    point = metrics(scores, normalized, same, threshold, k)
    rng = np.random.default_rng(args.seed)
    writers = torch.unique(writer)
    draws = {name: [] for name in point}
    for _ in range(args.resamples):
        chosen = writers[torch.from_numpy(rng.integers(len(writers), size=len(writers)))]
        rows = torch.cat([torch.nonzero(writer == w).flatten() for w in chosen])
        for name, value in metrics(scores[rows], normalized[rows], same[rows], threshold, k).items():
            draws[name].append(value)
    record = {
        "checkpoint": args.ckpt,
        "test_root": args.test_root,
        "writers": len(writers),
        "pairs": len(same),
        "threshold": threshold,
        "writer_k": k,
        **{
            name: {
                "value": value,
                "ci95": [float(np.percentile(draws[name], 2.5)), float(np.percentile(draws[name], 97.5))],
            }
            for name, value in point.items()
        },
        "bootstrap": f"{args.resamples} resamples of the writers, seed {args.seed}",
    }
    for name in point:
        low, high = record[name]["ci95"]
        print(f"{name:16s} {point[name]:8.3f}   95% CI [{low:.3f}, {high:.3f}]")
    print(f"{len(writers)} writers, {len(same)} pairs ({time.time() - start:.0f} s)")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
