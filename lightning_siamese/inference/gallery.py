"""Enrollment galleries: new classes recognised by a trained model without retraining.

``lightning-siamese enroll`` embeds labelled images with a checkpoint and adds them to a
gallery file; ``identify`` embeds query images with the same checkpoint and names the best
class, or "unknown" when its score is below a threshold; ``remove`` drops classes.

Scores are the model's own: its head's ``similarity`` (Koch's weighted L1 + sigmoid,
negative Euclidean distance, cosine), so they mean what they meant in training and
validation. A query is scored against each class's *prototype*, the mean of its members'
embeddings (Snell et al. 2017; the same as ``shot_reduction: prototype`` in N-way
evaluation), or with ``scoring="nearest"`` against every member, a class scoring as its
best member (``shot_reduction: max``). The stored verification threshold was chosen on
pairs of single images, which is exactly what nearest-member scoring compares; prototype
scores of a class with several members run a little higher for the true class.

The search runs over the gallery in chunks of ``chunk_size`` rows and the queries in blocks
of ``query_block``, keeping only the best score so far per query, so the extra memory is
bounded whatever the gallery size. Each block is scored by the head's ``pairwise_similarity``:
a matrix product for distance and cosine heads (``query_block x chunk_size`` scores), the
broadcast ``similarity`` for Koch's head (``query_block x chunk_size x embedding_dim``
differences, two or three such tensors at once).

File format (version 1): one file written by ``torch.save`` and read with
``torch.load(weights_only=True)`` (no pickled code), holding a dict:

- ``format``: ``"lightning-siamese-gallery"``; ``version``: ``1``
- ``model_id``: SHA-256 (hex) of the checkpoint's ``state_dict`` (names, dtypes, shapes and
  bytes of each tensor, sorted by name) and of its encoder, head, ``eval_flip`` and ``eval_shift`` settings
  (``hyper_parameters``): the identity of the model, not of the file, so a copy of the
  checkpoint, or one saved at the same weights, matches
- ``checkpoint``: the path of the checkpoint that built it (for messages only)
- ``head``: the head's class name (for messages only)
- ``preprocessing``: ``{"image_size", "crop", "channels", "invert"}`` of the checkpoint's
  data module (and ``kind``, ``pixel_std`` for signatures), as images were prepared for the
  embeddings
- ``classes``: list of class names; class ``i`` is ``classes[i]``
- ``labels``: int64 ``[N]``, the class of each member
- ``paths``: list of ``N`` strings, the image each member came from
- ``embeddings``: float32 ``[N, D]``, ``model.embed`` of each member
- ``prototypes``: float32 ``[C, D]``, the mean embedding of each class

Every change is written to a temporary file in the gallery's folder and renamed over the
gallery (atomic on POSIX), so a failure part-way through an enrollment leaves the old
gallery as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lightning_siamese.inference.files import load_torch_file
from lightning_siamese.inference.images import read_image
from lightning_siamese.inference.model import decision_threshold, load_trained

if TYPE_CHECKING:
    from lightning_siamese.models import SiameseModule

FORMAT, VERSION = "lightning-siamese-gallery", 1


SCORINGS = ("prototype", "nearest")


# A head's ``pairwise_similarity``: queries [Q, D] and keys [C, D] -> scores [Q, C].
Pairwise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def model_identity(ckpt: str | Path) -> str:
    """SHA-256 of a checkpoint's model: its weights and the settings that shape its embeddings and scores."""
    saved = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    digest = hashlib.sha256()
    for name, tensor in sorted(saved["state_dict"].items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    hparams = saved.get("hyper_parameters", {})
    settings = {key: hparams.get(key) for key in ("encoder", "head", "eval_flip")}
    if hparams.get("eval_shift"):  # only when on, so galleries enrolled before it existed keep their identity
        settings["eval_shift"] = hparams["eval_shift"]
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def preprocessing(data: dict) -> dict:
    """The data module settings that decide how an image file becomes a model input."""
    settings = {
        "image_size": data.get("image_size"),
        "crop": data.get("crop"),
        "channels": data.get("channels", 1),
        "invert": data.get("invert", False),
    }
    return settings | {
        key: data[key] for key in ("kind", "pixel_std") if key in data
    }  # signatures: SigNet's preparation


@dataclass
class Match:
    """The answer for one query: the best class and its score, ``known`` when at or above the threshold."""

    query: str
    best_class: str
    score: float
    known: bool

    @property
    def label(self) -> str:
        return self.best_class if self.known else "unknown"


@dataclass
class Gallery:
    """Embeddings of labelled images and their class prototypes, tied to one model."""

    model_id: str
    preprocessing: dict
    checkpoint: str = ""
    head: str = ""
    classes: list[str] = field(default_factory=list)
    labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    paths: list[str] = field(default_factory=list)
    embeddings: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    prototypes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))

    def __len__(self) -> int:
        return len(self.paths)

    # --- changes --------------------------------------------------------------------

    def add(self, embeddings: torch.Tensor, classes: Sequence[str], paths: Sequence[str]) -> None:
        """Add members (new classes are created); prototypes are recomputed."""
        if not (len(embeddings) == len(classes) == len(paths)):
            raise ValueError(
                f"{len(embeddings)} embeddings, {len(classes)} class names and {len(paths)} paths: expected as many of each"
            )
        embeddings, had = embeddings.detach().float().cpu(), len(self)
        if had and embeddings.shape[1] != self.embeddings.shape[1]:
            raise ValueError(
                f"embeddings of dimension {embeddings.shape[1]} cannot join a gallery of dimension {self.embeddings.shape[1]}"
            )
        index = {name: i for i, name in enumerate(self.classes)}
        for name in classes:
            index.setdefault(name, len(index))
        self.classes = list(index)
        labels = torch.tensor([index[name] for name in classes], dtype=torch.long)
        self.labels = torch.cat([self.labels, labels])
        self.paths = [*self.paths, *paths]
        self.embeddings = torch.cat([self.embeddings, embeddings]) if had else embeddings
        self._update_prototypes()

    def remove(self, names: Sequence[str]) -> int:
        """Drop whole classes; returns the number of members removed."""
        missing = [name for name in names if name not in self.classes]
        if missing:
            shown = ", ".join(self.classes[:20]) + (" ..." if len(self.classes) > 20 else "")
            raise KeyError(
                f"class {', '.join(map(repr, missing))} is not in the gallery (its classes: {shown or 'none'})"
            )
        dropped = {self.classes.index(name) for name in names}
        keep = ~torch.isin(self.labels, torch.tensor(sorted(dropped)))
        kept_classes = [i for i in range(len(self.classes)) if i not in dropped]
        renumber = torch.full((len(self.classes),), -1, dtype=torch.long)
        renumber[kept_classes] = torch.arange(len(kept_classes))
        self.classes = [self.classes[i] for i in kept_classes]
        self.labels = renumber[self.labels[keep]]
        self.paths = [p for p, k in zip(self.paths, keep.tolist()) if k]
        self.embeddings = self.embeddings[keep]
        self._update_prototypes()
        return int((~keep).sum())

    def _update_prototypes(self) -> None:
        sums = torch.zeros(len(self.classes), self.embeddings.shape[1]).index_add_(0, self.labels, self.embeddings)
        counts = torch.bincount(self.labels, minlength=len(self.classes)).clamp(min=1)
        self.prototypes = sums / counts[:, None]

    # --- search ---------------------------------------------------------------------

    def best(
        self,
        queries: torch.Tensor,
        pairwise: Pairwise,
        scoring: str = "prototype",
        chunk_size: int = 1024,
        query_block: int = 64,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Best class index and its score for each query embedding, searched in chunks."""
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        if not len(self):
            raise ValueError("the gallery is empty: enroll some classes first (lightning-siamese enroll)")
        keys = self.prototypes if scoring == "prototype" else self.embeddings
        score, index = chunked_search(queries, keys, pairwise, chunk_size, query_block)
        return (index if scoring == "prototype" else self.labels[index]), score

    def identify(
        self,
        queries: torch.Tensor,
        names: Sequence[str],
        pairwise: Pairwise,
        threshold: float,
        scoring: str = "prototype",
        chunk_size: int = 1024,
    ) -> list[Match]:
        classes, scores = self.best(queries, pairwise, scoring, chunk_size)
        return [
            Match(name, self.classes[c], s, s >= threshold)
            for name, c, s in zip(names, classes.tolist(), scores.tolist())
        ]

    # --- the file -------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write atomically: a temporary file in the same folder, flushed, then renamed over ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "format": FORMAT,
            "version": VERSION,
            "model_id": self.model_id,
            "checkpoint": self.checkpoint,
            "head": self.head,
            "preprocessing": self.preprocessing,
            "classes": self.classes,
            "labels": self.labels,
            "paths": self.paths,
            "embeddings": self.embeddings,
            "prototypes": self.prototypes,
        }
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with open(partial, "wb") as file:
                torch.save(record, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        """Read a gallery file, checking that it is whole and consistent."""
        path = Path(path)
        record = load_torch_file(
            path,
            "gallery",
            " does not exist: create it with lightning-siamese enroll",
            "is corrupt or truncated",
            "a file written by lightning-siamese enroll",
        )
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"{path} is not a lightning-siamese gallery (no format: {FORMAT!r} entry)")
        if record.get("version") != VERSION:
            raise ValueError(
                f"gallery {path} has format version {record.get('version')!r}; this version reads {VERSION}"
            )
        gallery = cls(
            **{
                key: record[key]
                for key in (
                    "model_id",
                    "preprocessing",
                    "checkpoint",
                    "head",
                    "classes",
                    "labels",
                    "paths",
                    "embeddings",
                    "prototypes",
                )
                if key in record
            }
        )
        n, c = len(gallery.paths), len(gallery.classes)
        consistent = (
            gallery.labels.shape == (n,)
            and gallery.embeddings.ndim == 2
            and len(gallery.embeddings) == n
            and gallery.prototypes.shape == (c, gallery.embeddings.shape[1])
            and (n == 0 or 0 <= int(gallery.labels.min()) <= int(gallery.labels.max()) < c)
        )
        if not consistent:
            raise ValueError(
                f"gallery {path} is inconsistent: {n} paths, labels {tuple(gallery.labels.shape)}, embeddings "
                f"{tuple(gallery.embeddings.shape)}, prototypes {tuple(gallery.prototypes.shape)} for {c} classes"
            )
        return gallery

    def check_model(self, model_id: str, preprocessing: dict, ckpt: str, where: str) -> None:
        """Fail unless the model (and its preprocessing) is the one that built this gallery."""
        if model_id != self.model_id:
            raise ValueError(
                f"gallery {where} was built by another model ({self.head} from {self.checkpoint}, model id "
                f"{self.model_id[:12]}) than --ckpt {ckpt} (model id {model_id[:12]}): its embeddings cannot be compared; "
                f"use the checkpoint that built it, or enroll into a new gallery"
            )
        if preprocessing != self.preprocessing:
            raise ValueError(
                f"gallery {where} prepared images as {self.preprocessing}, --ckpt {ckpt} as {preprocessing}"
            )


def chunked_search(
    queries: torch.Tensor, keys: torch.Tensor, pairwise: Pairwise, chunk_size: int = 1024, query_block: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best score and index of the best key for each query, scoring ``query_block x chunk_size`` pairs at a time.

    ``pairwise`` is a head's ``pairwise_similarity`` (``[Q, D], [C, D] -> [Q, C]``). Ties go
    to the first key, as ``argmax`` over all keys at once would.
    """
    if chunk_size < 1 or query_block < 1:
        raise ValueError(f"chunk_size and query_block must be at least 1, got {chunk_size} and {query_block}")
    best_score = torch.full((len(queries),), -torch.inf)
    best_index = torch.zeros(len(queries), dtype=torch.long)
    with torch.no_grad():
        for q in range(0, len(queries), query_block):
            block = queries[q : q + query_block]
            for start in range(0, len(keys), chunk_size):
                chunk = keys[start : start + chunk_size]
                scores = pairwise(block, chunk)
                if scores.shape != (len(block), len(chunk)):
                    raise ValueError(
                        f"pairwise similarity gave scores of shape {tuple(scores.shape)} for {len(block)} queries "
                        f"and {len(chunk)} keys, expected {(len(block), len(chunk))}: pass a head's "
                        f"pairwise_similarity, not its broadcast similarity"
                    )
                score, index = scores.float().max(1)
                better = score > best_score[q : q + query_block]
                best_score[q : q + query_block] = torch.where(better, score, best_score[q : q + query_block])
                best_index[q : q + query_block] = torch.where(better, index + start, best_index[q : q + query_block])
    return best_score, best_index


def embed_files(
    model: SiameseModule, data: dict, paths: Sequence[str], skip_bad: bool = False, batch_size: int = 256
) -> tuple[torch.Tensor, list[str], list[str]]:
    """Embed image files as the checkpoint's data module prepares them.

    Returns the embeddings, the paths embedded and the messages of the files skipped; a file
    that cannot be read stops everything unless ``skip_bad``.
    """
    kept, skipped, chunks = [], [], []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            images = []
            for path in paths[start : start + batch_size]:
                try:
                    images.append(read_image(path, data))
                except (ValueError, OSError) as err:
                    if not skip_bad:
                        raise ValueError(
                            f"{err} (nothing was written; pass --skip_bad_images to enroll the other images)"
                        ) from err
                    skipped.append(str(err))
                    continue
                kept.append(path)
            if images:
                chunks.append(model.embed(torch.cat(images)).float())
    return (torch.cat(chunks) if chunks else torch.zeros(0, 0)), kept, skipped


def open_for_model(path: str, ckpt: str, create: bool) -> tuple[Gallery, SiameseModule, dict]:
    """The checkpoint's model and data settings, and the gallery at ``path`` checked against it (new if absent and ``create``)."""
    model, data = load_trained(ckpt)
    model_id, prep = model_identity(ckpt), preprocessing(data)
    if create and not Path(path).exists():
        return Gallery(model_id, prep, checkpoint=str(ckpt), head=type(model.head).__name__), model, data
    gallery = Gallery.load(path)
    gallery.check_model(model_id, prep, ckpt, path)
    return gallery, model, data


def identify_threshold(model: SiameseModule, ckpt: str, threshold: float | None) -> tuple[float, str]:
    """The score below which a query is "unknown": ``threshold`` if given, else the open-set
    threshold the checkpoint keeps (fitted on validation episodes on each query's best score,
    which is what identification compares), else the verification one (fitted on pairs)."""
    if threshold is None and model.openset_threshold is not None:
        return (
            model.openset_threshold,
            f"validation open-set episodes, false-accept rate {model.scoring.openset_far} (stored in the checkpoint)",
        )
    return decision_threshold(model, ckpt, threshold)
