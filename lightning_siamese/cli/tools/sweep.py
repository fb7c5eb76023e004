"""``lightning-siamese sweep``: a grid of config values, each combination a real ``lightning`` run.

Each combination is ``lightning fit`` (then ``lightning test`` of its best checkpoint when the
data module has a test split) in a subprocess, with the combination's values as command-line
overrides and its own run folder ``<save_dir>/<name>/<key=value,...>/`` (its own TensorBoard
run). The sweep folder keeps ``sweep.json`` (the settings and each combination's status),
``sweep.csv`` (one row per combination), ``sweep_<key>.png`` (the metric against each
parameter) and ``sweep_epochs.png`` (each run's validation curve). Run again, a sweep skips its finished combinations; a failed or interrupted one
is run again from scratch.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lightning_siamese.callbacks.figures import epochs_figure, plot_parameter
from lightning_siamese.cli.tool import Tool
from lightning_siamese.inference.runs import best_checkpoint, monitored, read_events

if TYPE_CHECKING:
    from lightning_siamese.cli.lightning import SiameseCLI

STATE_FILE, TABLE_FILE = "sweep.json", "sweep.csv"


ERROR_TAIL_LINES = 15


class SweepError(ValueError):
    """A sweep that cannot start: a grid or setting that names the offending value."""


def split_values(text: str) -> list[str]:
    """``1e-5,1e-4`` -> ``['1e-5', '1e-4']``; commas inside brackets stay (``[a,b],[c]`` is two lists)."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{("
        depth -= char in "]})"
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    return [v.strip() for v in values]


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["model.lr=1e-5,1e-4", "data.batch_size=16,32"]`` -> ``{key: [values]}`` in the given order."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key:
            raise SweepError(f"--grid {item!r}: expected KEY=VALUE[,VALUE...], e.g. model.lr=1e-5,1e-4")
        parsed = split_values(values)
        if any(v == "" for v in parsed):
            raise SweepError(f"--grid {item!r}: an empty value; expected KEY=VALUE[,VALUE...]")
        if key in grid:
            raise SweepError(f"--grid names {key} twice")
        if len(set(parsed)) != len(parsed):
            raise SweepError(f"--grid {item!r} repeats a value")
        grid[key] = parsed
    if not grid:
        raise SweepError("--grid names no parameter; expected KEY=VALUE[,VALUE...] ...")
    return grid


def _short(key: str) -> str:
    """A config key without its ``init_args`` levels: ``model.init_args.optimizer.init_args.lr`` -> ``model.optimizer.lr``."""
    return ".".join(part for part in key.split(".") if part != "init_args")


def resolve_key(key: str, config_keys: Sequence[str]) -> str:
    """The full config key a grid key names.

    A key is a config entry's dotted path, ``init_args`` levels optional
    (``data.batch_size``); levels between the first and the last may be left out as long as
    one entry matches (``model.lr`` for ``model.init_args.optimizer.init_args.lr``).

    Raises:
        SweepError: no entry, or several, match; the message lists the close ones.
    """
    by_short: dict[str, str] = {}
    for full in config_keys:
        by_short.setdefault(_short(full), full)
    wanted = _short(key)
    if wanted in by_short:
        return by_short[wanted]
    parts = wanted.split(".")

    def contains(full_short: str) -> bool:
        levels = full_short.split(".")
        if levels[0] != parts[0] or levels[-1] != parts[-1]:
            return False
        remaining = iter(levels[1:-1])
        return all(part in remaining for part in parts[1:-1])  # in order

    matches = [short for short in by_short if len(parts) > 1 and contains(short)]
    if len(matches) == 1:
        return by_short[matches[0]]
    if matches:
        raise SweepError(f"grid key {key!r} is ambiguous: it matches {', '.join(sorted(matches))}; name one of them")
    close = difflib.get_close_matches(wanted, list(by_short), n=5, cutoff=0.6)
    names = {s.split(".")[-1] for s in by_short}
    lasts = set(difflib.get_close_matches(parts[-1], list(names), n=5, cutoff=0.75))
    lasts |= {
        n for n in names if min(len(n), len(parts[-1])) >= 2 and (n.startswith(parts[-1]) or parts[-1].startswith(n))
    }
    close += [s for s in by_short if s.split(".")[-1] in lasts and s not in close][:5]
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise SweepError(f"grid key {key!r} is not a setting of the config{hint}")


def _parse_only_cli() -> type[SiameseCLI]:
    from lightning_siamese.cli.lightning import SiameseCLI

    class ParseOnly(SiameseCLI):
        """Parses (config, overrides) as ``lightning fit`` does, and builds nothing."""

        def instantiate_classes(self) -> None:
            pass

        def _set_seed(self) -> None:  # LightningCLI seeds (and says so) right after parsing
            pass

    return ParseOnly


def check_grid(config: str, grid: dict[str, list[str]], extra: Sequence[str]) -> dict[str, str]:
    """Resolve each grid key to its full config key and check that every combination parses.

    Parses the config with the extra arguments and each combination's values exactly as
    ``lightning`` will, before anything runs, so a misspelt key or a value of the wrong type
    fails at once, not after hours of other combinations. Returns ``{grid key: full key}``.
    """
    if not Path(config).is_file():
        raise SweepError(f"--config {config}: no such file")
    from jsonargparse import ArgumentError

    base = ["--config", config, *extra]
    try:
        with warnings.catch_warnings():  # it warns that sys.argv (the sweep's own) is not what it parses
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            cli = _parse_only_cli()(args=base, run=False, parser_kwargs={"exit_on_error": False})
    except ArgumentError as err:
        raise SweepError(f"{config} with {' '.join(extra) or 'no extra arguments'} does not parse: {err}") from err
    keys = {key: resolve_key(key, list(cli.config.keys())) for key in grid}
    for combination in itertools.product(*grid.values()):
        overrides = [arg for key, value in zip(keys.values(), combination) for arg in (f"--{key}", value)]
        try:
            cli.parser.parse_args([*base, *overrides])
        except ArgumentError as err:
            values = ", ".join(f"{k}={v}" for k, v in zip(grid, combination))
            raise SweepError(f"grid combination {values} does not parse: {err}") from err
    return keys


def run_name(params: dict[str, str]) -> str:
    """The run folder of a combination: ``lr=1e-4,batch_size=32`` (last key levels, unless two share one)."""
    lasts = [key.split(".")[-1] for key in params]
    labels = lasts if len(set(lasts)) == len(lasts) else [_short(key) for key in params]
    return ",".join(f"{label}={value}".replace("/", "_") for label, value in zip(labels, params.values()))


def has_test_split(config_file: Path) -> bool:
    """Whether a run's data module (from its saved config) has something for ``lightning test`` to score."""
    from lightning_siamese.inference.config import data_module_from_config

    data, _ = data_module_from_config(config_file)
    if getattr(data, "task", None) == "verification" or getattr(data, "runs_dir", None):
        return True  # LFW's test pair list; Lake's runs
    if hasattr(data, "test_alphabets"):
        return bool(data.test_alphabets)
    return getattr(data, "test_fraction", 0) > 0 or getattr(data, "small_classes", None) == "test"


def run_metrics(run_dir: Path, monitor: str, mode: str) -> dict[str, Any]:
    """What a finished run scored: best monitored value, last losses, end-of-run reports, test scalars."""
    scalars, _ = read_events(run_dir)
    metrics: dict[str, Any] = {}
    history = scalars.get(monitor, [])
    if history:
        pick = max if mode == "max" else min
        step, value, _ = pick(history, key=lambda e: e[1])
        epochs = {s: int(v) for s, v, _ in scalars.get("epoch", [])}
        metrics |= {f"best {monitor}": value, "best epoch": epochs.get(step, ""), "epochs": len(history)}
    for tag in ("train/loss_epoch", "val/loss"):
        if scalars.get(tag):
            metrics[f"last {tag}"] = scalars[tag][-1][1]
    for tag in sorted(t for t in scalars if t.startswith("test/")):
        metrics[tag] = scalars[tag][-1][1]
    for report in sorted(run_dir.glob("oneshot_*.json")):  # the best checkpoint on fresh episodes
        record = json.loads(report.read_text())
        metrics[f"{record['split']} report acc"] = record["accuracy"]
        metrics[f"{record['split']} report ci95"] = record["ci95"]
    return metrics


def _tail(path: Path, lines: int = ERROR_TAIL_LINES) -> str:
    text = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return "\n".join(text[-lines:])


def run_combination(
    config: str, keys: dict[str, str], params: dict[str, str], extra: Sequence[str], sweep_dir: Path, test: str
) -> dict[str, Any]:
    """``lightning fit`` (and ``test``) of one combination; its row of the results table."""
    name = run_name(params)
    run_dir = sweep_dir / name
    if run_dir.exists():  # an earlier try that did not finish: start again from scratch
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    log_file = run_dir / "output.log"
    overrides = [arg for key, value in params.items() for arg in (f"--{keys[key]}", value)]
    common = [
        "--config",
        config,
        *extra,
        *overrides,
        "--trainer.logger.init_args.save_dir",
        str(sweep_dir.parent),
        "--trainer.logger.init_args.name",
        sweep_dir.name,
        "--trainer.logger.init_args.version",
        name,
    ]
    start = time.time()
    row: dict[str, Any] = {"run": str(run_dir)}

    def call(stage: str, *args: str) -> bool:
        command = [sys.executable, "-m", "lightning_siamese", stage, *common, *args]
        with log_file.open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            row.update(status="failed", error=f"{stage} exited with {code}: {_tail(log_file)}")
        return code == 0

    if call("fit"):
        monitor, mode = monitored(yaml.safe_load((run_dir / "config.yaml").read_text()) or {})
        tested = True
        if test == "yes" or (test == "auto" and has_test_split(run_dir / "config.yaml")):
            best = best_checkpoint(run_dir)
            tested = best is not None and call("test", "--ckpt_path", str(best))
            if best is None:
                row |= {"status": "failed", "error": f"fit wrote no checkpoint in {run_dir / 'checkpoints'} to test"}
        if tested:
            row |= {"status": "finished", **run_metrics(run_dir, monitor, mode)}
    row["seconds"] = round(time.time() - start, 1)
    return row


def load_state(sweep_dir: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an earlier run of this sweep; fails if it ran with other settings."""
    path = sweep_dir / STATE_FILE
    if not path.is_file():
        return []
    state = json.loads(path.read_text())
    if state["settings"] != settings:
        raise SweepError(
            f"{sweep_dir} holds a sweep run with other settings ({json.dumps(state['settings'])}); "
            f"use another --name, or the same --config and extra arguments to resume it"
        )
    return state["rows"]


def write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def write_table(path: Path, rows: list[dict[str, Any]], params: Sequence[str]) -> None:
    """``sweep.csv``: parameters first, then status, metrics, time, run folder and error."""
    first = [*params, "status"]
    last = ["seconds", "run", "error"]
    middle = sorted({k for row in rows for k in row} - set(first) - set(last))
    columns = [*first, *middle, *last]
    with path.with_name(path.name + ".partial").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})
    os.replace(path.with_name(path.name + ".partial"), path)


def plot_epochs(rows: list[dict[str, Any]], path: Path) -> bool:
    """Each finished combination's monitored validation metric against the epoch, one line per combination."""
    curves, monitors = {}, set()
    for row in (r for r in rows if r.get("status") == "finished"):
        run = Path(row["run"])
        monitor, _ = monitored(yaml.safe_load((run / "config.yaml").read_text()) or {})
        monitors.add(monitor)
        scalars, _ = read_events(run)
        epochs = {s: int(v) for s, v, _ in scalars.get("epoch", [])}
        curves[run_name(row["params"])] = [(epochs[s] + 1, v) for s, v, _ in scalars.get(monitor, []) if s in epochs]
    return epochs_figure(curves, " / ".join(sorted(monitors)), path)


def default_metric(rows: list[dict[str, Any]]) -> str | None:
    """What the plots show by default: the end-of-run report's accuracy, else a test accuracy, else the best monitored value."""
    columns = {k for r in rows if r.get("status") == "finished" for k in r}
    for preferred in ("val report acc", "test report acc", "test/acc", "test/oneshot_acc"):
        if preferred in columns:
            return preferred
    best = sorted(c for c in columns if c.startswith("best "))
    return best[0] if best else None


def run_sweep(
    config: str,
    grid_items: Sequence[str],
    extra: Sequence[str],
    save_dir: str = "logs",
    name: str | None = None,
    test: str = "auto",
    metric: str | None = None,
) -> list[dict[str, Any]]:
    """Run every combination of the grid that has not finished yet; write the table and the plots."""
    grid = parse_grid(grid_items)
    keys = check_grid(config, grid, extra)
    sweep_dir = Path(save_dir) / (name or f"{Path(config).stem}_sweep")
    settings = {"config": str(config), "extra": list(extra), "test": test}
    rows = load_state(sweep_dir, settings)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    by_params = {json.dumps(r["params"], sort_keys=True): r for r in rows}

    def save() -> None:
        state = {"settings": settings, "grid": grid, "keys": keys, "rows": list(by_params.values())}
        write_atomic(sweep_dir / STATE_FILE, json.dumps(state, indent=2) + "\n")

    for i, params in enumerate(combinations, 1):
        label = run_name(params)
        previous = by_params.get(json.dumps(params, sort_keys=True))
        if previous is not None and previous.get("status") == "finished":
            print(f"[{i}/{len(combinations)}] {label}: finished earlier, skipped")
            continue
        print(f"[{i}/{len(combinations)}] {label}: running (log: {sweep_dir / label / 'output.log'})", flush=True)
        by_params[json.dumps(params, sort_keys=True)] = {"params": params, "status": "running"}
        save()
        row = {"params": params, **run_combination(config, keys, params, extra, sweep_dir, test)}
        by_params[json.dumps(params, sort_keys=True)] = row
        save()
        outcome = (
            "finished"
            if row["status"] == "finished"
            else f"FAILED\n    {row['error'].replace(chr(10), chr(10) + '    ')}"
        )
        print(f"[{i}/{len(combinations)}] {label}: {outcome} ({row['seconds']:.0f} s)", flush=True)
    ordered = [by_params[json.dumps(p, sort_keys=True)] for p in combinations]
    flat = [{**r["params"], **{k: v for k, v in r.items() if k != "params"}} for r in ordered]
    write_table(sweep_dir / TABLE_FILE, flat, list(grid))
    metric = metric or default_metric(ordered)
    plots = []
    for key in grid:
        path = sweep_dir / f"sweep_{key.replace('/', '_')}.png"
        if metric is not None and plot_parameter(ordered, key, [k for k in grid if k != key], metric, path):
            plots.append(path)
    if plot_epochs(ordered, sweep_dir / "sweep_epochs.png"):
        plots.append(sweep_dir / "sweep_epochs.png")
    finished = sum(r["status"] == "finished" for r in ordered)
    print(
        f"Sweep {sweep_dir}: {finished} of {len(ordered)} combinations finished; table {sweep_dir / TABLE_FILE}"
        + (
            f"; plots ({metric} against each parameter; the validation curves): {', '.join(str(p) for p in plots)}"
            if plots
            else ""
        )
    )
    return ordered


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="a `lightning` config, e.g. experiments/quickstart.yaml")
    parser.add_argument(
        "--grid",
        nargs="+",
        required=True,
        metavar="KEY=V1,V2",
        help="config keys and their values, e.g. model.lr=1e-4,1e-3 data.batch_size=32,128. A key is a config "
        "entry's dotted path; init_args levels, and levels in between, may be left out while one entry matches "
        "(model.lr is model.init_args.optimizer.init_args.lr). Every key and value is checked before anything runs",
    )
    parser.add_argument("--save_dir", default="logs", help="where the sweep folder goes (default: logs)")
    parser.add_argument("--name", help="the sweep folder under save_dir (default: <config stem>_sweep)")
    parser.add_argument(
        "--test",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run `lightning test` of each best checkpoint: auto (default) when the data module has a test split",
    )
    parser.add_argument(
        "--metric",
        help="the sweep.csv column to plot (default: the end-of-run report's accuracy, "
        "else the test accuracy, else the best monitored validation value)",
    )


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    return run_sweep(args.config, args.grid, args.lightning_args, args.save_dir, args.name, args.test, args.metric)


TOOL = Tool(
    name="sweep",
    help="run a grid of config values, each combination its own run; a CSV and one plot per parameter",
    description=(
        "Run every combination of --grid values through `lightning fit` (then `lightning test` of its best "
        "checkpoint when the data module has a test split), one after another, each in its own run folder "
        "SAVE_DIR/NAME/<key=value,...> (its own TensorBoard run). Arguments it does not know go to every run "
        "(e.g. --trainer.max_epochs 3). Writes sweep.csv (one row per combination: values, status, metrics, "
        "seconds, run folder), sweep_<key>.png (the metric against each parameter, one line per value of "
        "the others) and sweep_epochs.png (each run's validation curve). Run again, it skips finished combinations; "
        "a failed one is recorded with the tail of its output, and the sweep goes on."
    ),
    add_arguments=add_arguments,
    run=run,
    passes_unknown=True,
    user_errors=(SweepError,),
)
