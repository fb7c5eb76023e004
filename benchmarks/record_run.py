"""Write the record of a finished ``lightning fit`` run: per-epoch validation accuracy and the end-of-run report.

    python benchmarks/record_run.py logs/quickstart/version_0 --name quickstart \
        --command "lightning fit --config experiments/quickstart.yaml" --wall_time_s 512 \
        --split "val (Korean, Sanskrit; used for checkpoint selection)"

The record (``benchmarks/results/<name>.json``) holds what ``benchmarks/render_docs.py`` renders into the
README and the docs: the command, the commit, the date, the machine (CPU model, cores, load), the split, each
epoch's ``val/oneshot_acc`` from the run's TensorBoard events and the report's ``oneshot_val.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

from lightning_siamese.inference.runs import read_events

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    """CPU model and core count of this machine, and its load average when the record is written."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        model = names[0] if names else model
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{model}, {os.cpu_count()} cores (load average {load} when recorded)"


def record(run_dir: Path, name: str, command: str, split: str, wall_time_s: float | None) -> dict:
    scalars, _ = read_events(run_dir)
    epochs = [
        {"epoch": i, "step": step, "val_oneshot_acc": value}
        for i, (step, value, _) in enumerate(scalars["val/oneshot_acc"])
    ]
    report = json.loads((run_dir / "oneshot_val.json").read_text())
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "command": command,
        "commit": commit,
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "split": split,
        "epochs": epochs,
        "report": {
            k: report[k] for k in ("accuracy", "ci95", "n_way", "k_shot", "tasks", "seed", "intervals") if k in report
        },
        "wall_time_s": wall_time_s,
        "run": name,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", required=True, help="the record's name: benchmarks/results/<name>.json")
    parser.add_argument("--command", required=True, help="the command that made the run")
    parser.add_argument(
        "--split", required=True, help="which data the accuracies are on, and whether it chose anything"
    )
    parser.add_argument("--wall_time_s", type=float, help="the run's wall-clock time, measured outside it")
    args = parser.parse_args()
    out = RESULTS / f"{args.name}.json"
    out.write_text(
        json.dumps(record(args.run_dir, args.name, args.command, args.split, args.wall_time_s), indent=2) + "\n"
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
