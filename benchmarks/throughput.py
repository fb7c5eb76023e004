"""Training throughput (images per second) of experiment configs on this machine.

Builds the model and data module from an experiment YAML exactly as ``lightning fit``
does, then times optimisation steps on real training batches (pair sampling and
augmentation included, Lightning's loop excluded). Prints a Markdown table.

    python benchmarks/throughput.py experiments/quickstart.yaml experiments/omniglot.yaml
    python benchmarks/throughput.py experiments/omniglot_cpu.yaml --precision 32-true bf16-mixed

Each step runs in the trainer's own precision context (``trainer.precision``: under
bf16/16-mixed the encoder in low precision, the head in float32); the default is each
config's own precision.
"""

from __future__ import annotations

import argparse
import time

import torch
from lightning.pytorch import seed_everything

from lightning_siamese.cli.lightning import SiameseCLI


def measure(config: str, steps: int, warmup: int, batch_size: int | None, precision: str | None) -> dict:
    args = ["--config", config, "--trainer.logger", "false"]
    if precision is not None:
        args += ["--trainer.precision", precision]
    if batch_size is not None:
        args += ["--data.init_args.batch_size", str(batch_size)]
    cli = SiameseCLI(args=args, run=False)
    model, data = cli.model, cli.datamodule
    plugin = cli.trainer.precision_plugin  # autocast for bf16/16-mixed, nothing for 32-true
    seed_everything(0)
    data.setup("fit")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    optimizer = model.optimizer(model.parameters())
    batches = iter(data.train_dataloader())
    images = 0
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = {k: v.to(device) for k, v in next(batches).items()}
        with plugin.forward_context():
            loss = model.training_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            images += sum(len(v) for k, v in batch.items() if v.dim() == 4)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    return {
        "config": config,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)",
        "params": params,
        "precision": cli.trainer.precision,
        "batch": data.batch_size,
        "images_per_s": images / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=None, help="pairs per batch (default: the config's)")
    parser.add_argument(
        "--precision", nargs="+", default=[None], help="trainer precisions to time (default: the config's)"
    )
    options = parser.parse_args()
    rows = [
        measure(c, options.steps, options.warmup, options.batch_size, p)
        for c in options.configs
        for p in options.precision
    ]
    print("| config | device | precision | parameters | batch (pairs, triplets or images) | training images/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['config']} | {r['device']} | {r['precision']} | {r['params']:,} | {r['batch']} | {r['images_per_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
