"""Online triplet mining at scale: time and peak memory of one loss forward + backward.

    python benchmarks/mining.py [--batches 256 512 1024] [--cap 10000] [--device cpu] [--out benchmarks/results/mining.md]

Each setting runs in a fresh Python process, so one setting's peak cannot hide another's.
Peak memory on the CPU is the growth of the process's peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) from just before the first loss call to the
end, which covers every temporary tensor torch allocates (tracemalloc cannot see them);
on a GPU it is ``torch.cuda.max_memory_allocated``. Time is the median of ``--repeats``
forward + backward passes after one warm-up, on one CPU thread.

The batch is P x K = (B / 4) classes x 4 images of random unit-length 128-d embeddings
(margin 0.2; about half the valid triplets are active, as early in training). "cube" is the
former batch-all implementation, one ``[B, B, B]`` tensor of terms, kept here only to show
what the restructure saves (it is skipped above ``--cube-max``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lightning_siamese.models.distances import pairwise_distances
from lightning_siamese.models.losses import MinedTripletLoss
from lightning_siamese.models.miners import TripletCap, label_masks, triplet_miner

MARGIN = 0.2
DIM = 128
PER_CLASS = 4


def cube_batch_all(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The batch-all loss as it was before: every [a, p, n] term at once."""
    d = pairwise_distances(embeddings)
    positive, negative = label_masks(labels)
    terms = F.relu(d[:, :, None] - d[:, None, :] + MARGIN)[positive[:, :, None] & negative[:, None, :]]
    return terms[terms > 1e-16].mean()


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def one(mining: str, size: int, cap: int | None, device: str, repeats: int) -> dict:
    """Measure one setting in this process."""
    torch.set_num_threads(1)
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(size // PER_CLASS).repeat_interleave(PER_CLASS).to(dev)
    base = F.normalize(torch.randn(size, DIM, generator=g), dim=-1).to(dev)
    if mining == "cube":
        loss_fn = cube_batch_all
    else:
        miner = triplet_miner(mining, MARGIN)
        loss_fn = MinedTripletLoss(MARGIN, miner if cap is None else TripletCap(miner, cap, seed=0))

    def step() -> float:
        embeddings = base.clone().requires_grad_()
        loss = loss_fn(embeddings, labels)
        loss.backward()
        return float(loss)

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev) / 2**20
    else:
        before = peak_mib(dev)
    value = step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - start)
    return {
        "mining": mining,
        "batch": size,
        "cap": cap,
        "seconds": statistics.median(times),
        "peak_mib": peak_mib(dev) - before,
        "loss": value,
        "active_fraction": getattr(loss_fn, "last_active_fraction", None),
    }


def run_isolated(mining: str, size: int, cap: int | None, device: str, repeats: int) -> dict:
    args = [
        sys.executable,
        __file__,
        "--one",
        mining,
        str(size),
        str(cap or 0),
        "--device",
        device,
        "--repeats",
        str(repeats),
    ]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict], device: str) -> str:
    lines = [
        f"| mining | batch | cap | time per forward+backward (s) | peak memory (MiB, {device}) | loss | active fraction |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        active = "" if r["active_fraction"] is None else f"{r['active_fraction']:.3f}"
        lines.append(
            f"| {r['mining']} | {r['batch']} | {r['cap'] or 'none'} | {r['seconds']:.3f} | {r['peak_mib']:.0f} | {r['loss']:.4f} | {active} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--cap", type=int, default=10000, help="max_triplets for the capped rows")
    parser.add_argument("--minings", nargs="+", default=["all", "semihard", "hard"])
    parser.add_argument("--cube-max", type=int, default=512, help="largest batch for the former B^3 batch-all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", nargs=3, metavar=("MINING", "BATCH", "CAP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        mining, size, cap = args.one[0], int(args.one[1]), int(args.one[2]) or None
        print(json.dumps(one(mining, size, cap, args.device, args.repeats)))
        return
    rows = []
    for size in args.batches:
        settings = [(m, cap) for m in args.minings for cap in (None, args.cap)]
        if size <= args.cube_max:
            settings.insert(0, ("cube", None))
        for mining, cap in settings:
            row = run_isolated(mining, size, cap, args.device, args.repeats)
            print(json.dumps(row), flush=True)
            rows.append(row)
    text = table(rows, args.device)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
