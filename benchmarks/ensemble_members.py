"""An ensemble checkpoint's members alone and together, plain and aligned, on the report's tasks.

For a checkpoint whose encoder is an ``EnsembleEncoder`` (e.g. from
``benchmarks/omniglot_cpu_ensemble3.yaml``): each member's accuracy on its own slice of the
embeddings, and the ensemble's (the members' summed cosine similarities), without and with the
config's ``oneshot_report.align`` views; the ensemble aligned two ways: the best view pair of the
summed similarity (nearly what the report and ``lightning test`` do: they average the
symmetries' best Euclidean similarities, which rank like these cosines within a symmetry) and
each member aligning on its own before the sum. Same episodes as the config's end-of-run report (split, tasks, seed).
Embeds at bf16-mixed, as the recipe's report does; about 1.2x the report's time.

    python benchmarks/ensemble_members.py benchmarks/omniglot_cpu_ensemble3.yaml logs/.../epoch=60-....ckpt
"""

from __future__ import annotations

import argparse
import time

import torch

from lightning_siamese.cli.tools.compare import embedding_precision
from lightning_siamese.data.transforms.views import AlignmentViews
from lightning_siamese.evaluation.oneshot import (
    AlignedSimilarity,
    episode_scores,
    score_accuracies,
    summarize,
)
from lightning_siamese.inference.config import data_module_from_config
from lightning_siamese.inference.model import load_trained
from lightning_siamese.models import EnsembleEncoder
from lightning_siamese.models.distances import pairwise_cosine
from lightning_siamese.models.embedding import embed_aligned, embed_all


def accuracy(scores: torch.Tensor, episodes) -> str:
    result = summarize(score_accuracies(scores, episodes), episodes)
    return f"{result.accuracy:.2f} +- {result.ci95:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the run's config (data and oneshot_report sections)")
    parser.add_argument("ckpt", help="a checkpoint whose encoder is an EnsembleEncoder")
    parser.add_argument("--precision", default="bf16-mixed", help="embedding precision: 32 or bf16-mixed")
    args = parser.parse_args()

    data, report = data_module_from_config(args.config)
    model, _ = load_trained(args.ckpt)
    if not isinstance(model.encoder, EnsembleEncoder):
        raise ValueError(f"{args.ckpt} holds a {type(model.encoder).__name__}, not an EnsembleEncoder")
    evaluation = data.evaluation_set(
        report.get("split", "val"), tasks=report.get("tasks", 1000), seed=report.get("seed", 1234)
    )
    episodes, images = evaluation.episodes, evaluation.collection.images
    align = AlignmentViews(**(report.get("align") or {}))
    members, width = len(model.encoder.members), model.encoder.member_dim

    start = time.time()
    with embedding_precision(args.precision):
        plain = embed_all(model, images).float()
        aligned = embed_aligned(model, images, align).float()
    print(f"embedded {len(images)} images under {align.views} views in {time.time() - start:.0f} s")

    # Member slices are unit vectors: their dot product is their cosine.
    plain_scores = [
        episode_scores(part, episodes, lambda a, b: (a * b).sum(-1)) for part in model.encoder.member_embeddings(plain)
    ]
    by_view = aligned.view(len(aligned), align.symmetries * align.views, members, width)
    cosine = AlignedSimilarity(pairwise_cosine, align.views, align.symmetries)
    aligned_scores = [
        episode_scores(by_view[:, :, k].reshape(len(aligned), -1), episodes, cosine) for k in range(members)
    ]
    for k in range(members):
        print(
            f"member {k + 1}: plain {accuracy(plain_scores[k], episodes)}, aligned {accuracy(aligned_scores[k], episodes)}"
        )
    print(
        f"ensemble: plain {accuracy(sum(plain_scores), episodes)}, "
        f"aligned {accuracy(episode_scores(aligned, episodes, cosine), episodes)} (best view pair of the summed cosines), "
        f"{accuracy(sum(aligned_scores), episodes)} (each member aligning alone, then summed)"
    )
    print(
        f"({time.time() - start:.0f} s in all, {evaluation.episodes.n_way}-way, {len(episodes)} tasks, seed {episodes.seed})"
    )


if __name__ == "__main__":
    main()
