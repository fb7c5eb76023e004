"""``lightning-siamese retrieve`` and ``probe`` with a tiny checkpoint: results, files written, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from lightning_siamese.cli.main import main
from lightning_siamese.cli.tools.retrieve import retrieval_embeddings
from lightning_siamese.evaluation.probe import fit_probe
from lightning_siamese.evaluation.retrieval import NeighbourIndex, evaluate_retrieval
from lightning_siamese.inference.images import labelled_images
from lightning_siamese.inference.model import embed_paths, load_trained
from tests.data.test_mnist import write_mnist
from tests.tiny import write_characters


def test_retrieve_leave_one_out_queries_and_one_image(
    tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture
) -> None:
    gallery_dir = write_characters(tmp_path / "gallery", 4, range(1, 5))
    query_dir = write_characters(tmp_path / "queries", 4, range(5, 7))
    output = tmp_path / "out" / "loo.json"
    record = json.loads(
        (
            main(["retrieve", "--ckpt", str(ckpt), "--gallery", str(gallery_dir), "--output", str(output)]),
            output.read_text(),
        )[1]
    )
    model, data = load_trained(str(ckpt))
    items = labelled_images([str(gallery_dir)])
    # The tiny model's TripletHead normalises: retrieval ranks by distance between unit vectors.
    normalised = torch.nn.functional.normalize(embed_paths(model, data, [p for p, _ in items]), dim=1).numpy()
    gallery = NeighbourIndex(normalised, [c for _, c in items], [p for p, _ in items])
    raw = embed_paths(model, data, [p for p, _ in items]).numpy()
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1)
    assert np.allclose(retrieval_embeddings(model, data, [p for p, _ in items]), normalised, atol=1e-6)
    expected = evaluate_retrieval(gallery, ks=(1, 5))
    assert (record["protocol"], record["gallery_images"], record["identities"]) == ("leave-one-out", 16, 4)
    assert record["map@r"] == pytest.approx(expected.map_at_r) and record["precision@5"] == pytest.approx(
        expected.precision_at[5]
    )
    assert "Leave-one-out retrieval" in capsys.readouterr().out

    main(
        [
            "retrieve",
            "--ckpt",
            str(ckpt),
            "--gallery",
            str(gallery_dir),
            "--query",
            str(query_dir),
            "-k",
            "1",
            "3",
            "--output",
            str(output),
        ]
    )
    record = json.loads(output.read_text())
    queries = [p for p, _ in labelled_images([str(query_dir)])]
    query_embeddings = torch.nn.functional.normalize(embed_paths(model, data, queries), dim=1).numpy()
    expected = evaluate_retrieval(
        gallery, query_embeddings, [c for _, c in labelled_images([str(query_dir)])], ks=(1, 3)
    )
    assert (
        record["protocol"] == "queries"
        and record["queries"] == 8
        and record["precision@3"] == pytest.approx(expected.precision_at[3])
    )
    assert [len(n["nearest"]) for n in record["neighbours"]] == [3] * 8
    distances = [h["distance"] for h in record["neighbours"][0]["nearest"]]
    assert distances == sorted(distances)

    one = queries[0]
    capsys.readouterr()
    main(["retrieve", "--ckpt", str(ckpt), "--gallery", str(gallery_dir), "--query", one, "-k", "2"])
    printed = capsys.readouterr().out
    assert one in printed and "  2. char" in printed and "precision" not in printed


def test_retrieve_bad_input(tmp_path: Path, ckpt: Path) -> None:
    gallery_dir = write_characters(tmp_path / "gallery", 2, range(1, 3))
    with pytest.raises(FileNotFoundError, match=r"missing.ckpt: no such checkpoint file"):
        main(["retrieve", "--ckpt", str(tmp_path / "missing.ckpt"), "--gallery", str(gallery_dir)])
    (tmp_path / "notes.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes.ckpt is not a readable Lightning checkpoint"):
        main(["retrieve", "--ckpt", str(tmp_path / "notes.ckpt"), "--gallery", str(gallery_dir)])
    with pytest.raises(FileNotFoundError, match=r"image .*nowhere.png does not exist"):
        main(["retrieve", "--ckpt", str(ckpt), "--gallery", str(gallery_dir), "--query", str(tmp_path / "nowhere.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"folder .*empty holds no image files"):
        main(["retrieve", "--ckpt", str(ckpt), "--gallery", str(tmp_path / "empty")])
    with pytest.raises(FileNotFoundError, match=r"folder .*absent does not exist"):
        main(["retrieve", "--ckpt", str(ckpt), "--gallery", str(tmp_path / "absent")])
    with pytest.raises(ValueError, match=r"k=9: expected 1 <= k <= 3"):
        main(["retrieve", "--ckpt", str(ckpt), "--gallery", str(gallery_dir), "-k", "9"])


def test_probe_on_folders_with_ood_images(tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture) -> None:
    train, held_out = (
        write_characters(tmp_path / "train", 3, range(1, 7)),
        write_characters(tmp_path / "eval", 3, range(7, 10)),
    )
    ood = tmp_path / "ood"
    ood.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, size=(28, 28), dtype=np.uint8)).save(ood / f"noise{i}.png")
    output, roc = tmp_path / "probe.json", tmp_path / "figs" / "roc.png"
    args = [
        "probe",
        "--ckpt",
        str(ckpt),
        "--train",
        str(train),
        "--eval",
        str(held_out),
        "--ood",
        str(ood),
        "--gini_threshold",
        "0.5",
        "--roc",
        str(roc),
        "--output",
        str(output),
    ]
    main(args)
    record = json.loads(output.read_text())
    model, data = load_trained(str(ckpt))
    fit, test = labelled_images([str(train)]), labelled_images([str(held_out)])
    probe = fit_probe(embed_paths(model, data, [p for p, _ in fit]).numpy(), np.array([c for _, c in fit]))
    accuracy = (
        probe.predict(embed_paths(model, data, [p for p, _ in test]).numpy()) == np.array([c for _, c in test])
    ).mean()
    assert record["accuracy"] == pytest.approx(accuracy) and (record["train_images"], record["eval_images"]) == (18, 9)
    assert record["threshold"] == 0.5 and record["out_of_distribution_images"] == 6 and 0 <= record["auc"] <= 1
    assert Image.open(roc).size[0] > 300 and "Out-of-distribution (6 images" in capsys.readouterr().out
    main([*args, "--ood_invert"])
    assert json.loads(output.read_text())["ood_invert"] is True
    with pytest.raises(ValueError, match=r"probe needs --config .* or both --train and --eval"):
        main(["probe", "--ckpt", str(ckpt), "--train", str(train)])


def test_probe_on_a_configs_splits(tmp_path: Path, ckpt: Path) -> None:
    config = {
        "data": {
            "class_path": "lightning_siamese.data.MNISTDataModule",
            "init_args": {
                "root": str(tmp_path / "root"),
                "files": str(write_mnist(tmp_path / "files", n_train=60)),
                "val_size": 20,
            },
        }
    }
    (tmp_path / "mnist.yaml").write_text(yaml.safe_dump(config))
    output = tmp_path / "probe.json"
    main(
        [
            "probe",
            "--ckpt",
            str(ckpt),
            "--config",
            str(tmp_path / "mnist.yaml"),
            "--train_images",
            "30",
            "--eval_split",
            "test",
            "--output",
            str(output),
        ]
    )
    record = json.loads(output.read_text())
    assert (record["train_images"], record["eval_images"]) == (30, 20) and "test split" in record["eval"]
    config["data"]["init_args"]["image_size"] = 32
    (tmp_path / "mnist.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"loads 32 px images, but .*tiny.ckpt was trained on 28 px"):
        main(["probe", "--ckpt", str(ckpt), "--config", str(tmp_path / "mnist.yaml")])
