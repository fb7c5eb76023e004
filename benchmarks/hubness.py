"""Choose the support-hubness correction (``SupportHubness``) on one set of validation tasks, check it on another.

For each checkpoint, every validation image is embedded under the config's report alignment
(``oneshot_report.align``) and plainly; each task's query-to-way and way-to-way scores are cached
(``--cache``: the aligned embedding takes about 4 minutes a checkpoint on 2 cores, the scoring 3
more per task seed). Then every (weight, k) on the grid is scored from the cache: the gain over
uncorrected scoring per checkpoint, on the tuning tasks (``--tune_seed``) and on the report's
(``oneshot_report.seed``). Pick on the first; the second is the number to believe.

    python benchmarks/hubness.py experiments/omniglot_cpu.yaml logs/omniglot_cpu*/version_0/checkpoints/epoch=*.ckpt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lightning_siamese.cli.tools.compare import embedding_precision
from lightning_siamese.data.transforms.views import AlignmentViews
from lightning_siamese.evaluation.oneshot import (
    AlignedSimilarity,
    SupportHubness,
    episode_scores,
    score_accuracies,
    way_scores,
)
from lightning_siamese.inference.config import data_module_from_config
from lightning_siamese.inference.model import load_trained
from lightning_siamese.models.embedding import embed_aligned, embed_all

WEIGHTS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
KS = (1, 2, 3, 5)


def cached_scores(data, align: AlignmentViews, ckpt: str, episodes: dict, cache: Path) -> dict:
    """``{(scheme, seed): (query scores [T, M, N], way-to-way scores [T, N, N])}`` for schemes plain and aligned."""
    path = cache / f"{Path(ckpt).parent.parent.parent.name}_{Path(ckpt).stem}.pt"
    if path.exists():
        return torch.load(path)
    model, _ = load_trained(ckpt)
    images = data.evaluation_set("val", tasks=1).collection.images
    with embedding_precision("bf16-mixed"):  # as the recipe's report embeds
        tables = {"plain": embed_all(model, images).float(), "aligned": embed_aligned(model, images, align).float()}
    similarity = {
        "plain": model.head.similarity,
        "aligned": AlignedSimilarity.of(model.head.pairwise_similarity, align),
    }
    out = {
        (scheme, seed): (episode_scores(table, tasks, similarity[scheme]), way_scores(table, tasks, similarity[scheme]))
        for seed, tasks in episodes.items()
        for scheme, table in tables.items()
    }
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the recipe (data and oneshot_report sections)")
    parser.add_argument("ckpts", nargs="+", help="1-shot checkpoints trained with it")
    parser.add_argument("--tune_seed", type=int, default=4321, help="the tasks the setting is chosen on")
    parser.add_argument("--cache", type=Path, default=Path("logs/hubness_cache"))
    args = parser.parse_args()
    data, report = data_module_from_config(args.config)
    seeds = [args.tune_seed, report.get("seed", 1234)]
    episodes = {seed: data.evaluation_set("val", tasks=report.get("tasks", 1000), seed=seed).episodes for seed in seeds}
    align = AlignmentViews(**(report.get("align") or {}))
    runs = [cached_scores(data, align, ckpt, episodes, args.cache) for ckpt in args.ckpts]
    for scheme in ("aligned", "plain"):
        for seed in seeds:
            e = episodes[seed]
            base = [score_accuracies(run[scheme, seed][0], e) for run in runs]
            print(f"\n{scheme}, tasks of seed {seed}: uncorrected " + " / ".join(f"{b.mean():.2f}" for b in base))
            print("gain, points, per checkpoint (mean):")
            for k in KS:
                cells = []
                for weight in WEIGHTS:
                    hubness = SupportHubness(weight, k)
                    gains = [
                        score_accuracies(hubness.correct(q, w), e).mean() - b.mean()
                        for (q, w), b in zip((run[scheme, seed] for run in runs), base)
                    ]
                    cells.append(
                        f"w {weight}: " + "/".join(f"{g:+.2f}" for g in gains) + f" ({sum(gains) / len(gains):+.2f})"
                    )
                print(f"  k {k}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
