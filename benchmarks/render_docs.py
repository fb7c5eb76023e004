"""Render every measured number in README.md and docs/ from the records in benchmarks/results/.

A page marks a rendered block with a pair of HTML comments::

    <!-- record: omniglot_recipe_runs -->
    ...whatever this script writes...
    <!-- /record -->

(block form: the markers on lines of their own) or inline, inside a sentence:
``<!-- record: quickstart_accuracy -->54.7% ± 1.2<!-- /record -->``. The name picks a
function below, which reads one or more record files (``benchmarks/results/<name>.json``)
and returns the Markdown. So a number on a page can only change by changing its record.

    python benchmarks/render_docs.py           # rewrite the pages in place
    python benchmarks/render_docs.py --check   # exit 1 and name each page and block that differs

``--check`` also fails on an accuracy-like number (``12.34%``, ``12.3 ± 0.4``) written by hand
outside a record block (code blocks, inline code and the trials log excepted: the lab notebook
keeps the numbers it wrote at the time) and on a record without its envelope.

A record is a JSON object with at least ``command``, ``commit`` (the commit that recorded the
result; the run used that commit's code or its parent's), ``date``, ``machine`` and ``split``
(which data the figures were measured on, starting with "validation (used for selection)" or
"held-out test"), plus the figures. ``literature.json`` holds published numbers instead, each
with its ``source`` and ``split``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"
# Pages exempt from the hand-written-number check: the lab notebook keeps its numbers as written.
NOTEBOOK_PAGES = {"docs/trials.md"}

VAL = "validation (used for selection)"
TEST = "held-out test"
MEASURED_KEYS = ("command", "commit", "date", "machine", "split")

BLOCK_RE = re.compile(r"<!-- record: ([A-Za-z0-9_]+) -->(.*?)<!-- /record -->", re.DOTALL)
# An accuracy-like number typed by hand: a decimal with a percent sign, or a value with an interval.
HAND_NUMBER_RE = re.compile(r"\d+\.\d+\s?%|\d(?:\.\d+)?%?\s?(?:±|\+-)\s?\d")


class RecordError(ValueError):
    pass


# ---------------------------------------------------------------- records


def load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise RecordError(f"record {path.relative_to(ROOT)} does not exist")
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise RecordError(f"record {path.relative_to(ROOT)} is not a JSON object")
    if data.get("published"):
        for key, entry in data.items():
            if isinstance(entry, dict) and not ("source" in entry and "split" in entry):
                raise RecordError(f"record {path.relative_to(ROOT)}: entry {key!r} lacks 'source' or 'split'")
        return data
    missing = [k for k in MEASURED_KEYS if k not in data]
    if missing:
        raise RecordError(f"record {path.relative_to(ROOT)} lacks {', '.join(missing)}")
    return data


def measured(value) -> bool:
    return value is not None


# ---------------------------------------------------------------- formatting


def pm(acc: float, ci: float, nd: int = 2) -> str:
    return f"{acc:.{nd}f}% ± {ci:.{nd}f}"


def pct(value: float, nd: int = 2) -> str:
    return f"{value:.{nd}f}%"


def interval(ci: list[float], nd: int = 1) -> str:
    return f"[{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


class Page:
    """Where a block is rendered: links to records, figures and docs pages are relative to it."""

    def __init__(self, rel: str) -> None:
        self.rel = rel  # e.g. "README.md" or "docs/recipes/omniglot.md"

    @property
    def in_docs(self) -> bool:
        return self.rel.startswith("docs/")

    def _relative(self, target: str) -> str:
        return os.path.relpath(target, start=os.path.dirname(self.rel) or ".").replace(os.sep, "/")

    def record(self, name: str) -> str:
        # In the docs site the hook in docs/hooks.py serves benchmarks/results/ as records/.
        target = f"docs/records/{name}.json" if self.in_docs else f"benchmarks/results/{name}.json"
        return f"[`{name}.json`]({self._relative(target)})"

    def doc(self, page: str, anchor: str = "") -> str:
        return self._relative(f"docs/{page}") + (f"#{anchor}" if anchor else "")


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["---"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def provenance(page: Page, *names: str) -> str:
    """One line per record: date, machine, commit, command."""
    lines = []
    for name in names:
        r = load(name)
        lines.append(f"- {page.record(name)}: {r['date']}, {r['machine']}; commit `{r['commit']}`; `{r['command']}`")
    return "\n".join(lines)


# ---------------------------------------------------------------- blocks

BLOCKS: dict[str, Callable[[Page], str]] = {}


def block(fn: Callable[[Page], str]) -> Callable[[Page], str]:
    BLOCKS[fn.__name__] = fn
    return fn


RECIPE_RUNS = [
    "omniglot_cpu_ink_xeon_oneshot_val",
    "omniglot_cpu_ink_seed1_xeon_oneshot_val",
    "omniglot_cpu_ink_seed2_xeon_oneshot_val",
]
RECIPE_END_TO_END = "omniglot_cpu_hub_seed3_xeon_oneshot_val"


def recipe_scores() -> list[float]:
    rescored = load("omniglot_cpu_hubness_rescored")["runs"]
    return [r["accuracy"] for r in rescored] + [load(RECIPE_END_TO_END)["accuracy"]]


def quickstart_summary() -> tuple[str, dict]:
    q = load("quickstart")
    rep = q["report"]
    if not measured(rep.get("accuracy")):
        return "not yet measured (the record `benchmarks/results/quickstart.json` is a placeholder)", q
    text = f"{pm(rep['accuracy'], rep['ci95'])} ({rep['tasks']} tasks, seed {rep['seed']})"
    if rep.get("intervals"):
        text += "; " + bootstrap_text(rep["intervals"])
    return text, q


def bootstrap_text(intervals: dict) -> str:
    """The report's bootstrap intervals, e.g. ``resampling characters 47.84-57.84%, alphabets 36.77-68.20%``."""
    return "resampling " + ", ".join(f"{name} {low:.2f}-{high:.2f}%" for name, (low, high) in intervals.items())


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


@block
def readme_results(page: Page) -> str:
    e2e = load(RECIPE_END_TO_END)
    scores = recipe_scores()
    lfw = load("lfw_best")
    sig = load("signatures_test")
    probe = load("mnist_probe_test")
    dark = {r["name"]: r for r in load("darkshot")["rows"]}["triplet, squared Euclidean"]["results"]["10-way 1-shot"]
    qs, _ = quickstart_summary()
    rows = [
        [
            "Omniglot, 20-way 1-shot within one alphabet",
            "`omniglot_cpu.yaml`, 1 h on 2 CPU cores, end to end",
            f"**{pm(e2e['accuracy'], e2e['ci95'])}** (four runs: {min(scores):.2f}-{max(scores):.2f}%)",
            VAL,
            page.record(RECIPE_END_TO_END),
            f"[Omniglot]({page.doc('recipes/omniglot.md')})",
        ],
        [
            "Omniglot small sets, 20-way 1-shot",
            "`quickstart.yaml`, minutes on a CPU",
            qs,
            VAL,
            page.record("quickstart"),
            f"[Getting started]({page.doc('getting-started.md')})",
        ],
        [
            "LFW face verification (View 1)",
            "`lfw_best.yaml`, CosFace, 80 min on 2 CPU cores",
            f"{pct(lfw['metrics']['acc'])} accuracy, AUC {lfw['metrics']['auc']:.3f}",
            VAL,
            page.record("lfw_best"),
            f"[LFW]({page.doc('recipes/lfw.md')})",
        ],
        [
            "Signature verification, 10 unseen writers",
            "`signatures_cpu.yaml`, SigNet, 28 min",
            f"{sig['accuracy']['value']:.1f}% {interval(sig['accuracy']['ci95'])} accuracy, AUC {sig['auc']['value']:.3f}",
            TEST,
            page.record("signatures_test"),
            f"[Signatures]({page.doc('recipes/signatures.md')})",
        ],
        [
            "MNIST, softmax probe on triplet embeddings",
            "`mnist_triplet.yaml` + `probe`",
            pm(100 * probe["accuracy"], 100 * probe["accuracy_ci95"]),
            TEST,
            page.record("mnist_probe_test"),
            f"[MNIST]({page.doc('recipes/mnist.md')})",
        ],
        [
            "Folder of 193 unseen classes, 10-way 1-shot",
            "`darkshot.yaml` + triplet overlay, 200 steps",
            pm(dark["accuracy"], dark["ci95"]),
            TEST,
            page.record("darkshot"),
            f"[DarkShotLearning]({page.doc('recipes/darkshot.md')})",
        ],
    ]
    return table(["task", "recipe", "result (95% CI)", "measured on", "record", "details"], rows)


@block
def quickstart_accuracy(page: Page) -> str:
    return quickstart_summary()[0]


@block
def quickstart_output(page: Page) -> str:
    q = load("quickstart")
    rep = q["report"]
    if not measured(rep.get("accuracy")):
        return (
            "The run ends by printing the end-of-run accuracy; its recorded value is not yet measured "
            "(`benchmarks/results/quickstart.json` is a placeholder)."
        )
    line = (
        f"Final one-shot evaluation on the val split: 20-way 1-shot accuracy {rep['accuracy']:.2f}% "
        f"+- {rep['ci95']:.2f} (95% CI, {rep['tasks']} tasks, seed {rep['seed']})"
    )
    if rep.get("intervals"):  # as the report prints them
        line += "; resampling " + "; ".join(
            f"{name} [{lo:.2f}, {hi:.2f}]" for name, (lo, hi) in rep["intervals"].items()
        )
    when = f"{q['date']}, {q['machine']}" + (f", {minutes(q['wall_time_s'])}" if measured(q.get("wall_time_s")) else "")
    return f"```\n{line}\n```\n\n(Recorded in {page.record('quickstart')}: {when}; {VAL}.)"


@block
def quickstart_epochs(page: Page) -> str:
    q = load("quickstart")
    epochs = q.get("epochs") or []
    if not epochs or not all(measured(e.get("val_oneshot_acc")) for e in epochs):
        return (
            "Per-epoch validation accuracy: not yet measured (`benchmarks/results/quickstart.json` is a "
            "placeholder until the quickstart is re-measured)."
        )
    rows = [[str(e["epoch"]), pct(e["val_oneshot_acc"])] for e in epochs]
    rep = q["report"]
    out = table(["epoch", f"`val/oneshot_acc` (400 tasks, seed 0; {VAL})"], rows, ["---:", "---:"])
    out += (
        f"\n\nEnd-of-run report, best checkpoint, {rep['tasks']} fresh tasks (seed {rep['seed']}): "
        f"**{pm(rep['accuracy'], rep['ci95'])}**"
    )
    if measured(q.get("wall_time_s")):
        out += f"; whole run {minutes(q['wall_time_s'])}"
    out += f".\n\n{provenance(page, 'quickstart')}"
    return out


@block
def omniglot_recipe_runs(page: Page) -> str:
    rescored = load("omniglot_cpu_hubness_rescored")
    rows = []
    for run, name in zip(rescored["runs"], RECIPE_RUNS):
        r = load(name)
        t = r["training"]
        rows.append(
            [
                f"seed {t['seed']}: trained, then rescored with the correction",
                f"{t['epochs']} ({t['best_epoch']})",
                f"**{pm(run['accuracy'], run['ci95'])}**",
                pct(run["plain_accuracy"]),
                pm(r["accuracy"], r["ci95"]),
                f"{page.record(name)}, {page.record('omniglot_cpu_hubness_rescored')}",
            ]
        )
    e = load(RECIPE_END_TO_END)
    t = e["training"]
    rows.append(
        [
            f"seed {t['seed']}: the config as shipped, end to end",
            f"{t['epochs']} ({t['best_epoch']})",
            f"**{pm(e['accuracy'], e['ci95'])}**",
            pct(e["without_align"]["accuracy"]),
            "-",
            page.record(RECIPE_END_TO_END),
        ]
    )
    scores = recipe_scores()
    mean = sum(scores) / len(scores)
    return (
        table(
            [
                "run (training seed)",
                "epochs (best)",
                "accuracy, as shipped",
                "plain (no alignment, no symmetries)",
                "without the hubness correction",
                "records",
            ],
            rows,
        )
        + f"\n\nAll four: {VAL}; mean {mean:.2f}%, range {min(scores):.2f}-{max(scores):.2f}%. "
        f"56 minutes of training each, {e['machine']}, {e['date']}."
    )


@block
def omniglot_headline(page: Page) -> str:
    scores = recipe_scores()
    return f"{min(scores):.2f}-{max(scores):.2f}% (mean {sum(scores) / len(scores):.2f}%) in four runs"


@block
def omniglot_baselines(page: Page) -> str:
    rows = []
    for name, label in [
        ("baseline_chance_omniglot_val52", "chance"),
        ("baseline_pixel_omniglot_val52", "pixel nearest neighbour, 52 px"),
        ("baseline_mhd_omniglot_val52", "modified Hausdorff distance (MHD), 52 px"),
        ("baseline_mhd_omniglot_val105", "MHD at Lake's 105 px"),
    ]:
        r = load(name)
        rows.append([label, pm(r["accuracy"], r["ci95"]), page.record(name)])
    ink = load("baselines_omniglot_ink40")
    for r in ink["rows"]:
        label = {"mhd": "MHD", "pixel": "pixel nearest neighbour"}[r["baseline"]]
        rows.append(
            [
                f"{label} on the recipe's images (40 px, centred on the ink)",
                pm(r["accuracy"], r["ci95"]),
                page.record("baselines_omniglot_ink40"),
            ]
        )
    return table(["baseline", f"20-way 1-shot, {VAL}", "record"], rows, ["---", "---:", "---"])


@block
def omniglot_literature(page: Page) -> str:
    lit = load("literature")
    k, lake = lit["koch2015"], lit["lake2015"]
    rows = [["Koch et al. 2015, Siamese net", pct(k["accuracy"], 1), k["source"]]]
    rows += [[r["system"], pct(r["accuracy"], 1), lake["source"]] for r in lake["rows"]]
    return (
        table(["system", "20-way 1-shot, published", "source"], rows, ["---", "---:", "---"])
        + f"\n\nAll on {k['split'][len('held-out test: ') :]} ({TEST}; {page.record('literature')})."
    )


@block
def koch_published(page: Page) -> str:
    return pct(load("literature")["koch2015"]["accuracy"], 1)


def _compare_table(page: Page, name: str) -> str:
    data = load(name)
    tasks = list(data["rows"][0]["results"])
    rows = []
    for r in data["rows"]:
        rows.append([r["name"]] + [pm(r["results"][t]["accuracy"], r["results"][t]["ci95"]) for t in tasks])
    return (
        table(["model"] + [f"{t} (%)" for t in tasks], rows, ["---"] + ["---:"] * len(tasks))
        + f"\n\n{VAL}; {page.record(name)}"
    )


@block
def omniglot_compare_1shot(page: Page) -> str:
    return _compare_table(page, "baselines")


@block
def omniglot_compare_5shot(page: Page) -> str:
    return _compare_table(page, "baselines_5shot")


def _heads(page: Page, name: str, way: str) -> str:
    data = load(name)
    rows = [
        [r["head"], r["batches"], pm(r["accuracy"], r["ci95"]), str(r["best_step"]), str(r["wall_s"])]
        for r in data["rows"]
    ]
    return (
        table(
            ["head", "batches", f"{way} 1-shot, {VAL}", "step of best checkpoint", "wall time, s"],
            rows,
            ["---", "---", "---:", "---:", "---:"],
        )
        + f"\n\n{provenance(page, name)}"
    )


@block
def heads_omniglot(page: Page) -> str:
    return _heads(page, "heads_omniglot", "20-way")


@block
def heads_folder(page: Page) -> str:
    return _heads(page, "heads_folder", "10-way")


@block
def omniglot_openset(page: Page) -> str:
    data = load("openset")
    rows = []
    for r in data["rows"]:
        if r["target_far"] not in (None, 0.05, 0.2, 0.3):
            continue
        rows.append(
            [
                f"{100 * r['unknown_fraction']:.0f}%",
                "none (never reject)" if r["target_far"] is None else str(r["target_far"]),
                pm(r["closed_acc"], r["closed_ci95"]),
                pm(r["open_acc"], r["open_ci95"]),
                f"{r['auc']:.3f} ± {r['auc_ci95']:.3f}",
                pct(r["false_accept"], 1),
                pct(r["false_reject"], 1),
            ]
        )
    return (
        table(
            [
                "unknown queries",
                "false-accept target",
                "closed-set acc",
                "open-set acc",
                "rejection AUC",
                "unknowns accepted",
                "knowns rejected",
            ],
            rows,
            ["---:", "---", "---:", "---:", "---:", "---:", "---:"],
        )
        + f"\n\n{data['split']}. Model: {data['model']}.\n\n{provenance(page, 'openset')}"
    )


@block
def omniglot_retrieval(page: Page) -> str:
    rows = []
    for name, label in [
        ("retrieval_omniglot_loo", "leave-one-out, 5,540 images (R = 19)"),
        ("retrieval_omniglot_split", "gallery drawers 1-10, queries drawers 11-20 (R = 10)"),
    ]:
        r = load(name)
        rows.append(
            [label]
            + [pct(100 * r[k]) for k in ("precision@1", "precision@5", "r_precision", "map@r")]
            + [page.record(name)]
        )
    r = load("retrieval_omniglot_loo")
    return (
        table(
            ["protocol", "precision@1", "precision@5", "R-precision", "MAP@R", "record"],
            rows,
            ["---", "---:", "---:", "---:", "---:", "---"],
        )
        + f"\n\n{r['split']}. Model: {r['model']}."
    )


@block
def omniglot_gallery(page: Page) -> str:
    data = load("gallery_omniglot")
    rows = [
        [
            str(r["shots"]),
            r["scoring"],
            pct(r["closed_set_acc"], 1),
            pct(r["known_accepted_right"], 1),
            pct(r["unknown_rejected"], 1),
            pct(r["open_set_acc"], 1),
            f"{r['rejection_auc']:.3f}",
        ]
        for r in data["rows"]
    ]
    return (
        table(
            [
                "enrolled per class",
                "scoring",
                "closed-set, 124-way",
                "known: right class accepted",
                "unknown: rejected",
                "open-set (all queries)",
                "rejection AUC",
            ],
            rows,
            ["---:", "---", "---:", "---:", "---:", "---:", "---:"],
        )
        + f"\n\n{data['split']}. Model: {data['model']}.\n\n{provenance(page, 'gallery_omniglot')}"
    )


@block
def lfw_best_table(page: Page) -> str:
    r = load("lfw_best")
    m, f = r["metrics"], r["metrics_eval_flip"]
    rows = [
        ["accuracy, threshold tuned on these pairs", pct(m["acc"]), pct(f["acc"])],
        ["ROC AUC", f"{m['auc']:.4f}", f"{f['auc']:.4f}"],
        ["equal error rate", pct(m["eer"]), pct(f["eer"])],
        ["TAR at FAR 1e-2", pct(m["tar_at_far_0.01"]), pct(f["tar_at_far_0.01"])],
        ["TAR at FAR 1e-3", pct(m["tar_at_far_0.001"]), pct(f["tar_at_far_0.001"])],
    ]
    t = r["training"]
    return (
        table(["metric", "as trained", "with `eval_flip` (mirror averaging)"], rows, ["---", "---:", "---:"])
        + f"\n\n{r['split']}. Best epoch {t['best_epoch']}; early stopping ended the run after {t['epochs_run']} of "
        f"{t['max_epochs']} epochs; wall time {t['wall_time']}.\n\n{provenance(page, 'lfw_best')}"
    )


@block
def lfw_best_headline(page: Page) -> str:
    r = load("lfw_best")
    return f"{pct(r['metrics']['acc'])} (AUC {r['metrics']['auc']:.3f}, EER {pct(r['metrics']['eer'], 1)})"


@block
def signatures_table(page: Page) -> str:
    r = load("signatures_test")

    def cell(key: str, scale: float = 1.0, nd: int = 1, unit: str = "%") -> str:
        v = r[key]
        if unit == "%":
            return f"{v['value']:.{nd}f}% {interval(v['ci95'], nd)}"
        return f"{v['value']:.3f} {interval(v['ci95'], 3)}"

    rows = [
        [
            "global (validation writers, most accurate)",
            cell("accuracy"),
            cell("far"),
            cell("frr"),
            cell("auc", unit=""),
            cell("eer"),
        ],
        [
            f"per writer, mean - k std of the references (k = {r['writer_k']:.2f} from validation)",
            cell("writer_accuracy"),
            cell("writer_far"),
            cell("writer_frr"),
            cell("writer_auc", unit=""),
            cell("writer_eer"),
        ],
    ]
    return (
        table(["threshold", "accuracy", "FAR (skilled)", "FRR", "AUC", "EER"], rows)
        + f"\n\n{r['split']}. Intervals: percentile bootstrap over writers ({r['bootstrap']}).\n\n{provenance(page, 'signatures_test')}"
    )


@block
def mnist_probe_table(page: Page) -> str:
    rows = []
    for name, label in [
        ("mnist_probe_test", f"MNIST test (10,000), {TEST}"),
        ("mnist_probe_val", f"MNIST validation (5,000), {VAL}"),
    ]:
        r = load(name)
        rows.append(
            [
                label,
                pm(100 * r["accuracy"], 100 * r["accuracy_ci95"]),
                pct(100 * r["in_distribution_kept"], 1),
                pct(100 * r["out_of_distribution_caught"], 1),
                f"{r['auc']:.3f}",
                page.record(name),
            ]
        )
    return (
        table(
            [
                "evaluated on",
                "probe accuracy",
                "digits kept (G ≥ 0.87)",
                "non-digits caught (G < 0.87)",
                "ROC AUC of G",
                "record",
            ],
            rows,
        )
        + f"\n\n{provenance(page, 'mnist_probe_test')}"
    )


@block
def mnist_training(page: Page) -> str:
    r = load("mnist_triplet")
    return (
        f"Validation 10-way 1-shot accuracy of the best checkpoint (epoch {r['best_epoch']} of {r['epochs']}, still rising): "
        f"**{pm(r['accuracy'], r['ci95'])}** ({VAL}; wall time {r['wall_time']}).\n\n{provenance(page, 'mnist_triplet')}"
    )


@block
def mnist_margin_table(page: Page) -> str:
    data = load("mnist_margin_sweep")
    header = ["margin"] + [f"{r['margin']:.1f}" for r in data["rows"]]
    row = [f"10-way 1-shot, {VAL} (%)"] + [f"{r['val_10way_1shot']:.1f}" for r in data["rows"]]
    return table(header, [row]) + f"\n\n{provenance(page, 'mnist_margin_sweep')}"


@block
def darkshot_table(page: Page) -> str:
    return (
        _compare_table(page, "darkshot").replace(VAL, f"{TEST}: {load('darkshot')['split'][len('held-out test: ') :]}")
        + f"\n\n{provenance(page, 'darkshot')}"
    )


@block
def reproducing_table(page: Page) -> str:
    lit = load("literature")
    lfw = load("lfw_best")
    sig = load("signatures_test")
    probe = load("mnist_probe_test")
    dark = {r["name"]: r for r in load("darkshot")["rows"]}["triplet, squared Euclidean"]["results"]["10-way 1-shot"]
    e2e = load(RECIPE_END_TO_END)
    ek = lit["ekeany"]
    rows = [
        [
            "Koch et al. 2015, Omniglot 20-way 1-shot",
            f"{pct(lit['koch2015']['accuracy'], 1)}, {TEST} (Lake's 20 runs)",
            "`omniglot_cpu.yaml` (CPU recipe; `omniglot_koch.yaml` is the paper's protocol, GPU hours, not run to the end)",
            f"{pm(e2e['accuracy'], e2e['ci95'])}, {VAL}: not comparable like for like",
            page.record(RECIPE_END_TO_END),
        ],
        [
            "nevoit, LFW View 1",
            f"{pct(lit['nevoit']['accuracy'], 1)}, test pairs at threshold 0.5",
            "`lfw.yaml` (its protocol); `lfw_best.yaml` (our best)",
            f"`lfw_best.yaml`: {pct(lfw['metrics']['acc'])}, {VAL}; the test pairs are held back",
            page.record("lfw_best"),
        ],
        [
            "ekeany, MNIST softmax probe",
            f"{ek['probe_accuracy_range'][0]}-{ek['probe_accuracy_range'][1]}%, MNIST test",
            "`mnist_triplet.yaml`, then `lightning-siamese probe`",
            f"{pm(100 * probe['accuracy'], 100 * probe['accuracy_ci95'])}, {TEST}",
            page.record("mnist_probe_test"),
        ],
        [
            "ekeany, Gini out-of-distribution rule (0.87)",
            f"{ek['gini_digits_kept']}% digits kept, {ek['gini_nondigits_caught']}% non-digits caught (its own drawings)",
            "`probe --ood`",
            f"{pct(100 * probe['in_distribution_kept'], 1)} kept, {pct(100 * probe['out_of_distribution_caught'], 1)} caught "
            f"(Omniglot characters as non-digits), {TEST}",
            page.record("mnist_probe_test"),
        ],
        [
            "Reni's SigNet blog",
            "none published",
            "`signatures_cpu.yaml`",
            f"{sig['accuracy']['value']:.1f}% {interval(sig['accuracy']['ci95'])}, AUC {sig['auc']['value']:.3f}, {TEST} (10 unseen writers)",
            page.record("signatures_test"),
        ],
        [
            "DarkShotLearning",
            "none published",
            "`benchmarks/darkshot.py`",
            f"triplet 10-way 1-shot {pm(dark['accuracy'], dark['ci95'])}, {TEST} (Omniglot stands in for its images)",
            page.record("darkshot"),
        ],
    ]
    return table(["system", "original's number", "here", "ours (95% CI)", "record"], rows)


# ---------------------------------------------------------------- pages


def pages() -> list[Path]:
    found = [ROOT / "README.md"]
    if DOCS.is_dir():
        found += sorted(DOCS.rglob("*.md"))
    return found


def render_text(text: str, page: Page) -> tuple[str, list[str]]:
    """The page with every block re-rendered, and the names of the blocks whose content changed."""
    changed: list[str] = []

    def sub(match: re.Match) -> str:
        name, old = match.group(1), match.group(2)
        if name not in BLOCKS:
            raise RecordError(f"{page.rel}: unknown record block {name!r} (known: {', '.join(sorted(BLOCKS))})")
        body = BLOCKS[name](page)
        new = f"\n{body}\n" if old.startswith("\n") else body
        if new != old:
            changed.append(name)
        return f"<!-- record: {name} -->{new}<!-- /record -->"

    return BLOCK_RE.sub(sub, text), changed


def strip_unchecked(text: str) -> str:
    """The text outside record blocks, fenced and indented code and inline code."""
    text = BLOCK_RE.sub("", text)
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.DOTALL | re.MULTILINE)
    text = re.sub(r"^(?: {4}|\t).*$", "", text, flags=re.MULTILINE)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def hand_numbers(text: str) -> list[str]:
    problems = []
    for line in strip_unchecked(text).splitlines():
        problems += [m.group(0) for m in HAND_NUMBER_RE.finditer(line)]
    return problems


def check_page(text: str, rel: str) -> list[str]:
    """Problems with one page: blocks that differ from their records, hand-written numbers."""
    page = Page(rel)
    _, changed = render_text(text, page)
    problems = [
        f"{rel}: block '{name}' differs from its record(s); run python benchmarks/render_docs.py" for name in changed
    ]
    if rel not in NOTEBOOK_PAGES:
        for number in hand_numbers(text):
            problems.append(f"{rel}: number {number!r} written by hand outside a record block")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a page differs from its records"
    )
    args = parser.parse_args(argv)
    problems: list[str] = []
    for path in pages():
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        try:
            if args.check:
                problems += check_page(text, rel)
            else:
                new, changed = render_text(text, Page(rel))
                if changed:
                    path.write_text(new)
                    print(f"{rel}: rendered {', '.join(changed)}")
        except RecordError as err:
            problems.append(str(err))
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
