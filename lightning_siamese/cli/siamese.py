"""The ``lightning-siamese`` command (also ``python -m lightning_siamese.cli.siamese``): tools beside ``lightning``.

``lightning-siamese baseline mhd --runs_dir data/omniglot`` scores a baseline on Lake's 20
runs; ``lightning-siamese baseline pixel --config experiments/omniglot.yaml`` scores it on
the episodes that config's end-of-run report scores a network on (same split, task, number
of tasks and seed), through the same evaluation code. ``lightning-siamese view2 --config
experiments/lfw.yaml`` runs LFW's View 2 protocol: a fit and a test per fold, then the mean
accuracy and its standard error.

The subcommands that use a trained checkpoint live here (``verify``, ``embed``, ``export``)
or in their own modules, registered in :func:`build_parser`: ``enroll``/``identify``/``remove``
(gallery.py), ``compare`` (comparison.py), ``tsne`` (projector.py), ``sweep`` (sweep.py),
``report`` (report.py), ``retrieve``/``probe`` (analysis.py). ``lightning-siamese --help``
lists them all.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

from lightning_siamese.cli.tools import analysis, gallery, report, sweep
from lightning_siamese.cli.tools import compare as comparison
from lightning_siamese.cli.tools import tsne as projector
from lightning_siamese.data.sources.omniglot import load_lake_runs
from lightning_siamese.evaluation.baselines import BASELINES, make_baseline
from lightning_siamese.evaluation.oneshot import (
    format_named_tasks,
    named_task_record,
    summarize,
)
from lightning_siamese.inference.config import (
    baseline_images,
    data_module_from_config,
    report_settings,
)
from lightning_siamese.inference.images import image_paths, read_image
from lightning_siamese.inference.model import (
    Embedder,
    decision_threshold,
    embed_paths,
    load_trained,
    writer_threshold,
)


def run_baseline(args: argparse.Namespace) -> dict:
    """Score one baseline as ``args`` say; print the result and return its JSON record."""
    start = time.time()
    data, report = (None, {}) if args.config is None else data_module_from_config(args.config, args.image_size)
    settings = report_settings(args, report)
    baseline = make_baseline(args.name, settings["seed"])
    if args.runs_dir is not None:
        image_size = args.image_size or (data.image_size if data is not None else 105)
        ink_fill = getattr(data, "ink_fill", None)  # the config's preparation of Omniglot's images, if it has one
        collection, episodes = load_lake_runs(args.runs_dir, image_size, invert=True, download=args.download, ink_fill=ink_fill)
        per_task = baseline.accuracies(collection.images, episodes)
        record = named_task_record(per_task, collection.group_names, episodes)
        record |= {"baseline": args.name, "runs_dir": str(args.runs_dir), "image_size": image_size}
        print(format_named_tasks(f"{args.name} baseline on Lake's runs ({args.runs_dir}, {image_size} px)", record))
    else:
        evaluation = data.evaluation_set(
            settings["split"], n_way=settings["n_way"], k_shot=settings["k_shot"], tasks=settings["tasks"], seed=settings["seed"]
        )
        images = baseline_images(data, evaluation.collection.images)
        result = summarize(baseline.accuracies(images, evaluation.episodes), evaluation.episodes)
        record = {"baseline": args.name, "config": str(args.config), "split": settings["split"], **result.as_dict()}
        record["image_size"] = data.image_size
        print(f"{args.name} baseline on the {settings['split']} split of {args.config} ({data.image_size} px): {result}")
    print(f"  ({time.time() - start:.1f} s)")
    if args.output is not None:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(record, indent=2) + "\n")
        print(f"  written to {args.output}")
    return record


def run_view2(args: argparse.Namespace, extra: list[str]) -> dict:
    """LFW View 2: for each fold, ``lightning fit`` with ``view2_fold`` then ``lightning test`` of its best checkpoint.

    Each fold is its own run under ``<save_dir>/<name>/fold<k>`` (TensorBoard, checkpoints)
    and ``fold<k>_test``; a fold whose ``verification_test.json`` exists is not run again,
    so an interrupted protocol resumes. A fold that fails is recorded and the others go on.
    """
    base = Path(args.save_dir) / args.name
    folds = [int(k) for k in args.folds.split(",")]
    records = []
    for fold in folds:
        test_dir = base / f"fold{fold}_test"
        report = test_dir / "verification_test.json"
        common = ["--config", args.config, "--data.view2_fold", str(fold), "--trainer.logger.init_args.save_dir", args.save_dir,
                  "--trainer.logger.init_args.name", args.name, *extra]
        if not report.exists():
            fit = [sys.executable, "-m", "lightning_siamese", "fit", *common, "--trainer.logger.init_args.version", f"fold{fold}"]
            if subprocess.call(fit) != 0:
                records.append({"fold": fold, "error": f"fit failed: {' '.join(fit)}"})
                continue
            best = sorted(p for p in (base / f"fold{fold}" / "checkpoints").glob("*.ckpt") if not p.name.startswith("last"))
            ckpt = best[-1] if best else base / f"fold{fold}" / "checkpoints" / "last.ckpt"
            test = [sys.executable, "-m", "lightning_siamese", "test", *common,
                    "--trainer.logger.init_args.version", f"fold{fold}_test", "--ckpt_path", str(ckpt)]
            if subprocess.call(test) != 0 or not report.exists():
                records.append({"fold": fold, "error": f"test failed: {' '.join(test)}"})
                continue
        result = json.loads(report.read_text())
        records.append({"fold": fold, "accuracy": result["accuracy"], "auc": result["auc"], "eer": result["eer"],
                        "threshold": result["threshold"], "checkpoint": result["checkpoint"]})
    done = [r["accuracy"] for r in records if "accuracy" in r]
    mean = sum(done) / len(done) if done else math.nan
    se = math.sqrt(sum((a - mean) ** 2 for a in done) / (len(done) - 1) / len(done)) if len(done) > 1 else math.nan
    summary = {"config": args.config, "folds": records, "accuracy": mean, "standard_error": se, "completed": len(done)}
    base.mkdir(parents=True, exist_ok=True)
    (base / "view2.json").write_text(json.dumps(summary, indent=2) + "\n")
    for r in records:
        print(f"  fold {r['fold']}: " + (f"{r['accuracy']:.2f}% (AUC {r['auc']:.4f})" if "accuracy" in r else r["error"]))
    print(f"LFW View 2, {len(done)} of {len(folds)} folds: accuracy {mean:.2f}% +- {se:.2f} (standard error); "
          f"written to {base / 'view2.json'}")
    return summary


def run_embed(args: argparse.Namespace) -> None:
    """Embed image files with a checkpoint; write ``.npz`` (embeddings, paths) or ``.csv`` (path, e0, e1, ...)."""
    import numpy as np

    model, data = load_trained(args.ckpt)
    paths = image_paths(args.inputs)
    embeddings = embed_paths(model, data, paths).numpy()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".csv":
        rows = [",".join(["path", *(f"e{j}" for j in range(embeddings.shape[1]))])]
        rows += [",".join([json.dumps(p), *(f"{v:.7g}" for v in row)]) for p, row in zip(paths, embeddings)]
        output.write_text("\n".join(rows) + "\n")
    elif output.suffix == ".npz":
        np.savez(output, embeddings=embeddings, paths=np.array(paths))
    else:
        raise ValueError(f"--output {output}: expected a .npz or .csv file name")
    print(f"Wrote {len(paths)} embeddings of dimension {embeddings.shape[1]} to {output}")


def run_export(args: argparse.Namespace) -> None:
    """Export the embedding network to TorchScript (``.pt``) or ONNX (``.onnx``), batch size free."""
    model, data = load_trained(args.ckpt)
    embedder = Embedder(model).eval()
    size = data["image_size"]
    height, width = (size, size) if isinstance(size, int) else size  # signatures: [height, width]
    example = torch.rand(2, data.get("channels", 1), height, width)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".pt":
        torch.jit.trace(embedder, example).save(str(output))
    elif output.suffix == ".onnx":
        try:
            import onnx  # noqa: F401 - torch.onnx needs it
        except ImportError:
            raise SystemExit("ONNX export needs the onnx and onnxscript packages: pip install 'lightning-siamese[export]'") from None
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(embedder, (example,), str(output), input_names=["images"], output_names=["embeddings"],
                          dynamic_shapes=({0: batch},), dynamo=True)
    else:
        raise ValueError(f"--output {output}: expected .pt (TorchScript) or .onnx")
    print(f"Exported the embedding network of {args.ckpt} to {output}: input float images "
          f"[batch, {example.shape[1]}, {example.shape[2]}, {example.shape[3]}] in [0, 1], output [batch, embedding]")


def run_verify(args: argparse.Namespace) -> dict:
    """Score two images with a checkpoint; same or different at the threshold it keeps (or --threshold)."""
    model, data = load_trained(args.ckpt)
    first, second = read_image(args.first, data), read_image(args.second, data)
    with torch.no_grad():
        score = float(model.similarity(first, second))
    if args.references and args.threshold is not None:
        raise ValueError("--threshold and --references each set the threshold: give one of them")
    if args.references:
        threshold, source = writer_threshold(model, data, args.ckpt, image_paths(args.references))
    else:
        threshold, source = decision_threshold(model, args.ckpt, args.threshold)
    record = {"first": args.first, "second": args.second, "score": score, "threshold": threshold,
              "threshold_from": source, "same": score >= threshold, "checkpoint": args.ckpt}
    words = ("GENUINE", "FORGED") if data.get("kind") == "signatures" else ("SAME", "DIFFERENT")
    print(f"{args.first} vs {args.second}: score {score:.4f}, threshold {threshold:.4f} from {source}: "
          f"{words[0] if record['same'] else words[1]}")
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightning-siamese", description="Tools beside the `lightning` command.")
    commands = parser.add_subparsers(dest="command", required=True)
    baseline = commands.add_parser(
        "baseline",
        help="score a baseline (mhd, pixel, knn, chance) on Lake's 20 runs or on a config's episodes",
        description=(
            "Score a fixed baseline with the same N-way K-shot evaluation as the networks: on Lake's 20 "
            "runs (--runs_dir) or on the val/test episodes of a config's data module (--config; by default "
            "the split, task, tasks and seed of its end-of-run report, so the numbers compare with "
            "oneshot_<split>.json). Prints accuracy +- 95% CI."
        ),
    )
    baseline.add_argument(
        "name",
        choices=BASELINES,
        help="mhd: Lake et al.'s modified Hausdorff distance between ink pixels; pixel: nearest neighbour "
        "in pixel space (Euclidean; K shots by mean distance); knn: scikit-learn's 1-nearest-neighbour classifier on "
        "raw pixels, fitted on each episode's support set (K shots: the nearest shot); chance: random scores (--seed)",
    )
    baseline.add_argument("--runs_dir", help="Lake's runs: a folder holding run01/..., a folder with all_runs/ or all_runs.zip, or the zip")
    baseline.add_argument("--config", help="a `lightning` YAML config whose data module supplies the episodes (and the image size)")
    baseline.add_argument("--split", choices=("val", "test"), help="which split's episodes (default: the config's oneshot_report, else val)")
    baseline.add_argument("--tasks", type=int, help="number of episodes (default: the config's oneshot_report, else 1000)")
    baseline.add_argument("--seed", type=int, help="seed of the episodes and of the chance scores (default: the config's oneshot_report, else 1234)")
    baseline.add_argument("--n_way", type=int, help="ways per task (default: the data module's)")
    baseline.add_argument("--k_shot", type=int, help="shots per way (default: the data module's)")
    baseline.add_argument(
        "--image_size",
        type=int,
        help="load the images at this size (default: the config's image_size; 105, Omniglot's own, for runs without a config). "
        "MHD is defined on full-resolution binary images: Lake's 38.8%% error is at 105 px",
    )
    baseline.add_argument("--download", action="store_true", help="fetch Lake's all_runs.zip into --runs_dir when it is not there")
    baseline.add_argument("--output", help="write the result as JSON to this file")
    view2 = commands.add_parser(
        "view2",
        help="LFW View 2: train and test once per fold of pairs.txt, report mean accuracy +- standard error",
        description=(
            "LFW's official protocol: for each fold k, `lightning fit --config CONFIG --data.view2_fold k` "
            "(training on the other folds' pairs, validating on a share of them), then `lightning test` of "
            "that run's best checkpoint on fold k with the threshold chosen on validation. Arguments it does "
            "not know are passed to both commands (e.g. --trainer.max_epochs 5). Finished folds are skipped "
            "when run again."
        ),
    )
    view2.add_argument("--config", required=True, help="an LFW `lightning` config, e.g. experiments/lfw.yaml")
    view2.add_argument("--folds", default="1,2,3,4,5,6,7,8,9,10", help="comma-separated folds to run (default: all 10)")
    view2.add_argument("--save_dir", default="logs", help="where the runs go (default: logs)")
    view2.add_argument("--name", default="lfw_view2", help="experiment folder under save_dir (default: lfw_view2)")
    verify = commands.add_parser(
        "verify",
        help="score two images with a checkpoint: same or different",
        description=(
            "Prepare both images as the checkpoint's data module did (channels, centre crop, size, inversion), "
            "score them with its head, and compare with the threshold chosen on validation that the checkpoint "
            "keeps (or --threshold; 0.5 for a probability head without one). For a signature checkpoint the first "
            "image is the reference and the answer is GENUINE or FORGED; --references fits the writer's own threshold."
        ),
    )
    verify.add_argument("first", help="an image file")
    verify.add_argument("second", help="an image file")
    verify.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    verify.add_argument("--threshold", type=float, help="override the stored threshold")
    verify.add_argument("--references", nargs="+", help="signatures: the writer's genuine references (files or folders); "
                        "decide at the writer's own threshold, mean - k std of their mutual scores (k from validation)")
    embed = commands.add_parser("embed", help="embed image files or folders with a checkpoint",
                                description="Embed images (files, or folders searched recursively) as the checkpoint's "
                                "data module prepares them; write .npz (embeddings, paths) or .csv (path, e0, e1, ...).")
    embed.add_argument("inputs", nargs="+", help="image files or folders")
    embed.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    embed.add_argument("--output", required=True, help="embeddings.npz or embeddings.csv")
    export = commands.add_parser("export", help="export the embedding network to TorchScript or ONNX",
                                 description="Export a checkpoint's encoder (with eval_flip and eval_shift if they were on) as TorchScript "
                                 "(.pt) or ONNX (.onnx); input float images in [0, 1], any batch size.")
    export.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    export.add_argument("--output", required=True, help="encoder.pt (TorchScript) or encoder.onnx")
    enroll = commands.add_parser(
        "enroll", help="add labelled images to a gallery of embeddings (new classes without retraining)",
        description="Embed labelled images with a checkpoint and add them to GALLERY (created if absent; written "
        "atomically, so a failed enrollment leaves it as it was). In each folder named, every folder holding images is a "
        "class named by its path under it (images directly in the folder form a class named after it); --list adds "
        "'path,class' lines. Images already enrolled are skipped. File format: see lightning_siamese/gallery.py.")
    enroll.add_argument("gallery", help="the gallery file, e.g. gallery.pt")
    enroll.add_argument("folders", nargs="*", help="folders of class folders, or of one class's images")
    enroll.add_argument("--list", dest="list_file", help="a CSV file of 'path,class' lines (paths relative to it)")
    enroll.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`; the gallery is tied to its model")
    enroll.add_argument("--skip_bad_images", action="store_true",
                        help="skip (and name) images that cannot be decoded instead of stopping with nothing enrolled")
    identify = commands.add_parser(
        "identify", help="name the gallery class of query images, or 'unknown'",
        description="Score each query image against the gallery with the model's own similarity (class prototypes = "
        "mean member embedding, or the nearest member) and print the best class, or 'unknown' when its score is below "
        "the threshold: --threshold, else the checkpoint's validation threshold (0.5 for a probability head without one).")
    identify.add_argument("gallery", help="a gallery file written by `lightning-siamese enroll`")
    identify.add_argument("inputs", nargs="+", help="query image files or folders")
    identify.add_argument("--ckpt", required=True, help="the checkpoint that built the gallery")
    identify.add_argument("--threshold", type=float, help="scores below it answer 'unknown' (default: the checkpoint's)")
    identify.add_argument("--scoring", choices=("prototype", "nearest"), default="prototype",
                          help="score against each class's mean embedding (default) or its nearest member")
    identify.add_argument("--chunk_size", type=int, default=1024,
                          help="gallery rows scored at a time; bounds the search's memory (default 1024)")
    identify.add_argument("--output", help="write the answers as JSON to this file")
    remove = commands.add_parser("remove", help="drop classes from a gallery", description="Drop whole classes from GALLERY.")
    remove.add_argument("gallery", help="a gallery file")
    remove.add_argument("classes", nargs="+", help="class names, as `identify` prints them")
    comparison.add_compare_parser(commands)
    projector.add_tsne_parser(commands)
    sweep.add_sweep_parser(commands)
    report.add_report_parser(commands)
    analysis.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "view2":
        run_view2(args, extra)
        return
    if args.command in ("sweep", "report"):
        {"sweep": sweep.main, "report": report.main}[args.command](parser, args, extra)
        return
    # view2 and sweep pass unknown arguments on to `lightning` (report refuses them itself); the rest take none.
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in ("compare", "tsne"):
        comparison.run_compare(args) if args.command == "compare" else projector.run_tsne(args)
        return
    if args.command in ("retrieve", "probe"):
        {"retrieve": analysis.run_retrieve, "probe": analysis.run_probe}[args.command](args)
        return
    if args.command in ("verify", "embed", "export"):
        {"verify": run_verify, "embed": run_embed, "export": run_export}[args.command](args)
        return
    if args.command in ("enroll", "identify", "remove"):
        if args.command == "enroll":
            gallery.run_enroll(args.gallery, args.ckpt, args.folders, args.list_file, args.skip_bad_images)
        elif args.command == "identify":
            gallery.run_identify(args.gallery, args.ckpt, args.inputs, args.threshold, args.scoring, args.chunk_size, args.output)
        else:
            gallery.run_remove(args.gallery, args.classes)
        return
    if args.runs_dir is None and args.config is None:
        parser.error("baseline needs --runs_dir (Lake's runs) or --config (a config's episodes)")
    run_baseline(args)


if __name__ == "__main__":
    main()
