"""Signature sources (sign_data and CEDAR layouts), pairs, and the writer-independent data module."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightning_siamese.data.datamodules.signatures import SignatureDataModule
from lightning_siamese.data.samplers.pairs import SignaturePairSampler, evaluation_pairs
from lightning_siamese.data.sources.signatures import find_signatures, load_signatures
from lightning_siamese.data.transforms.views import to_float


def signature_image(writer: int, number: int, forged: bool, size: tuple[int, int] = (30, 44)) -> Image.Image:
    """Dark strokes on white: a writer-specific curve, jittered per signature, distorted when forged."""
    height, width = size
    canvas = np.full(size, 255, dtype=np.uint8)
    rng = np.random.default_rng([writer, number, int(forged)])
    phase, freq = writer * 0.7, 1 + writer % 3
    for x in range(2, width - 2):
        wobble = 3 * rng.standard_normal() if forged else 0.5 * rng.standard_normal()
        y = int(height / 2 + height / 4 * np.sin(freq * x / width * 2 * np.pi + phase) + wobble)
        canvas[max(y - 1, 0) : y + 1, x] = 0
    return Image.fromarray(canvas)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def signature_files(writers: dict[int, tuple[int, int]], genuine_name, forged_name) -> dict[str, bytes]:
    """Each writer's genuine and forged PNGs under the names the two callables give (writer, number)."""
    files = {}
    for w, (genuine, forged) in writers.items():
        files |= {genuine_name(w, n): png(signature_image(w, n, False)) for n in range(1, genuine + 1)}
        files |= {forged_name(w, n): png(signature_image(w, n, True)) for n in range(1, forged + 1)}
    return files


def sign_data_files(writers: dict[int, tuple[int, int]], top: str = "") -> dict[str, bytes]:
    """``<top>/<writer>/<writer>_NN.png`` genuine and ``<top>/<writer>_forg/<forger><writer>_NN.png``."""
    return signature_files(
        writers,
        lambda w, n: f"{top}{w:03d}/{w:03d}_{n:02d}.png",
        lambda w, n: f"{top}{w:03d}_forg/{100 + w:04d}{w:03d}_{n:02d}.png",
    )


def write_files(root: Path, files: dict[str, bytes], as_zip: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if as_zip:
        with zipfile.ZipFile(root / as_zip, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        return root
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def write_sign_data(root: Path, writers: dict[int, tuple[int, int]], as_zip: str | None = None) -> Path:
    return write_files(root, sign_data_files(writers, "sign_data/" if as_zip else ""), as_zip)


def write_cedar(root: Path, writers: dict[int, tuple[int, int]]) -> Path:
    return write_files(
        root,
        signature_files(
            writers, lambda w, n: f"full_org/original_{w}_{n}.png", lambda w, n: f"full_forg/forgeries_{w}_{n}.png"
        ),
    )


WRITERS = dict.fromkeys(range(1, 9), (8, 5))


# --- sources ------------------------------------------------------------------------


def test_sign_data_folder_is_read_inverted_and_resized(tmp_path: Path) -> None:
    files = find_signatures(write_sign_data(tmp_path / "signs", {1: (3, 2), 2: (4, 3)}))
    assert files.layout == "sign_data" and files.writers == ["001", "002"]
    assert [len(files.files["002"][k]) for k in ("genuine", "forged")] == [4, 3]
    collection = load_signatures(files, (20, 32))
    assert collection.images.shape == (12, 1, 20, 32)
    assert collection.class_names == ["001/genuine", "001/forged", "002/genuine", "002/forged"]
    assert collection.group_names == ["001", "002"]
    # Inverted: the white paper is dark, the ink bright.
    assert float(collection.images.float().median()) < 30 and int(collection.images.max()) > 128


def test_sign_data_zip_with_a_top_folder_is_found_in_its_folder(tmp_path: Path) -> None:
    root = write_sign_data(tmp_path / "data", {1: (3, 2), 5: (2, 2)}, as_zip="sign_data_dev.zip")
    files = find_signatures(root)
    assert files.archive == root / "sign_data_dev.zip" and files.writers == ["001", "005"]
    collection = load_signatures(files, (24, 24), writers=["005"])
    assert len(collection) == 4 and collection.paths[0].startswith(f"{root / 'sign_data_dev.zip'}:sign_data/005/")


def test_cedar_layout_is_parsed_by_writer_number(tmp_path: Path) -> None:
    files = find_signatures(write_cedar(tmp_path / "cedar", {2: (3, 2), 10: (2, 4)}))
    assert files.layout == "cedar" and files.writers == ["10", "2"]  # names; the loader keeps numeric order
    assert list(files.files) == ["2", "10"]
    assert [len(files.files["10"][k]) for k in ("genuine", "forged")] == [2, 4]


def test_writer_with_genuine_signatures_but_no_forgeries_is_named(tmp_path: Path) -> None:
    files = sign_data_files({1: (3, 2), 2: (3, 2)})
    files = {k: v for k, v in files.items() if not k.startswith("002_forg")}
    root = write_files(tmp_path / "signs", files)
    with pytest.raises(
        ValueError, match=r"writer 002 has 3 genuine signatures in 002 but no forgeries: expected images in 002_forg"
    ):
        find_signatures(root)


def test_forgery_folder_without_its_writer_folder_is_named(tmp_path: Path) -> None:
    files = {k: v for k, v in sign_data_files({1: (3, 2), 7: (3, 2)}).items() if not k.startswith("007/")}
    root = write_files(tmp_path / "signs", files)
    with pytest.raises(
        ValueError,
        match=r"007_forg holds 2 forgeries of writer 007, but that writer's genuine signatures "
        r"are missing: expected images in 007",
    ):
        find_signatures(root)


def test_empty_writer_folder_counts_as_missing(tmp_path: Path) -> None:
    root = write_sign_data(tmp_path / "signs", {1: (3, 2), 2: (3, 2)})
    for image in (root / "002").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match=r"writer 002, but that writer.s genuine signatures are missing"):
        find_signatures(root)


def test_cedar_name_that_does_not_parse_is_named(tmp_path: Path) -> None:
    root = write_cedar(tmp_path / "cedar", {1: (2, 2)})
    (root / "full_org" / "original_1_x.png").write_bytes((root / "full_org" / "original_1_1.png").read_bytes())
    with pytest.raises(
        ValueError, match=r"full_org/original_1_x.png does not parse: expected full_org/original_<writer>_<n>.png"
    ):
        find_signatures(root)
    (root / "full_org" / "original_1_x.png").unlink()
    (root / "full_forg" / "original_1_9.png").write_bytes(b"")  # a genuine name among the forgeries
    with pytest.raises(
        ValueError, match=r"full_forg/original_1_9.png does not parse: expected full_forg/forgeries_<writer>_<n>"
    ):
        find_signatures(root)


def test_cedar_writer_with_one_kind_only_is_named(tmp_path: Path) -> None:
    root = write_cedar(tmp_path / "cedar", {1: (2, 2), 3: (2, 0)})
    with pytest.raises(
        ValueError,
        match=r"CEDAR writer 3 has 2 genuine signatures but no forged ones: expected full_forg/forgeries_3_<n>",
    ):
        find_signatures(root)


def test_writer_folders_in_two_places_are_named(tmp_path: Path) -> None:
    # Kaggle's sign_data ships train/ and test/ side by side (test repeats training images).
    root = write_files(
        tmp_path / "kaggle", sign_data_files({1: (2, 2)}, "train/") | sign_data_files({1: (2, 2)}, "test/")
    )
    with pytest.raises(ValueError, match=r"found image folders under \['test', 'train'\]: point root at one of them"):
        find_signatures(root)


def test_missing_or_empty_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        find_signatures(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no signature images in .*empty"):
        find_signatures(tmp_path / "empty")


# --- pairs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory):
    root = write_sign_data(tmp_path_factory.mktemp("signs"), WRITERS)
    return load_signatures(find_signatures(root), (30, 44))


def kinds(collection) -> tuple[np.ndarray, np.ndarray]:
    writer = collection.class_groups[collection.labels].numpy()
    genuine = np.array([collection.class_names[c].endswith("/genuine") for c in collection.labels])
    return writer, genuine


def test_training_pairs_are_labelled_balanced_and_seeded(collection) -> None:
    writer, genuine = kinds(collection)
    sampler = SignaturePairSampler(writer, genuine)
    pairs = sampler.sample(200, np.random.default_rng(3))
    first, second, same = pairs["first"], pairs["second"], pairs["same"]
    assert same.sum() == 100
    assert genuine[first].all()  # every pair starts from a genuine signature
    pos, neg = same == 1, same == 0
    assert (writer[first] == writer[second]).all()  # skilled forgeries only: always the same writer
    assert genuine[second[pos]].all() and (first[pos] != second[pos]).all()
    assert not genuine[second[neg]].any()
    again = sampler.sample(200, np.random.default_rng(3))
    other = sampler.sample(200, np.random.default_rng(4))
    assert all((again[k] == pairs[k]).all() for k in pairs) and not (other["first"] == pairs["first"]).all()


def test_random_forgeries_pair_with_other_writers(collection) -> None:
    writer, genuine = kinds(collection)
    pairs = SignaturePairSampler(writer, genuine, random_forgeries=1.0).sample(100, np.random.default_rng(0))
    neg = pairs["same"] == 0
    assert genuine[pairs["second"][neg]].all() and (writer[pairs["first"][neg]] != writer[pairs["second"][neg]]).all()
    with pytest.raises(ValueError, match=r"random_forgeries must be in \[0, 1\], got 1.5"):
        SignaturePairSampler(writer, genuine, random_forgeries=1.5)


def test_evaluation_pairs_score_questioned_signatures_against_references(collection) -> None:
    writer, genuine = kinds(collection)
    pairs, references = evaluation_pairs(
        writer, genuine, collection.group_names, references=3, pairs_per_writer=10, random_forgeries=0.0, seed=0
    )
    assert len(references) == len(WRITERS) and all(len(r) == 3 for r in references)
    for w, refs in enumerate(references):
        mine = pairs["writer"] == w
        assert int(mine.sum()) == 10 and int(pairs["same"][mine].sum()) == 5  # balanced per writer
        assert set(pairs["first"][mine].tolist()) <= set(refs.tolist())
        assert not set(pairs["second"][mine].tolist()) & set(refs.tolist())  # references are never questioned
        assert (writer[refs.numpy()] == w).all() and genuine[refs.numpy()].all()
    same = pairs["same"].bool().numpy()
    assert genuine[pairs["second"].numpy()[same]].all() and not genuine[pairs["second"].numpy()[~same]].any()
    again, _ = evaluation_pairs(writer, genuine, collection.group_names, 3, 10, 0.0, seed=0)
    assert all(torch.equal(again[k], pairs[k]) for k in pairs)
    mixed, _ = evaluation_pairs(
        writer, genuine, collection.group_names, 3, 10, random_forgeries=0.4, seed=0
    )  # 2 of each writer's 5 forged pairs
    neg = (mixed["same"] == 0).numpy()
    random = neg & (writer[mixed["first"].numpy()] != writer[mixed["second"].numpy()])
    assert random.sum() == 2 * len(WRITERS) and genuine[mixed["second"].numpy()[random]].all()
    with pytest.raises(ValueError, match="writer 001 has 8 genuine signatures: 8 references"):
        evaluation_pairs(writer, genuine, collection.group_names, 8, 10, 0.0, seed=0)


# --- the data module ----------------------------------------------------------------


def make_module(root: Path, **kwargs) -> SignatureDataModule:
    return SignatureDataModule(
        root=str(root),
        image_size=[30, 44],
        references=3,
        eval_pairs_per_writer=10,
        batch_size=8,
        pairs_per_epoch=16,
        **kwargs,
    )


def test_writer_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    root = write_sign_data(tmp_path / "signs", WRITERS)
    data = make_module(root, val_fraction=0.25)
    split = data.writers()
    assert len(split["val"]) == 2 and len(split["train"]) == 6 and not set(split["val"]) & set(split["train"])
    assert make_module(root, val_fraction=0.25).writers() == split
    assert make_module(root, val_fraction=0.25, split_seed=1).writers() != split
    assert data.split("val").group_names == split["val"] and data.split("train").group_names == split["train"]


def test_std_normalisation_comes_from_training_images_and_round_trips(tmp_path: Path) -> None:
    root = write_sign_data(tmp_path / "signs", WRITERS)
    data = make_module(root, seed=0)
    data.setup("fit")
    std = float(to_float(data.split("train").images).std())
    assert data.state_dict() == {"pixel_std": pytest.approx(std), "kind": "signatures"}
    batch = next(iter(data.train_dataloader()))
    assert batch["first"].shape == (8, 1, 30, 44) and batch["same"].tolist() == [1] * 4 + [0] * 4
    assert float(batch["first"].max()) == pytest.approx(1.0 / std, rel=0.05)  # brightest ink / std
    image, _index = next(iter(data.val_dataloader()))
    assert torch.allclose(image[0], to_float(data.split("val").images[0]) / std)
    predicted, _ = next(iter(data.predict_dataloader()))  # lightning predict embeds the val writers, scaled alike
    assert torch.allclose(predicted[0], to_float(data.split("val").images[0]) / std)
    # A checkpoint's std wins over the data at hand (test and verify use the training set's).
    restored = make_module(root)
    restored.load_state_dict({"pixel_std": 0.5, "kind": "signatures"})
    image, _ = next(iter(restored.val_dataloader()))
    assert torch.allclose(image[0], to_float(restored.split("val").images[0]) * 2)


def test_test_stage_needs_unseen_writers(tmp_path: Path) -> None:
    root = write_sign_data(tmp_path / "signs", WRITERS)
    with pytest.raises(ValueError, match=r"set data.test_root"):
        make_module(root).setup("test")
    with pytest.raises(ValueError, match=r"shares writer\(s\) \['001', '002'\] with root"):
        make_module(root, test_root=str(write_sign_data(tmp_path / "test", {1: (4, 2), 2: (4, 2)}))).setup("test")
    data = make_module(root, test_root=str(write_sign_data(tmp_path / "unseen", {20: (5, 3), 21: (4, 4)})))
    data.load_state_dict({"pixel_std": 0.25, "kind": "signatures"})
    data.setup("test")
    test = data.test_dataloader().dataset
    assert test.collection.group_names == ["020", "021"]
    elsewhere = make_module(tmp_path / "gone", test_root=str(tmp_path / "unseen"))  # only the test folder at hand
    assert elsewhere.split("test").group_names == ["020", "021"]
    # Writer 020: min(3 x 2 genuine, 3 x 3 forged, 10 / 2) = 5 of each; 021: 3 references x 1 questioned = 3.
    assert test.pairs["same"].tolist() == [1] * 5 + [0] * 5 + [1] * 3 + [0] * 3


def test_bad_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_kind 'pairs', not 'triplets'"):
        SignatureDataModule(root=str(tmp_path), batch_kind="triplets")
    with pytest.raises(ValueError, match=r"image_size must be \[height, width\]"):
        SignatureDataModule(root=str(tmp_path), image_size=[1, 2, 3])
    with pytest.raises(ValueError, match="references must be at least 2"):
        SignatureDataModule(root=str(tmp_path), references=1)
