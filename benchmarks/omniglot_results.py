"""The Omniglot results table: configurations trained here, baselines, same validation tasks.

Trains each configuration with the real ``lightning fit`` (a subprocess, timed), reads the
end-of-run report (20-way within-alphabet 1-shot on the 10 validation alphabets, 1,000
tasks, seed 1234), scores the baselines on those very tasks with
``lightning-siamese baseline``, and writes ``benchmarks/results/omniglot.md``.

    python benchmarks/omniglot_results.py                     # everything (about 2 h on 2 CPU cores)
    python benchmarks/omniglot_results.py --only omniglot_cpu  # one configuration
    python benchmarks/omniglot_results.py --skip-training     # baselines only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# label -> (config, extra command-line arguments)
CONFIGS = {
    "omniglot_cpu": ("experiments/omniglot_cpu.yaml", []),
    # Koch's exact net and protocol, cut to 2 epochs of 40 batches: what the CPU affords.
    "omniglot_koch (80 steps)": (
        "experiments/omniglot_koch.yaml",
        ["--trainer.limit_train_batches", "40", "--trainer.max_epochs", "2"],
    ),
}
BASELINES = ("mhd", "pixel", "chance")


def train(label: str, config: str, extra: list[str], save_dir: Path) -> dict:
    name = label.split(" ")[0]
    args = ["--trainer.logger.init_args.save_dir", str(save_dir), "--trainer.logger.init_args.name", name]
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lightning_siamese", "fit", "--config", config, *args, *extra], check=True, cwd=REPO
    )
    wall = time.perf_counter() - start
    runs = sorted((save_dir / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    report = json.loads((runs[-1] / "oneshot_val.json").read_text())
    return {"label": label, "wall_s": wall, **report}


def baseline(name: str, config: str, out_dir: Path) -> dict:
    output = out_dir / f"baseline_{name}.json"
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_siamese.cli.main",
            "baseline",
            name,
            "--config",
            config,
            "--output",
            str(output),
        ],
        check=True,
        cwd=REPO,
    )
    return {"label": f"baseline: {name}", "wall_s": time.perf_counter() - start, **json.loads(output.read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=list(CONFIGS), action="append", help="train only these (repeatable)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--workdir", default="logs/bench_omniglot")
    options = parser.parse_args()
    workdir = REPO / options.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    if not options.skip_training:
        for label, (config, extra) in CONFIGS.items():
            if options.only is None or label in options.only:
                rows.append(train(label, config, extra, workdir))
                print(rows[-1], flush=True)
    # The baselines score the recipe's own tasks (52 px images, the same 1,000 tasks).
    for name in BASELINES:
        rows.append(baseline(name, CONFIGS["omniglot_cpu"][0], workdir))
        print(rows[-1], flush=True)
    lines = [
        "| what | 20-way within-alphabet 1-shot val accuracy, % (1,000 tasks, seed 1234) | wall time, s |",
        "|---|---|---|",
        *[f"| {r['label']} | {r['accuracy']:.2f} ± {r['ci95']:.2f} | {r['wall_s']:.0f} |" for r in rows],
    ]
    table = "\n".join(lines)
    print(table)
    out = REPO / "benchmarks" / "results" / "omniglot.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table + "\n")


if __name__ == "__main__":
    main()
