"""One table that puts every scorer (baselines, trained models) side by side on the same episodes.

A row is a scorer's :class:`~lightning_siamese.evaluation.oneshot.OneShotResult` on each
task (e.g. 20-way 1-shot, 5-way 1-shot); the table prints mean accuracy and 95% CI.
Scorers that load the images at another size get their episodes drawn again from the same
seed; :func:`check_same_episodes` proves they are the same tasks before a row is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.evaluation.oneshot import OneShotResult


@dataclass
class Row:
    """One scorer's results, by task label (see :func:`task_label`)."""

    name: str
    detail: str
    results: dict[str, OneShotResult] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "detail": self.detail, "results": {k: r.as_dict() for k, r in self.results.items()}}


def task_label(n_way: int, k_shot: int) -> str:
    return f"{n_way}-way {k_shot}-shot"


def check_same_episodes(reference: Episodes, other: Episodes, what: str) -> None:
    """Fail unless ``other`` holds exactly the tasks of ``reference`` (same images, ways, order)."""
    same = reference.seed == other.seed and all(
        torch.equal(getattr(reference, k), getattr(other, k)) for k in ("support", "query", "classes")
    )
    if not same:
        raise ValueError(
            f"{what} gives other episodes than the table's (seed {reference.seed}, {len(reference)} tasks): "
            f"its data does not hold the same images in the same order; compare it on its own config"
        )


def markdown_table(rows: list[Row], caption: str = "") -> str:
    """A Markdown table: one row per scorer, one column per task, cells ``mean ± CI``."""
    tasks = list(dict.fromkeys(label for row in rows for label in row.results))
    lines = [caption, ""] if caption else []
    lines.append("| model | " + " | ".join(f"{t} (%)" for t in tasks) + " | details |")
    lines.append("|---|" + "---:|" * len(tasks) + "---|")
    for row in rows:
        cells = [
            f"{row.results[t].accuracy:.2f} ± {row.results[t].ci95:.2f}" if t in row.results else "-" for t in tasks
        ]
        lines.append(f"| {row.name} | " + " | ".join(cells) + f" | {row.detail} |")
    return "\n".join(lines) + "\n"
