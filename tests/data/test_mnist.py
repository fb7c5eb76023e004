"""MNIST through torchvision: linking the four .gz files, checking them, splits, a truncated file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_siamese.data import MNISTDataModule
from lightning_siamese.data.sources.mnist import MNIST_FILES, load_mnist
from tests.conftest import SHARED_DATA


def digit_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """28x28 uint8 'digits': a bright bar whose row is the label, plus a little noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, size=(len(labels), 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 255
    return images


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (MNIST's format): magic, big-endian dimensions, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, n_train: int = 40, n_test: int = 20) -> Path:
    """The four MNIST .gz files, tiny and synthetic, in ``folder``; labels cycle through 0-9."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        labels = np.arange(n) % 10
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(digit_images(labels, seed))))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return folder


def test_the_files_are_linked_for_torchvision_and_split(tmp_path: Path) -> None:
    files = write_mnist(tmp_path / "files")
    data = MNISTDataModule(root=str(tmp_path / "root"), files=str(files), val_size=10, split_seed=3)
    train, val, test = data.split("train"), data.split("val"), data.split("test")
    raw = tmp_path / "root" / "MNIST" / "raw"
    assert all((raw / name).is_symlink() and (raw / name).with_suffix("").is_file() for name, _ in MNIST_FILES)
    assert (len(train), len(val), len(test)) == (30, 10, 20)
    assert train.num_classes == val.num_classes == test.num_classes == 10  # the splits share the digits
    # Pixels and labels as written: test is the t10k file in order; train and val partition the train file.
    expected_test = torch.from_numpy(digit_images(np.arange(20) % 10, 1))
    assert torch.equal(test.images[:, 0], expected_test) and test.labels.tolist() == (np.arange(20) % 10).tolist()
    expected_train = torch.from_numpy(digit_images(np.arange(40) % 10, 0))
    index = [int(p.rsplit("#", 1)[1]) for p in train.paths + val.paths]
    assert sorted(index) == list(range(40))
    assert torch.equal(torch.cat([train.images, val.images])[:, 0], expected_train[index])
    again = MNISTDataModule(root=str(tmp_path / "root"), files=str(files), val_size=10, split_seed=3).split("val")
    other = MNISTDataModule(root=str(tmp_path / "root"), val_size=10, split_seed=4).split("val")  # the links stay
    assert again.paths == val.paths and other.paths != val.paths


def test_a_truncated_gz_is_named_with_what_was_expected(tmp_path: Path) -> None:
    files = write_mnist(tmp_path / "files")
    broken = files / "train-images-idx3-ubyte.gz"
    broken.write_bytes(broken.read_bytes()[:-40])
    with pytest.raises(
        ValueError,
        match=r"train-images-idx3-ubyte.gz .*is truncated or not gzip data .*expected the gzipped "
        r"MNIST IDX file train-images-idx3-ubyte.gz",
    ):
        load_mnist(tmp_path / "root", files)


def test_a_short_or_foreign_idx_file_is_named(tmp_path: Path) -> None:
    files = write_mnist(tmp_path / "files")
    labels = files / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:-3]))
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte.gz .*holds 25 bytes of IDX data, its header promises 28"
    ):
        load_mnist(tmp_path / "root", files)
    labels.write_bytes(gzip.compress(b"not an idx file"))
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte.gz .*is not an MNIST IDX file: expected the magic number 0x00000801"
    ):
        load_mnist(tmp_path / "root2", files)


def test_missing_files_without_download_say_where_they_were_looked_for(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError,
        match=r"MNIST not found in .*root/MNIST/raw: missing train-images-idx3-ubyte.gz.*download: true",
    ):
        load_mnist(tmp_path / "root")
    files = write_mnist(tmp_path / "files")
    (files / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"MNIST folder .*files lacks t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path / "root", files)
    with pytest.raises(ValueError, match="val_size=40 leaves no training digits out of 40"):
        MNISTDataModule(root=str(tmp_path / "r"), files=str(write_mnist(tmp_path / "more")), val_size=40).split("train")


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="the real MNIST files are not here")
def test_the_real_mnist_files(tmp_path: Path) -> None:
    collection, num_train = load_mnist(tmp_path, SHARED_DATA / "mnist")
    assert (len(collection), num_train) == (70000, 60000)
    assert torch.bincount(collection.labels[num_train:]).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]
    assert collection.images[:, :, 0].float().mean() < 1 and collection.images.max() == 255  # bright digits on black
