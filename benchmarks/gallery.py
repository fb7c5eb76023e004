"""Gallery search at scale: queries per second and peak extra memory at 1k, 10k and 100k embeddings.

    python benchmarks/gallery.py [--sizes 1000 10000 100000] [--queries 64] [--out benchmarks/results/gallery.md]

Synthetic embeddings (128-d, standard normal: the width of experiments/omniglot_cpu.yaml), searched
with ``lightning_siamese.gallery.chunked_search`` and a head's own ``pairwise_similarity``, as
``lightning-siamese identify --scoring nearest`` searches every member (prototype scoring searches
one row per class, so fewer). Two heads: the triplet head with normalised embeddings (negative
Euclidean distance from a matrix product; the omniglot_cpu checkpoint's) and Koch's weighted L1 +
sigmoid (broadcast differences).

Speed is queries per second of this process's CPU time (on one thread by default), not of the wall
clock, so that other work on a shared machine does not count against it.

Memory is the process's resident set, not ``tracemalloc`` (which does not see PyTorch's tensor
allocations): the peak (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the
search) minus the resident size just before it, so it is the search's own extra memory; the
gallery itself (N x 128 float32) is listed apart. glibc's malloc is set to return freed large
blocks to the system at once, so that one measurement does not inherit another's freed memory. "all at once" scores every query against every
embedding in one tensor; it is run only where it fits in memory.
"""

from __future__ import annotations

import argparse
import ctypes
import re
import statistics
import time
from pathlib import Path

import torch

from lightning_siamese.inference.gallery import chunked_search
from lightning_siamese.models.heads import KochHead, PairHead, TripletHead

DIM = 128


def fixed_mmap_threshold() -> None:
    """Make glibc return every large freed block to the system at once (a fixed ``M_MMAP_THRESHOLD``).

    Otherwise glibc raises the threshold after the first large free and keeps later blocks of
    that size resident, so each measurement would depend on the ones before it.
    """
    ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # -3: M_MMAP_THRESHOLD


def _status(field: str) -> float:
    """A ``/proc/self/status`` memory field, in MB."""
    return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024


def measure(
    pairwise, queries: torch.Tensor, keys: torch.Tensor, chunk_size: int, query_block: int, repeats: int
) -> dict:
    chunked_search(queries[:2], keys[:chunk_size], pairwise, chunk_size, query_block)  # warm-up
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident size to the current one
    before = _status("VmRSS")
    seconds = []
    for _ in range(repeats):
        start = time.process_time()
        chunked_search(queries, keys, pairwise, chunk_size, query_block)
        seconds.append(time.process_time() - start)
    return {"qps": len(queries) / statistics.median(seconds), "peak_mb": _status("VmHWM") - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--chunk_size", type=int, default=1024)
    parser.add_argument("--query_block", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--all_at_once_limit_mb",
        type=float,
        default=1500,
        help="run the all-at-once search only where its score tensors need less than this",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/gallery.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fixed_mmap_threshold()
    generator = torch.Generator().manual_seed(0)
    heads = {
        "triplet (normalised, -distance)": TripletHead(DIM, normalize=True).eval(),
        "Koch (weighted L1 + sigmoid)": KochHead(DIM).eval(),
    }
    queries = torch.randn(args.queries, DIM, generator=generator)
    rows = []
    for size in args.sizes:
        keys = torch.randn(size, DIM, generator=generator)
        for name, head in heads.items():
            chunked = measure(head.pairwise_similarity, queries, keys, args.chunk_size, args.query_block, args.repeats)
            if type(head).pairwise_similarity is PairHead.pairwise_similarity:
                # One [queries, size, DIM] difference tensor and its square or absolute value, float32.
                all_at_once_mb = 2 * args.queries * size * DIM * 4 / 2**20
            else:  # a matrix product: a few [queries, size] float64 tensors
                all_at_once_mb = 4 * args.queries * size * 8 / 2**20
            whole = (
                measure(head.pairwise_similarity, queries, keys, size, args.queries, args.repeats)
                if all_at_once_mb <= args.all_at_once_limit_mb
                else None
            )
            rows.append((size, name, keys.numel() * 4 / 2**20, chunked, whole, all_at_once_mb))
            print(rows[-1], flush=True)
    lines = [
        f"# Gallery search ({args.queries} queries, {DIM}-d synthetic embeddings, nearest-member search, "
        f"{args.threads} CPU threads, torch {torch.__version__})",
        "",
        f"Chunked: {args.chunk_size} gallery rows x {args.query_block} queries scored at a time (the `identify` default). "
        "Queries/s: per second of the process's CPU time, median of "
        f"{args.repeats} runs. Peak memory: the search's extra resident memory (peak RSS during the search minus RSS "
        f"before it). Command: `python benchmarks/gallery.py --queries {args.queries} --threads {args.threads}`.",
        "",
        "| gallery embeddings | head | gallery MB | chunked: queries/s | chunked: peak extra MB | all at once: queries/s | all at once: peak extra MB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, name, gallery_mb, chunked, whole, estimate in rows:
        at_once = (
            f"{whole['qps']:.0f} | {whole['peak_mb']:.0f}"
            if whole is not None
            else f"not run | ~{estimate:.0f} (estimated)"
        )
        lines.append(
            f"| {size:,} | {name} | {gallery_mb:.1f} | {chunked['qps']:.0f} | {chunked['peak_mb']:.0f} | {at_once} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
