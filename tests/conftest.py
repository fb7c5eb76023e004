"""Shared fixtures: small synthetic Omniglot sets in the official layout, and the real data."""

from __future__ import annotations

import http.server
import io
import os
import threading
import zipfile
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n``), one thread per worker and per subprocess it starts.

    The workers already use every core; torch's own threads on top of them would only
    fight over the cores and slow the suite down.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def character_image(class_seed: int, drawer: int, size: int = 28) -> Image.Image:
    """A 1-bit 'character': class-specific strokes, jittered a little by each drawer."""
    rng = np.random.default_rng(class_seed)
    canvas = np.ones((size, size), dtype=bool)  # Omniglot: white background, black ink
    jitter = np.random.default_rng([class_seed, drawer]).integers(-1, 2, size=2)
    for _ in range(3):
        r0, c0 = rng.integers(3, size - 3, size=2) + jitter
        r1, c1 = rng.integers(3, size - 3, size=2) + jitter
        for t in np.linspace(0, 1, 2 * size):
            r, c = round(r0 + t * (r1 - r0)), round(c0 + t * (c1 - c0))
            canvas[max(r - 1, 0) : r + 1, max(c - 1, 0) : c + 1] = False
    return Image.fromarray(canvas)


def make_omniglot_set(
    root: Path,
    name: str,
    alphabets: dict[str, int],
    drawers: int = 20,
    size: int = 28,
    as_zip: bool = True,
) -> Path:
    """Write ``<name>/<Alphabet>/characterNN/<id>_<drawer>.png`` (zipped or as folders)."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    for a, (alphabet, n_chars) in enumerate(sorted(alphabets.items())):
        for c in range(1, n_chars + 1):
            for d in range(1, drawers + 1):
                buffer = io.BytesIO()
                character_image(zlib.crc32(f"{alphabet}/{c}".encode()), d, size).save(buffer, format="PNG")
                files[f"{name}/{alphabet}/character{c:02d}/{a:02d}{c:02d}_{d:02d}.png"] = buffer.getvalue()
    if as_zip:
        path = root / f"{name}.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for member, data in files.items():
                archive.writestr(member, data)
        return path
    for member, data in files.items():
        target = root / member
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root / name


TINY_ALPHABETS = {"Alpha": 6, "Beta": 6, "Gamma": 5, "Delta": 6}


@pytest.fixture(scope="session")
def tiny_omniglot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with a tiny ``images_background.zip``: 4 alphabets, 23 characters, 20 drawers, 28 px."""
    root = tmp_path_factory.mktemp("omniglot")
    make_omniglot_set(root, "images_background", TINY_ALPHABETS)
    return root


@pytest.fixture(scope="session")
def shipped_omniglot() -> Path:
    """The official small background sets that the repository ships as default data."""
    return REPO / "data" / "omniglot"


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """An untrained tiny checkpoint as `lightning fit` writes one (tests/tiny.py: tiny_checkpoint)."""
    from tests.tiny import tiny_checkpoint

    return tiny_checkpoint(tmp_path / "tiny.ckpt")


@pytest.fixture
def http_server(tmp_path: Path):
    """A local HTTP server on 127.0.0.1 serving a temporary folder: download code is tested against it, never the internet."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
