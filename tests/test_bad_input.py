"""The bad-input catalogue: every case names the culprit (file, line, value) and what was expected.

Each case builds its bad input in a temporary folder and asserts the error type and the
words of the message that point at the culprit. More cases, with the CLI in a subprocess,
live beside the features they guard (test_cli.py, test_lfw_cli.py, data/test_*.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_siamese.data import (
    ClassBalancedSampler,
    KochAffine,
    LFWDataModule,
    OmniglotDataModule,
)
from lightning_siamese.data.sources.folder import load_image_folder
from lightning_siamese.data.sources.lfw import read_pairs, read_people
from lightning_siamese.data.sources.omniglot import load_lake_runs, load_omniglot
from lightning_siamese.evaluation.verification import verification_metrics
from lightning_siamese.inference.checkpoints import (
    check_checkpoint_file,
    check_checkpoint_model,
)
from lightning_siamese.models import CosFaceHead, KochEncoder, KochHead
from lightning_siamese.models.optim import resolve_param_groups
from tests.data.test_lfw_datamodule import write_lfw


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def lfw_with_pairs(tmp: Path, text: str) -> Path:
    root = write_lfw(tmp / "lfw")
    write(root / "pairsDevTrain.txt", text)
    return root


CASES: dict[str, tuple[Callable[[Path], object], type[Exception], str]] = {
    "Omniglot set missing": (
        lambda tmp: load_omniglot(tmp, ["images_background"]),
        FileNotFoundError,
        r"images_background.*not found",
    ),
    "Omniglot zip corrupt": (
        lambda tmp: load_omniglot(write(tmp / "images_background.zip", b"garbage").parent, ["images_background"]),
        ValueError,
        r"images_background.zip",
    ),
    "Omniglot alphabet misspelt": (
        lambda tmp: OmniglotDataModule(root=str(tmp), val_alphabets=["Oriya"], test_alphabets=["Oriya"]),
        ValueError,
        r"disjoint; both name \['Oriya'\]",
    ),
    "image folder missing": (
        lambda tmp: load_image_folder(tmp / "nowhere"),
        FileNotFoundError,
        r"nowhere does not exist: expected root/<class>/<image>",
    ),
    "image folder with an empty class": (
        lambda tmp: (tmp / "root" / "cats").mkdir(parents=True) or load_image_folder(tmp / "root"),
        ValueError,
        r"empty class folder .*cats",
    ),
    "Lake's runs missing": (lambda tmp: load_lake_runs(tmp / "runs", 105), FileNotFoundError, r"runs"),
    "LFW images missing": (
        lambda tmp: LFWDataModule(root=str(tmp)).setup("fit"),
        FileNotFoundError,
        r"LFW pair list .*pairsDevTrain.txt does not exist",
    ),
    "LFW pair line malformed": (
        lambda tmp: read_pairs(write(tmp / "pairs.txt", "1\nAnn\t1\t2\nBo\t1\n")),
        ValueError,
        r"pairs.txt, line 3: expected a mismatched 'name1 i name2 j' pair",
    ),
    "LFW pair count does not match": (
        lambda tmp: read_pairs(write(tmp / "pairs.txt", "2\nAnn\t1\t2\nBo\t1\tCy\t1\n")),
        ValueError,
        r"header says 1 fold\(s\) of 2 matched \+ 2 mismatched pairs \(4 lines\), but 2 pair lines follow",
    ),
    "LFW image number not a number": (
        lambda tmp: read_pairs(write(tmp / "pairs.txt", "1\nAnn\tone\t2\nBo\t1\tCy\t1\n")),
        ValueError,
        r"line 2: 'one' is not an image number",
    ),
    "LFW pair names a missing image": (
        lambda tmp: LFWDataModule(
            root=str(lfw_with_pairs(tmp, "2\nPA_Q\t1\t7\nPA_Q\t1\t2\nPA_Q\t1\tPB_Q\t1\nPA_Q\t2\tPB_Q\t1\n")),
            image_size=16,
            val_fraction=0.5,
        ).setup("fit"),
        FileNotFoundError,
        r"pairsDevTrain.txt, line 2: image 7 of PA_Q is not in LFW: .*PA_Q_0007.jpg does not exist",
    ),
    "LFW people list count mismatch": (
        lambda tmp: read_people(write(tmp / "people.txt", "3\nAnn\t2\n")),
        ValueError,
        r"the count says 3 people, 1 follow",
    ),
    "checkpoint missing": (
        lambda tmp: check_checkpoint_file(tmp / "gone.ckpt"),
        FileNotFoundError,
        r"gone.ckpt: no such checkpoint file",
    ),
    "checkpoint corrupt": (
        lambda tmp: check_checkpoint_file(write(tmp / "bad.ckpt", b"\x00" * 64)),
        ValueError,
        r"bad.ckpt is not a readable Lightning checkpoint",
    ),
    "checkpoint of another model": (
        lambda tmp: (
            torch.save(
                {
                    "state_dict": {},
                    "hyper_parameters": {
                        "_class_path": "lightning_siamese.models.SiameseModule",
                        "encoder": {
                            "class_path": "lightning_siamese.models.KochEncoder",
                            "init_args": {"embedding_dim": 128},
                        },
                    },
                },
                tmp / "other.ckpt",
            ),
            check_checkpoint_model(
                tmp / "other.ckpt",
                {
                    "class_path": "lightning_siamese.models.SiameseModule",
                    "init_args": {
                        "encoder": {
                            "class_path": "lightning_siamese.models.KochEncoder",
                            "init_args": {"embedding_dim": 32},
                        }
                    },
                },
            ),
        ),
        ValueError,
        r"other.ckpt holds another model than the config describes: encoder KochEncoder with embedding_dim=128 vs 32",
    ),
    "param_groups names no module": (
        lambda tmp: resolve_param_groups(KochHead(4).named_parameters(), [{"params": "encoder.fc"}]),
        ValueError,
        r"'encoder.fc' matches no parameter; modules with parameters: \['alpha'\]",
    ),
    "too few classes for a P x K batch": (
        lambda tmp: ClassBalancedSampler(np.array([0, 0, 1, 1]), classes_per_batch=3, images_per_class=2),
        ValueError,
        r"needs 3 classes with at least 2 images; the data has 2 such classes",
    ),
    "input too small for the Koch net": (
        lambda tmp: KochEncoder(input_size=20),
        ValueError,
        r"input_size=20 is too small",
    ),
    "distortion range upside down": (
        lambda tmp: KochAffine(scale=(1.2, 0.8)),
        ValueError,
        r"scale must be \(low, high\)",
    ),
    "verification labels not 0/1": (
        lambda tmp: verification_metrics(torch.tensor([0.1, 0.9]), torch.tensor([0, 2])),
        ValueError,
        r"labels must be 0 \(different\) or 1 \(same person\), got values \[0, 2\]",
    ),
    "CosFace with too few classes": (
        lambda tmp: CosFaceHead(4, num_classes=2).batch_loss(torch.randn(3, 4), torch.tensor([0, 1, 5])),
        ValueError,
        r"label 5 is beyond CosFaceHead's num_classes=2",
    ),
    "LFW training mode unknown": (
        lambda tmp: LFWDataModule(root=str(tmp), train_on="faces"),
        ValueError,
        r"train_on must be 'pairs' or 'people', got 'faces'",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_names_the_culprit(case: str, tmp_path: Path) -> None:
    build, error, message = CASES[case]
    with pytest.raises(error, match=message):
        build(tmp_path)


def test_the_catalogue_has_at_least_fifteen_cases() -> None:
    assert len(CASES) >= 15
