"""``lightning-siamese compare`` and ``tsne``: baselines and checkpoints on the same episodes, pictures of a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lightning_siamese.cli.main import main
from lightning_siamese.data.samplers.episodes import Episodes
from lightning_siamese.data.transforms.views import AlignmentViews
from lightning_siamese.evaluation.baselines import make_baseline
from lightning_siamese.evaluation.compare import (
    Row,
    check_same_episodes,
    markdown_table,
)
from lightning_siamese.evaluation.oneshot import (
    AlignedSimilarity,
    OneShotResult,
    episode_accuracies,
    summarize,
)
from lightning_siamese.inference.config import data_module_from_config
from lightning_siamese.inference.model import load_trained
from lightning_siamese.models.embedding import embed_aligned, embed_all
from tests.test_cli import run_cli, tiny_config


@pytest.fixture
def config(tmp_path: Path, tiny_omniglot: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_omniglot)))
    return path


def result(accuracy: float, n_way: int) -> OneShotResult:
    return OneShotResult(accuracy, 1.5, n_way, 1, 1, 100, 0)


def test_markdown_table_has_a_row_per_scorer_and_a_column_per_task() -> None:
    rows = [
        Row("pixel", "baseline", {"20-way 1-shot": result(21.0, 20), "5-way 1-shot": result(40.5, 5)}),
        Row("net", "ckpt", {"20-way 1-shot": result(86.845, 20)}),
    ]
    lines = markdown_table(rows, "Caption.").splitlines()
    assert lines[0] == "Caption." and lines[2] == "| model | 20-way 1-shot (%) | 5-way 1-shot (%) | details |"
    assert lines[4] == "| pixel | 21.00 ± 1.50 | 40.50 ± 1.50 | baseline |"
    assert lines[5] == "| net | 86.84 ± 1.50 | - | ckpt |"


def test_other_episodes_are_refused() -> None:
    support = torch.arange(12).reshape(2, 3, 2)
    a = Episodes(support, support + 20, torch.zeros(2, 3, dtype=torch.long), 4)
    check_same_episodes(a, Episodes(support.clone(), support + 20, torch.zeros(2, 3, dtype=torch.long), 4), "x")
    with pytest.raises(ValueError, match=r"checkpoint c.ckpt gives other episodes than the table's"):
        check_same_episodes(
            a, Episodes(support.flip(0), support + 20, torch.zeros(2, 3, dtype=torch.long), 4), "checkpoint c.ckpt"
        )


def test_compare_scores_every_baseline_on_the_configs_episodes(config: Path, tmp_path: Path) -> None:
    output = tmp_path / "table.md"
    main(
        [
            "compare",
            "--config",
            str(config),
            "--baselines",
            "chance",
            "pixel",
            "knn",
            "--n_way",
            "5",
            "3",
            "--tasks",
            "15",
            "--output",
            str(output),
        ]
    )
    record = json.loads(output.with_suffix(".json").read_text())
    assert (
        record["tasks"] == 15 and record["seed"] == 99 and record["split"] == "val"
    )  # the config's oneshot_report seed
    data, _ = data_module_from_config(config)
    for row in record["rows"]:
        for n_way in (5, 3):
            evaluation = data.evaluation_set("val", n_way=n_way, k_shot=1, tasks=15, seed=99)
            expected = summarize(
                make_baseline(row["name"], 99).accuracies(evaluation.collection.images, evaluation.episodes),
                evaluation.episodes,
            )
            assert row["results"][f"{n_way}-way 1-shot"]["accuracy"] == pytest.approx(expected.accuracy)
    table = output.read_text()
    assert (
        "| knn |" in table
        and "5-way 1-shot (%)" in table
        and "3-way 1-shot (%)" in table
        and "15 episodes per task" in table
    )


@pytest.mark.slow
def test_categorical_cnn_fits_pictures_itself_and_joins_the_table(config: Path, tmp_path: Path) -> None:
    """`lightning fit` trains the classifier head with the t-SNE callback on; the checkpoint is then
    scored beside the baselines (loaded at its own size when the table's config uses another) and drawn by `tsne`."""
    settings = yaml.safe_load(config.read_text())
    settings["model"]["init_args"]["head"] = {
        "class_path": "lightning_siamese.models.ClassifierHead",
        "init_args": {"num_classes": 12},
    }
    settings["data"]["init_args"] |= {"batch_kind": "classes", "images_per_class": 1, "batch_size": 8}
    settings["trainer"]["max_epochs"] = 1
    settings["projector"] = {"classes": 3, "split": "val"}
    config.write_text(yaml.safe_dump(settings))
    run_cli(config.parent, "fit", "--config", str(config))
    run = config.parent / "logs" / "tiny" / "version_0"
    assert (run / "tsne_val.png").is_file() and (run / "projector_config.pbtxt").is_file()
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert "val/tsne" in events.Tags()["images"]
    (ckpt,) = list((run / "checkpoints").glob("epoch=*.ckpt"))

    settings["data"]["init_args"]["image_size"] = 20  # the table's baselines at 20 px, the network at its 28
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(settings))
    output = tmp_path / "table.md"
    main(
        [
            "compare",
            "--config",
            str(small),
            "--baselines",
            "chance",
            "--tasks",
            "12",
            "--ckpt",
            f"cnn={ckpt}",
            "--output",
            str(output),
        ]
    )
    rows = {r["name"]: r for r in json.loads(output.with_suffix(".json").read_text())["rows"]}
    model, _ = load_trained(str(ckpt))
    evaluation = data_module_from_config(config)[0].evaluation_set("val", tasks=12, seed=99)
    per_task = episode_accuracies(
        embed_all(model, evaluation.collection.images), evaluation.episodes, model.head.similarity
    )
    assert rows["cnn"]["results"]["5-way 1-shot"]["accuracy"] == pytest.approx(float(per_task.mean()))
    assert "ClassifierHead, 28 px" in output.read_text() and "baseline, 20 px" in output.read_text()
    # --eval_shift scores the checkpoint with test-time shifts it was not trained with.
    main(
        [
            "compare",
            "--config",
            str(config),
            "--baselines",
            "--tasks",
            "12",
            "--ckpt",
            f"cnn={ckpt}",
            "--eval_shift",
            "1",
            "--output",
            str(output),
        ]
    )
    (shifted,) = json.loads(output.with_suffix(".json").read_text())["rows"]
    model.eval_shift = 1
    per_task = episode_accuracies(
        embed_all(model, evaluation.collection.images), evaluation.episodes, model.head.similarity
    )
    assert shifted["results"]["5-way 1-shot"]["accuracy"] == pytest.approx(float(per_task.mean()))
    assert "28 px, eval_shift 1" in output.read_text()
    # --align scores it with test-time alignment over the config's oneshot_report.align views.
    settings["oneshot_report"]["align"] = {"scales": [1.0], "angles": [5.0]}  # 3 x 3 shifts + 1 rotation
    config.write_text(yaml.safe_dump(settings))
    main(
        [
            "compare",
            "--config",
            str(config),
            "--baselines",
            "--tasks",
            "12",
            "--ckpt",
            f"cnn={ckpt}",
            "--align",
            "--output",
            str(output),
        ]
    )
    (aligned,) = json.loads(output.with_suffix(".json").read_text())["rows"]
    model.eval_shift = 0
    views = AlignmentViews(scales=(1.0,), angles=(5.0,))
    table = embed_aligned(model, evaluation.collection.images, views)
    per_task = episode_accuracies(table, evaluation.episodes, AlignedSimilarity(model.head.pairwise_similarity, 10))
    assert aligned["results"]["5-way 1-shot"]["accuracy"] == pytest.approx(float(per_task.mean()))
    assert "28 px, aligned over 10 views" in output.read_text()
    # --precision bf16-mixed embeds under Lightning's bf16 autocast, as a bf16-mixed trainer's report does.
    main(
        [
            "compare",
            "--config",
            str(config),
            "--baselines",
            "--tasks",
            "12",
            "--ckpt",
            f"cnn={ckpt}",
            "--precision",
            "bf16-mixed",
            "--output",
            str(output),
        ]
    )
    (bf16,) = json.loads(output.with_suffix(".json").read_text())["rows"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        table = embed_all(model, evaluation.collection.images)
    assert table.dtype == torch.bfloat16
    per_task = episode_accuracies(table.float(), evaluation.episodes, model.head.similarity)
    assert bf16["results"]["5-way 1-shot"]["accuracy"] == pytest.approx(float(per_task.mean()))
    assert "28 px, embedded at bf16-mixed" in output.read_text()
    with pytest.raises(ValueError, match="--precision must be 32, bf16-mixed or 16-mixed, got 'bf16'"):
        main(["compare", "--config", str(config), "--baselines", "--ckpt", str(ckpt), "--precision", "bf16"])
    with pytest.raises(ValueError, match=r"give --eval_shift \(1\) or --align, not both"):
        main(["compare", "--config", str(config), "--baselines", "--ckpt", str(ckpt), "--align", "--eval_shift", "1"])

    png = tmp_path / "pictures" / "tsne.png"
    main(["tsne", "--ckpt", str(ckpt), "--classes", "2", "--logdir", str(tmp_path / "pictures"), "--output", str(png)])
    assert png.is_file() and (tmp_path / "pictures" / "projector_config.pbtxt").is_file()
    with pytest.raises(ValueError, match="cannot show 9 classes: the collection has 5"):
        main(["tsne", "--ckpt", str(ckpt), "--classes", "9", "--logdir", str(tmp_path / "pictures")])
    alone = Path(shutil.copy(ckpt, tmp_path / "alone.ckpt"))  # no run folder, so no config beside it
    with pytest.raises(
        FileNotFoundError, match=r"no config .*config.yaml beside checkpoint .*alone.ckpt: pass --config"
    ):
        main(["tsne", "--ckpt", str(alone)])
