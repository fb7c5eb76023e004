"""Signatures end to end: ``lightning fit`` on development writers, ``lightning test`` on a folder
of unseen writers at the validation threshold, and ``lightning-siamese verify``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_siamese.cli.main import main
from lightning_siamese.data.datamodules.signatures import SignatureDataModule
from lightning_siamese.inference.images import read_image
from lightning_siamese.inference.model import load_trained
from tests.conftest import REPO
from tests.data.test_signatures import write_sign_data
from tests.test_cli import run_cli

pytestmark = pytest.mark.slow

TINY = [
    "--model.encoder.init_args.input_size",
    "[30, 44]",
    "--data.image_size",
    "[30, 44]",
    "--data.batch_size",
    "8",
    "--data.pairs_per_epoch",
    "16",
    "--data.references",
    "3",
    "--data.eval_pairs_per_writer",
    "10",
    "--trainer.logger.init_args.save_dir",
    "logs",
    "--trainer.enable_progress_bar",
    "false",
]


def test_fit_test_on_unseen_writers_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dev = write_sign_data(tmp_path / "dev", dict.fromkeys(range(1, 7), (6, 4)))
    unseen = write_sign_data(tmp_path / "unseen", dict.fromkeys((20, 21), (6, 4)))
    config = str(REPO / "experiments" / "signatures.yaml")
    run_cli(tmp_path, "fit", "--config", config, "--data.root", str(dev), "--trainer.max_epochs", "2", *TINY)
    run = tmp_path / "logs" / "signatures" / "version_0"
    last = run / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["SignatureDataModule"]["pixel_std"] > 0 and saved["writer_threshold_k"] is not None

    run_cli(
        tmp_path,
        "test",
        "--config",
        config,
        "--data.root",
        str(dev),
        "--data.test_root",
        str(unseen),
        "--ckpt_path",
        str(last),
        *TINY,
    )
    report = json.loads(next((tmp_path / "logs" / "signatures").glob("version_*/verification_test.json")).read_text())
    assert report["threshold_from"] == "validation" and report["threshold"] == pytest.approx(
        saved["verification_threshold"]
    )
    assert report["n_pairs"] == 2 * 10 and str(unseen) in report["pairs_file"]
    assert report["metrics"]["test/writer_k"] == pytest.approx(saved["writer_threshold_k"])
    assert 0 <= report["metrics"]["test/writer_acc"] <= 100

    # verify prepares a file as the test stage did (inverted, resized, divided by the training std).
    model, data = load_trained(str(last))
    module = SignatureDataModule(
        root=str(dev), test_root=str(unseen), image_size=[30, 44], references=3, eval_pairs_per_writer=10
    )
    module.load_state_dict(saved["SignatureDataModule"])
    module.setup("test")
    test_set = module.test_dataloader().dataset
    reference, questioned = unseen / "020" / "020_01.png", unseen / "020_forg" / "0120020_01.png"
    position = test_set.collection.paths.index(str(reference))
    assert torch.allclose(read_image(str(reference), data)[0], test_set[position][0])

    capsys.readouterr()
    main(["verify", str(reference), str(questioned), "--ckpt", str(last)])
    line = capsys.readouterr().out
    with torch.no_grad():
        score = float(model.similarity(read_image(str(reference), data), read_image(str(questioned), data)))
    decision = "GENUINE" if score >= saved["verification_threshold"] else "FORGED"
    assert f"score {score:.4f}" in line and line.strip().endswith(decision) and "validation" in line

    # --references: the writer's own threshold from their enrolled signatures.
    main(
        [
            "verify",
            str(reference),
            str(questioned),
            "--ckpt",
            str(last),
            "--references",
            *(str(unseen / "020" / f"020_0{n}.png") for n in (1, 2, 3)),
        ]
    )
    line = capsys.readouterr().out
    assert "the writer's 3 references, mean -" in line and ("GENUINE" in line or "FORGED" in line)
    with pytest.raises(ValueError, match="--threshold and --references each set the threshold"):
        main(
            [
                "verify",
                str(reference),
                str(questioned),
                "--ckpt",
                str(last),
                "--threshold",
                "0",
                "--references",
                str(unseen / "020"),
            ]
        )
    with pytest.raises(ValueError, match="at least two reference signatures"):
        main(["verify", str(reference), str(questioned), "--ckpt", str(last), "--references", str(reference)])
