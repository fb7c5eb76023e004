"""Issue 7's benchmarks, measured in one process so the ratios hold on a noisy machine.

    python benchmarks/scale.py [--config experiments/quickstart.yaml] [--steps 30] [--out benchmarks/results/scale.md]

1. ``lightning fit`` vs a plain PyTorch loop: same model, data loader and batches; time per step.
2. The training data loader alone vs a training step.
3. One-shot evaluation: each image embedded once (cached) vs a forward pass per scored pair.
4. Peak resident memory of a few training steps: the quickstart net and Koch's net at batch 128.
5. Growth with data size: loading, a training epoch and evaluation at 1x, 2x and 4x the characters.
6. The ``channels_last`` and ``compile`` switches of ``SiameseModule``: time per step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from lightning_siamese.cli.lightning import SiameseCLI
from lightning_siamese.evaluation.oneshot import evaluate_episodes
from lightning_siamese.models.embedding import embed_all


def build(config: str, *overrides: str):
    cli = SiameseCLI(args=["--config", config, "--trainer.logger", "false", *overrides], run=False)
    pl.seed_everything(0)
    cli.datamodule.setup("fit")
    return cli.model, cli.datamodule


def plain_loop(model, data, steps: int, warmup: int) -> float:
    """Seconds per step of a hand-written loop: next batch, forward, backward, optimizer step."""
    model.train()
    optimizer = model.optimizer(model.parameters())
    batches = iter(data.train_dataloader())
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        loss = model.training_loss(next(batches))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


class StepClock(pl.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.end = time.perf_counter()


def lightning_fit(model, data, steps: int, warmup: int) -> float:
    clock = StepClock(warmup)
    trainer = pl.Trainer(
        max_steps=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
        accelerator="cpu",
    )
    trainer.fit(model, datamodule=data)
    return (clock.end - clock.start) / steps


def loader_only(data, steps: int) -> float:
    batches = iter(data.train_dataloader())
    next(batches)
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return (time.perf_counter() - start) / steps


@torch.no_grad()
def evaluation(model, data, tasks: int) -> dict:
    model.eval()
    evaluation = data.evaluation_set("val", tasks=tasks, seed=0)
    start = time.perf_counter()
    table = embed_all(model, evaluation.collection.images)
    cached = evaluate_episodes(table, evaluation.episodes, model.head.similarity).accuracy
    cached_time = time.perf_counter() - start
    images = evaluation.collection.images.float() / 255
    start, forwards, correct = time.perf_counter(), 0, 0
    support, query = evaluation.episodes.support[:, :, 0], evaluation.episodes.query[:, :, 0]
    for t in range(len(support)):
        for way, q in enumerate(query[t]):
            scores = model.similarity(images[q].expand(len(support[t]), -1, -1, -1), images[support[t]])
            forwards += 2 * len(support[t])
            correct += int(scores.argmax()) == way
    naive_time = time.perf_counter() - start
    return {
        "tasks": tasks,
        "distinct_images": len(images),
        "cached_s": cached_time,
        "cached_forwards": len(images),
        "naive_s": naive_time,
        "naive_forwards": forwards,
        "cached_acc": cached,
        "naive_acc": 100.0 * correct / query.numel(),
    }


PEAK = """
import resource, sys, torch
sys.argv = ['x']
from benchmarks.scale import build
model, data = build({config!r}, *{overrides!r})
optimizer = model.optimizer(model.parameters())
batches = iter(data.train_dataloader())
for _ in range(2):
    loss = model.training_loss(next(batches)); optimizer.zero_grad(); loss.backward(); optimizer.step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory_mb(config: str, *overrides: str) -> float:
    code = PEAK.format(config=config, overrides=list(overrides))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def growth(config: str, steps: int) -> list[dict]:
    """Load, train-epoch and evaluation time as the background set's training and validation
    characters double (3/6/12 training and 2/4/8 validation alphabets)."""
    alphabets = [
        "Alphabet_of_the_Magi",
        "Anglo-Saxon_Futhorc",
        "Arcadian",
        "Armenian",
        "Asomtavruli_(Georgian)",
        "Balinese",
        "Bengali",
        "Blackfoot_(Canadian_Aboriginal_Syllabics)",
        "Braille",
        "Burmese_(Myanmar)",
        "Cyrillic",
        "Early_Aramaic",
        "Futurama",
        "Grantha",
        "Greek",
        "Gujarati",
        "Hebrew",
        "Inuktitut_(Canadian_Aboriginal_Syllabics)",
        "Japanese_(hiragana)",
        "Japanese_(katakana)",
    ]
    rows = []
    for scale in (1, 2, 4):
        train, val = alphabets[: 3 * scale], alphabets[12 : 12 + 2 * scale]
        overrides = [
            "--data.init_args.sets",
            "[images_background]",
            "--data.init_args.train_alphabets",
            json.dumps(train),
            "--data.init_args.val_alphabets",
            json.dumps(val),
            "--data.init_args.test_alphabets",
            "[]",
            "--data.init_args.pairs_per_epoch",
            str(steps * 128),
            "--data.init_args.class_rotations",
            "[0]",
        ]
        start = time.perf_counter()
        model, data = build(config, *overrides)
        loaded = time.perf_counter() - start
        epoch = plain_loop(model, data, steps, 0) * steps
        evaluated = evaluation(model, data, tasks=100)["cached_s"]
        rows.append(
            {
                "scale": scale,
                "train_characters": data.split("train").num_classes,
                "val_characters": data.split("val").num_classes,
                "load_s": loaded,
                "epoch_s": epoch,
                "eval_s": evaluated,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/quickstart.yaml")
    parser.add_argument("--koch_config", default="experiments/omniglot.yaml")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/scale.md")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    lines = [
        f"# Scale benchmarks ({args.config}, {torch.get_num_threads()} CPU threads, torch {torch.__version__})",
        "",
    ]

    # Alternate the two, three times each, and take medians: single timings on a shared
    # machine drift by more than the difference being measured.
    loops, fits = [], []
    for _ in range(3):
        model, data = build(args.config)
        loops.append(plain_loop(model, data, args.steps, args.warmup))
        model, data = build(args.config)
        fits.append(lightning_fit(model, data, args.steps, args.warmup))
    loop, fit = statistics.median(loops), statistics.median(fits)
    loader = loader_only(data, args.steps)
    lines += [
        "| measurement | seconds per step | ratio |",
        "| --- | --- | --- |",
        f"| plain PyTorch loop (median of 3) | {loop:.4f} | 1.00 |",
        f"| `lightning fit` (median of 3, alternating with the loop) | {fit:.4f} | {fit / loop:.3f} x the loop (goal <= 1.05) |",
        f"| data loader alone | {loader:.4f} | training step is {loop / loader:.1f} x the loader (goal >= 5) |",
        "",
    ]

    for name, overrides in (
        ("channels_last", ["--model.init_args.channels_last", "true"]),
        ("compile", ["--model.init_args.compile", "true"]),
    ):
        model, data = build(args.config, *overrides)
        switched = plain_loop(model, data, args.steps, args.warmup)
        lines.append(f"| plain loop with `{name}: true` | {switched:.4f} | {switched / loop:.3f} x the loop |")
    lines.append("")

    model, data = build(args.config)
    ev = evaluation(model, data, tasks=10)
    lines += [
        "| one-shot evaluation, 10 tasks of 20-way 1-shot | seconds | image forward passes | accuracy |",
        "| --- | --- | --- | --- |",
        f"| cached: each distinct image once | {ev['cached_s']:.2f} | {ev['cached_forwards']} | {ev['cached_acc']:.2f} |",
        f"| naive: both images of every scored pair | {ev['naive_s']:.2f} | {ev['naive_forwards']} | {ev['naive_acc']:.2f} |",
        f"| ratio | {ev['naive_s'] / ev['cached_s']:.1f} x | {ev['naive_forwards'] / ev['cached_forwards']:.1f} x | |",
        "",
    ]

    quick = peak_memory_mb(args.config)
    koch = peak_memory_mb(args.koch_config, "--data.init_args.batch_size", "128", "--data.init_args.num_workers", "0")
    lines += [
        "| peak resident memory, 2 training steps at batch 128 | MB |",
        "| --- | --- |",
        f"| quickstart net | {quick:.0f} |",
        f"| Koch net (`omniglot.yaml`) | {koch:.0f} |",
        "",
    ]

    rows = growth(args.koch_config.replace("omniglot.yaml", "omniglot_cpu.yaml"), steps=20)
    lines += [
        "| data size (omniglot_cpu.yaml, images_background) | training / validation characters | load s | epoch of 20 steps s | evaluation (100 tasks) s |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['scale']}x | {r['train_characters']} / {r['val_characters']} | {r['load_s']:.1f} | {r['epoch_s']:.1f} | {r['eval_s']:.2f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
