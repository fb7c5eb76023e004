"""``lightning-siamese report RUN_DIR``: one run, written up as Markdown with its figures.

It reads what the run left in its folder (``logs/<experiment>/version_N``): the config the
CLI saved, the TensorBoard events, the checkpoints and the reports the callbacks wrote
(``oneshot_<split>.json``, ``verification_test.json``, ``roc_*.png``, ``pairs_*.png``). With
the data at hand (the paths of the saved config, relative to the folder the report is run
from) it also rebuilds the data module to count the splits, and, for runs that wrote no
example pairs of their own, scores the validation pairs with the best checkpoint to show
the ones it gets right and wrong.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from lightning_siamese.callbacks.figures import curves_figure
from lightning_siamese.cli.tool import Tool
from lightning_siamese.inference.runs import (
    ReportError,
    best_checkpoint,
    check_run_dir,
    epoch_of_steps,
    monitored,
    read_events,
)

if TYPE_CHECKING:
    from lightning_siamese.data.datamodules.base import SiameseDataModule

CURVES_FILE, PAIRS_FILE, REPORT_FILE = "curves.png", "report_pairs_val.png", "report.md"


def clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


def example_pairs(run_dir: Path, data: SiameseDataModule, checkpoint: Path, path: Path) -> str:
    """Score the validation split's fixed pairs with ``checkpoint``; draw the most confident right and wrong ones.

    The threshold is the one the checkpoint stores (chosen on validation), else 0.5 for a
    probability head, else the most accurate one on these pairs (said so in the text).
    """
    from lightning_siamese.callbacks.figures import (
        RIGHT,
        WRONG,
        pair_tile,
        save_image,
        tile_grid,
    )
    from lightning_siamese.data.transforms.views import to_float
    from lightning_siamese.evaluation.verification import (
        best_threshold,
        confident_pairs,
        verification_metrics,
    )
    from lightning_siamese.models import SiameseModule
    from lightning_siamese.models.embedding import embed_all

    model = SiameseModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    evaluation = data.evaluation_set("val")
    first, second, same = (evaluation.pairs[k] for k in ("first", "second", "same"))
    used, position = torch.unique(torch.cat([first, second]), return_inverse=True)
    images = evaluation.collection.images[used]
    embeddings = embed_all(
        model, images, prepare=data.prepare
    )  # the run's own data module, as validation prepared its images
    with torch.no_grad():
        scores = model.head.similarity(embeddings[position[: len(first)]], embeddings[position[len(first) :]]).float()
    if model.verification_threshold is not None:
        threshold, source = model.verification_threshold, "the validation threshold stored in the checkpoint"
    elif model.head.probability:
        threshold, source = 0.5, "0.5 (the head's output is a probability)"
    else:
        threshold, source = (
            best_threshold(scores, same),
            "the most accurate threshold on these same pairs (flatters the accuracy)",
        )
    result = verification_metrics(scores, same, threshold)
    tiles = []
    for kind, i in confident_pairs(scores, same, threshold, per_kind=4):
        a, b = (to_float(images[int(position[j])]) for j in (i, len(first) + i))
        tiles.append(pair_tile(a, b, f"{kind} {float(scores[i]):.3f}", RIGHT if kind.startswith("right") else WRONG))
    save_image(tile_grid(tiles), str(path))
    return (
        f"The {len(first)} fixed validation pairs ({int(same.sum())} same-class; seed {data.val_seed}) scored by "
        f"`{checkpoint.relative_to(run_dir)}` at threshold {threshold:.4f}, {source}: pair accuracy "
        f"{result.accuracy:.2f}%, AUC {result.auc:.4f}. Below, the most confident right and wrong pairs of each kind "
        f"(green: right, red: wrong; caption: truth and score)."
    )


def _component(value: Any) -> str:
    if isinstance(value, dict) and "class_path" in value:
        args = value.get("init_args") or {}
        inner = ", ".join(f"{k}={_component(v)}" for k, v in args.items())
        return f"{value['class_path'].rsplit('.', 1)[-1]}({inner})"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def setup_section(config: dict) -> list[str]:
    model = config.get("model") or {}
    init = model.get("init_args") or {}
    data = config.get("data") or {}
    trainer = config.get("trainer") or {}
    monitor, mode = monitored(config)
    rows = [
        ("seed", config.get("seed_everything")),
        ("model", model.get("class_path", "?").rsplit(".", 1)[-1]),
        *[
            (part, _component(init.get(part)))
            for part in ("encoder", "head", "optimizer", "lr_scheduler", "param_groups")
            if init.get(part) is not None
        ],
        *[(k, v) for k, v in init.items() if k not in ("encoder", "head", "optimizer", "lr_scheduler", "param_groups")],
        ("data", _component(data)),
        *[
            (f"trainer.{k}", trainer.get(k))
            for k in (
                "max_epochs",
                "max_time",
                "accelerator",
                "devices",
                "precision",
                "accumulate_grad_batches",
                "gradient_clip_val",
                "deterministic",
            )
            if trainer.get(k) is not None
        ],
        ("checkpoint / model selection", f"{monitor} ({mode})"),
        (
            "early stopping",
            (
                f"{(config.get('early_stopping') or {}).get('monitor')}, patience "
                f"{(config.get('early_stopping') or {}).get('patience')}"
            ),
        ),
        ("end-of-run report", _component(config.get("oneshot_report"))),
    ]
    lines = ["## Experimental setup", "", "| setting | value |", "|---|---|"]
    lines += [
        f"| {name} | {str(value).replace('|', '/')} |"
        for name, value in rows
        if value is not None and "None" not in (str(value), str(value)[:4])
    ]
    return lines


def data_section(data: SiameseDataModule, texts: dict[str, str]) -> list[str]:
    """Classes, images per class and what each split is scored on, from the data module itself."""
    lines = ["## Data", ""]
    if texts.get("data/summary"):
        lines += [
            "The data module's own summary (logged at fit time):",
            "",
            "```",
            texts["data/summary"].replace("  \n", "\n"),
            "```",
            "",
        ]
    lines += [
        "| split | groups | classes | images | images per class (min / median / max) | used as |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("train", "val", "test"):
        try:
            split = data.split(name)
        except (ValueError, KeyError, FileNotFoundError) as err:
            reason = str(err) if len(str(err)) <= 160 else str(err)[:157] + "..."
            lines.append(f"| {name} | - | - | - | - | none: {reason} |")
            continue
        counts = torch.bincount(split.labels, minlength=split.num_classes)
        if name == "train":
            kind, size = data.batch_kind, data.batch_size
            use = (
                f"P x K batches of {size} ({size // data.images_per_class} classes x {data.images_per_class} images)"
                if kind == "classes"
                else f"{data.pairs_per_epoch} {kind} per epoch in batches of {size}"
            )
            if data.class_rotations != [0]:
                use += f"; classes rotated by {data.class_rotations} count as new classes"
        elif getattr(data, "task", None) == "verification":
            use = "pair list (verification)"
        else:
            tasks, seed = (data.test_tasks, data.test_seed) if name == "test" else (data.val_tasks, data.val_seed)
            use = (
                f"{tasks} {data.n_way}-way {data.k_shot}-shot episodes (seed {seed})"
                f"{' within one group' if data.within_group else ''}, {data.val_pairs} fixed pairs"
            )
        lines.append(
            f"| {name} | {len(split.group_names)} | {split.num_classes} | {len(split)} | "
            f"{int(counts.min())} / {int(counts.median())} / {int(counts.max())} | {use} |"
        )
    return lines


def training_section(scalars: dict, monitor: str, mode: str, config: dict) -> list[str]:
    epochs = epoch_of_steps(scalars)
    fit_tags = [t for t in scalars if t.startswith(("train/", "val/", "lr-"))]  # a later test stage's events aside
    times = [w for t in fit_tags for _, _, w in scalars[t]]
    lines = ["## Training", ""]
    if not times:
        return [*lines, "No training scalars were logged."]
    start = min(times)
    history = scalars.get(monitor, [])
    n_epochs = max(epochs.values(), default=-1) + 1
    trainer = config.get("trainer") or {}
    max_epochs = trainer.get("max_epochs")
    if max_epochs is None:  # Lightning's default: no limit under max_time, else 1000
        max_epochs = -1 if trainer.get("max_time") else 1000
    limit = f"at most {max_epochs}" if max_epochs >= 0 else "no epoch limit"
    lines.append(
        f"- {n_epochs} epochs ({max(s for t in fit_tags for s, _, _ in scalars[t])} steps) of "
        f"{limit}; wall time {clock(max(times) - start)} (first to last logged event, validation included). "
        "Epochs are numbered from 0, as in checkpoint names; the curves count epochs completed."
    )
    if history:
        pick = max if mode == "max" else min
        best_step, best, best_time = pick(history, key=lambda e: e[1])
        first = history[0][1]
        gain = [e for e in history if abs(e[1] - first) >= 0.95 * abs(best - first)]
        near = gain[0] if gain else history[0]
        lines.append(
            f"- Convergence: best {monitor} {best:.4g} at epoch {epochs.get(best_step, '?')} after "
            f"{clock(best_time - start)}; 95% of its gain over the first epoch ({first:.4g}) was reached at "
            f"epoch {epochs.get(near[0], '?')} after {clock(near[2] - start)}."
        )
        if n_epochs and max_epochs and n_epochs < max_epochs:
            lines.append(f"- Stopped before max_epochs (early stopping on {monitor}, or max_time).")
    for tag, what in (("train/loss_epoch", "training loss (epoch mean)"), ("val/loss", "validation loss")):
        if scalars.get(tag):
            values = [v for _, v, _ in scalars[tag]]
            lines.append(f"- Final {what}: {values[-1]:.4g} (first epoch {values[0]:.4g}, lowest {min(values):.4g}).")
    return lines


def results_section(run_dir: Path, scalars: dict, monitor: str, mode: str) -> list[str]:
    epochs = epoch_of_steps(scalars)
    lines = ["## Results", ""]
    history = scalars.get(monitor, [])
    if history:
        pick = max if mode == "max" else min
        step, value, _ = pick(history, key=lambda e: e[1])
        ci = {s: v for s, v, _ in scalars.get(monitor.replace("_acc", "_ci95"), [])} if monitor.endswith("_acc") else {}
        lines.append(
            f"- Validation, selected epoch {epochs.get(step, '?')}: {monitor} {value:.4g}"
            + (f" +- {ci[step]:.2f} (95% CI over the validation episodes)" if step in ci else "")
        )
        others = {
            t: v
            for t, values in sorted(scalars.items())
            if t.startswith("val/") and t != monitor and not t.endswith("_ci95")
            for s, v, _ in values
            if s == step
        }
        if others:
            lines.append(
                "  - the other validation metrics of that epoch: "
                + ", ".join(f"{t} {v:.4g}" for t, v in others.items())
            )
        last_step, last, _ = history[-1]
        lines.append(
            f"- Validation, last epoch {epochs.get(last_step, '?')}: {monitor} {last:.4g}"
            + (f" +- {ci[last_step]:.2f}" if last_step in ci else "")
        )
    for report in sorted(run_dir.glob("oneshot_*.json")):
        r = json.loads(report.read_text())
        lines.append(
            f"- End-of-run report (`{report.name}`): {r['n_way']}-way {r['k_shot']}-shot on the {r['split']} split, "
            f"**{r['accuracy']:.2f}% +- {r['ci95']:.2f}** (95% CI, {r['tasks']} fresh episodes, seed {r['seed']}), "
            f"checkpoint `{Path(r['checkpoint']).name}`."
        )
    test = run_dir / "verification_test.json"
    if test.is_file():
        r = json.loads(test.read_text())
        p, n = r["accuracy"] / 100, r["n_pairs"]
        binomial_ci = 196 * math.sqrt(p * (1 - p) / n)
        tars = ", ".join(f"TAR@FAR={k}: {v:.3f}" for k, v in (r.get("tar_at_far") or {}).items())
        lines.append(
            f"- Test verification (`{test.name}`, {n} pairs of {Path(r.get('pairs_file') or '?').name}): "
            f"**accuracy {r['accuracy']:.2f}% +- {binomial_ci:.2f}** (95% binomial CI) at threshold {r['threshold']:.4f} "
            f"from {r['threshold_from']}; AUC {r['auc']:.4f}, EER {r['eer']:.2f}%; {tars}."
        )
    tests = {t: v for t, v in scalars.items() if t.startswith("test/") and not t.endswith("_ci95")}
    for tag, values in sorted(tests.items()):
        test_ci = scalars.get(tag.replace("_acc", "_ci95")) if tag.endswith("_acc") else None
        lines.append(f"- Test `{tag}`: {values[-1][1]:.4g}" + (f" +- {test_ci[-1][1]:.2f} (95% CI)" if test_ci else ""))
    lake = run_dir / "lake_runs.json"
    if lake.is_file():
        lines.append(f"- Lake's 20 runs: see `{lake.name}` (per-run accuracy).")
    if len(lines) == 2:
        lines.append("No validation or test results were logged.")
    return lines


def versions() -> str:
    import lightning

    import lightning_siamese

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return (
        f"lightning-siamese {lightning_siamese.__version__}{f' (git {commit})' if commit else ''}, "
        f"torch {torch.__version__}, lightning {lightning.__version__}, Python {platform.python_version()}"
    )


def write_report(run_dir: str | Path, out: str | Path | None = None, with_data: bool = True) -> Path:
    """Write ``report.md`` with ``curves.png`` (and the example pairs) for one run; returns the report's path."""
    run = check_run_dir(run_dir)
    out_dir = Path(out) if out is not None else run
    out_dir.mkdir(parents=True, exist_ok=True)
    config_text = (run / "config.yaml").read_text()
    config = yaml.safe_load(config_text) or {}
    scalars, texts = read_events(run)
    monitor, mode = monitored(config)
    checkpoint = best_checkpoint(run)
    config_path = run / "config.yaml"
    lines = [
        f"# Run report: `{run}`",
        "",
        (
            f"Written {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `lightning-siamese report` "
            f"({versions()}; the versions of the report, which may postdate the run)."
        ),
        "",
        "## Reproduce",
        "",
        "From the folder the run was started in (the config's paths are relative to it):",
        "",
        "```",
        f"lightning fit --config {config_path}",
    ]
    if (run / "verification_test.json").is_file() or any(t.startswith("test/") for t in scalars):
        best = checkpoint or run / "checkpoints" / "<best>.ckpt"
        lines.append(f"lightning test --config {config_path} --ckpt_path {best}")
    lines += [
        "```",
        "",
        (
            "The saved config is the full resolved configuration of the run (seed included); the run writes "
            "a new version folder beside this one. Its complete text is at the end of this report."
        ),
        "",
    ]
    lines += [*setup_section(config), ""]
    data = None
    if with_data:
        from lightning_siamese.inference.config import data_module_from_config

        try:
            data, _ = data_module_from_config(config_path)
            lines += data_section(data, texts)
        except (OSError, ValueError) as err:  # data moved or absent: the rest of the report still stands
            data = None
            lines += [
                "## Data",
                "",
                f"Not analysed: the data module of the saved config could not load its data ({err}).",
            ]
    else:
        lines += ["## Data", "", "Not analysed (--no_data)."]
        if texts.get("data/summary"):
            lines += ["", "```", texts["data/summary"].replace("  \n", "\n"), "```"]
    lines += ["", *training_section(scalars, monitor, mode, config), ""]
    lines += [*results_section(run, scalars, monitor, mode), ""]
    drawn = curves_figure(scalars, monitor, out_dir / CURVES_FILE)
    lines += [
        "## Curves",
        "",
        f"![curves]({CURVES_FILE})",
        "",
        (
            f"Drawn from the TensorBoard events: {', '.join(f'`{t}`' for t in drawn)}. Training accuracy is not logged: "
            "training minimises the head's pair, triplet or batch loss; accuracy is measured on validation episodes or pairs."
        ),
        "",
    ]
    lines += ["## Example pairs", ""]
    own = [p for p in (run / "pairs_val.png", run / "pairs_test.png") if p.is_file()]
    if own:
        for image in own:
            lines += [
                (
                    f"The run's own `{image.name}`: the most confident right and wrong pairs of its {image.stem[6:]} "
                    "evaluation at the validation threshold (green: right, red: wrong)."
                ),
                "",
                f"![{image.stem}]({_link(image, out_dir)})",
                "",
            ]
    elif data is not None and checkpoint is not None:
        lines += [example_pairs(run, data, checkpoint, out_dir / PAIRS_FILE), "", f"![example pairs]({PAIRS_FILE})", ""]
    else:
        lines += [
            "None: the run wrote no example pairs"
            + (" and the data was not analysed." if data is None else " and has no checkpoint to score them with."),
            "",
        ]
    others = sorted(p for p in run.glob("*.png") if p.name not in {CURVES_FILE, PAIRS_FILE, *(o.name for o in own)})
    if others:
        lines += ["## Other figures of the run", ""] + [f"![{p.stem}]({_link(p, out_dir)})" for p in others] + [""]
    files = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt")) if (run / "checkpoints").is_dir() else []
    lines += [
        "## Files",
        "",
        f"- checkpoints: {', '.join(f'`{f}`' for f in files) or 'none'}"
        + (f" (best: `{checkpoint.name}`)" if checkpoint is not None else ""),
    ]
    lines += [f"- `{p.name}`" for p in sorted(run.glob("*.json"))]
    lines += ["", "## Saved config (`config.yaml`)", "", "```yaml", config_text.rstrip(), "```", ""]
    path = out_dir / REPORT_FILE
    path.write_text("\n".join(lines))
    return path


def _link(image: Path, out_dir: Path) -> str:
    """A link to ``image`` from a report in ``out_dir`` (relative when it can be)."""
    try:
        return str(image.resolve().relative_to(out_dir.resolve()))
    except ValueError:
        return str(image.resolve())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run folder written by `lightning fit`, e.g. logs/quickstart/version_0")
    parser.add_argument("--out", help="write the report and figures here instead of into the run folder")
    parser.add_argument(
        "--no_data", action="store_true", help="do not load the data (no split table, no example pairs computed)"
    )


def run(args: argparse.Namespace) -> Path:
    path = write_report(args.run_dir, args.out, with_data=not args.no_data)
    print(f"Wrote {path}")
    return path


TOOL = Tool(
    name="report",
    help="write a Markdown report of one run (setup, data, convergence, results, curves, example pairs)",
    description=(
        "Write report.md and its figures for one run folder (logs/<experiment>/version_N): how to reproduce it "
        "(the saved config, versions), the experimental setup, the data per split, convergence time and final "
        "losses, validation and test metrics with 95% CIs, loss and metric curves (curves.png), and example "
        "pairs it gets right and wrong (the run's own pairs_*.png, else the validation pairs scored with its "
        "best checkpoint). Run it from the folder the run was started in, so the config's data paths resolve."
    ),
    add_arguments=add_arguments,
    run=run,
    user_errors=(ReportError,),
)
