"""LightningDataModules: a source, a split by class, a sampler and transforms, joined.

Training batches are made whole by :class:`SampledBatches` (one dataset item is one
balanced batch of pairs, triplets or P x K classes; :class:`KochPairBatches` for Koch's
fixed pair set), so augmentation runs on the batch and every rank of a distributed run
receives whole balanced batches. Evaluation loaders yield each image of a split once;
the episodes and fixed validation pairs travel with the dataset (:class:`EvaluationSet`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, SequentialSampler

from lightning_siamese.data.lfw import (
    LFW_URL,
    LFWFiles,
    PairList,
    download_lfw_images,
    download_lfw_list,
    find_lfw_images,
    load_lfw,
    read_pairs,
    read_people,
)
from lightning_siamese.data.mnist import load_mnist
from lightning_siamese.data.samplers import (
    BalancedPairSampler,
    ClassBalancedSampler,
    Episodes,
    ImagePairSampler,
    TripletSampler,
    sample_episodes,
)
from lightning_siamese.data.sources import (
    OMNIGLOT_TEST_ALPHABETS,
    OMNIGLOT_VAL_ALPHABETS,
    ImageCollection,
    depth_counts,
    load_image_folder,
    load_lake_runs,
    load_omniglot,
    locate_lake_runs,
    locate_omniglot_set,
)
from lightning_siamese.data.transforms import DarkShotAugment, KochAffine, to_float

log = logging.getLogger(__name__)


# Keys of a sampled batch that hold image indices; the others (labels) pass through.
IMAGE_KEYS = ("first", "second", "anchor", "positive", "negative", "images")
BATCH_KINDS = ("pairs", "triplets", "classes")
PAIR_SAMPLING = ("balanced", "koch", "darkshot", "darkshot_unbalanced")


class BatchSampler(Protocol):
    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]: ...


def _batch_key(key: tuple[int, int] | int) -> tuple[int, int]:
    """``(epoch, b)``; a plain ``b`` (Lightning's ``overfit_batches`` samples sequentially) is
    batch b of epoch 0, so an overfitting run sees the same batches every epoch."""
    return key if isinstance(key, tuple) else (0, int(key))


class SampledBatches(Dataset):
    """Item ``(epoch, b)`` is the b-th training batch of that epoch, as a dict of tensors.

    The sampler draws the batch's image indices (pairs, triplets or P x K classes); this
    dataset turns them into float images, distorted by ``augment``. The batch is a pure
    function of ``(seed, epoch, b)``: repeatable, different every epoch, and independent of
    the worker or rank that builds it.
    """

    def __init__(
        self,
        images: torch.Tensor,
        sampler: BatchSampler,
        batch_size: int,
        num_batches: int,
        seed: int,
        augment: KochAffine | DarkShotAugment | None = None,
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}")
        if num_batches < 1:
            raise ValueError(f"an epoch needs at least one batch, got num_batches={num_batches}")
        self.images = images
        self.sampler = sampler
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.seed = seed
        self.augment = augment

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        epoch, index = _batch_key(key)
        rng = np.random.default_rng([self.seed, epoch, index])
        drawn = self.sampler.sample(self.batch_size, rng)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        batch = {}
        for name, values in drawn.items():
            if name in IMAGE_KEYS:
                images = to_float(self.images[values])
                batch[name] = images if self.augment is None else self.augment(images, generator)
            else:
                batch[name] = torch.from_numpy(values)
        return batch


class KochPairBatches(Dataset):
    """Koch et al.'s training set: a fixed set of pairs plus ``distortions`` distorted copies of each.

    Example ``e`` is copy ``e // pairs`` of pair ``e % pairs``. Copy 0 is the pair as it is;
    copy ``k > 0`` has both images distorted by ``augment`` with transforms fixed by
    ``(seed, pair, k)``, so, as in the paper, the data set is the same ``(1 + distortions)
    x pairs`` examples every epoch. An epoch visits them in an order shuffled by ``(seed,
    epoch)``, in whole batches (a last partial batch is dropped), so item ``(epoch, b)`` is
    a pure function of ``(seed, epoch, b)``, like :class:`SampledBatches`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        pairs: dict[str, np.ndarray],
        batch_size: int,
        seed: int,
        distortions: int = 8,
        augment: KochAffine | None = None,
    ) -> None:
        if distortions < 0:
            raise ValueError(f"distortions must be >= 0, got {distortions}")
        if distortions and not isinstance(augment, KochAffine):
            raise ValueError(f"{distortions} distorted copies per pair need augment: KochAffine, got {augment!r}")
        self.images = images
        self.pairs = pairs
        self.num_pairs = len(pairs["same"])
        self.num_examples = self.num_pairs * (1 + distortions)
        self.batch_size = batch_size
        self.num_batches = self.num_examples // batch_size
        if batch_size < 2 or self.num_batches < 1:
            raise ValueError(
                f"{self.num_pairs} pairs x {1 + distortions} copies = {self.num_examples} examples "
                f"give no whole batch of {batch_size}"
            )
        self.seed = seed
        self.augment = augment
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.num_batches

    def examples(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair and copy of each example of batch ``index`` of ``epoch``."""
        if self._order is None or self._order[0] != epoch:  # one permutation per epoch, not per batch
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_examples))
        chosen = self._order[1][index * self.batch_size : (index + 1) * self.batch_size]
        return chosen % self.num_pairs, chosen // self.num_pairs

    def transforms(self, pair: int, copy: int, size: int) -> torch.Tensor:
        """The fixed forward transforms ``[2, 2, 3]`` of both images of one distorted copy."""
        seed = int(np.random.default_rng([self.seed, pair, copy]).integers(2**62))
        return self.augment.matrices(2, size, torch.Generator().manual_seed(seed))

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        pair, copy = self.examples(*_batch_key(key))
        first = to_float(self.images[self.pairs["first"][pair]])
        second = to_float(self.images[self.pairs["second"][pair]])
        distorted = np.flatnonzero(copy)
        if len(distorted):  # one warp for the whole batch: all first images, then all second ones
            size = first.shape[-1]
            forward = torch.stack([self.transforms(pair[k], copy[k], size) for k in distorted], dim=1)
            both = torch.cat([first[distorted], second[distorted]])
            first[distorted], second[distorted] = KochAffine.warp(both, forward.flatten(0, 1)).chunk(2)
        return {"first": first, "second": second, "same": torch.from_numpy(self.pairs["same"][pair])}


class EpochKeySampler(DistributedSampler):
    """Yields ``(epoch, index)`` keys, this rank's share of the indices.

    Lightning calls ``set_epoch`` before every epoch, and leaves a
    ``DistributedSampler`` in place under DDP, so each rank gets its own whole batches.
    """

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        return ((self.epoch, int(i)) for i in super().__iter__())


class EvaluationSet(Dataset):
    """The images of one split, each once, with the tasks to score them on.

    Items are ``(image, index)``; ``episodes``, ``pairs`` (``first``, ``second``,
    ``same``) and ``triplets`` (``anchor``, ``positive``, ``negative``), fixed by the
    split's seed, index into the same order. ``name`` names the accuracy metric
    (``<stage>/<name>_acc``); a benchmark of named tasks (Lake's runs) gives ``task_names``,
    one per episode, and each task's accuracy is then reported. A verification benchmark
    (LFW's pair lists) has no episodes: its ``pairs`` are the benchmark (with ``folds`` for
    View 2), read from the file ``source``.
    """

    def __init__(
        self,
        collection: ImageCollection,
        episodes: Episodes | None = None,
        pairs: dict[str, torch.Tensor] | None = None,
        triplets: dict[str, torch.Tensor] | None = None,
        name: str = "oneshot",
        task_names: list[str] | None = None,
        source: str | None = None,
    ) -> None:
        self.collection = collection
        self.source = source
        self.episodes = episodes
        self.pairs = pairs or {}
        self.triplets = triplets or {}
        self.name = name
        self.task_names = task_names

    def __len__(self) -> int:
        return len(self.collection)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_float(self.collection.images[index]), index


def lake_runs_set(collection: ImageCollection, episodes: Episodes) -> EvaluationSet:
    """Lake's runs (from :func:`load_lake_runs`) as an evaluation set, metric ``lake_runs``.

    Its pairs and triplets, behind the loss and pair AUROC, are each test item with its own
    training image and with the next way's: balanced, fixed, within one run.
    """
    query, support = episodes.query[:, :, 0], episodes.support[:, :, 0]
    other = support.roll(-1, dims=1)
    pairs = {
        "first": torch.cat([query.flatten(), query.flatten()]),
        "second": torch.cat([support.flatten(), other.flatten()]),
        "same": torch.cat([torch.ones(query.numel()), torch.zeros(query.numel())]).long(),
    }
    triplets = {"anchor": query.flatten(), "positive": support.flatten(), "negative": other.flatten()}
    return EvaluationSet(collection, episodes, pairs, triplets, name="lake_runs", task_names=collection.group_names)


class SiameseDataModule(pl.LightningDataModule):
    """What every data module shares: class-disjoint splits, training batches, evaluation.

    A subclass says how to load its collection (:meth:`load_collection`) and which classes
    form each split (:meth:`select_split`); everything else lives here.

    Args:
        image_size: images are resized once, at load time, to this side.
        batch_kind: what a training batch holds: ``"pairs"`` (balanced, half same-class),
            ``"triplets"`` (anchor, positive, negative) or ``"classes"`` (P classes x K
            images, for online mining).
        pair_sampling: how ``"pairs"`` batches are drawn: ``"balanced"`` (half same-class,
            two distinct images, classes uniform, fresh every batch); ``"koch"`` (Koch et
            al.'s fixed set of ``koch_pairs`` pairs, the same number from every group, plus
            ``koch_distortions`` copies of each distorted by ``augment``, see
            :class:`KochPairBatches`); or the DarkShotLearning seed's generators for parity
            runs: ``"darkshot"`` (per image a positive, possibly itself, and a negative) and
            ``"darkshot_unbalanced"`` (uniformly random pairs).
        batch_size: pairs, triplets or images per training batch.
        images_per_class: K of a ``"classes"`` batch (P = batch_size / K).
        pairs_per_epoch: training examples (pairs, triplets or images) per epoch (not with
            ``"koch"`` pairs, whose epoch is the whole fixed set: ``koch_pairs x (1 +
            koch_distortions)``).
        koch_pairs: size of the ``"koch"`` pair set, drawn once from ``seed`` (Koch: 30k,
            90k or 150k).
        koch_distortions: distorted copies of each ``"koch"`` pair (Koch: 8); needs
            ``augment`` to be :class:`KochAffine`.
        same_group_prob: probability that a different-class pair (or a triplet's negative)
            stays within the first class's group, or that a P x K batch draws its classes
            from one group.
        augment: per-image distortion of training images: :class:`KochAffine`, or the
            DarkShotLearning seed's six operations (:class:`DarkShotAugment`).
        class_rotations: angles (multiples of 90) by which every training class is rotated
            to make new training classes, e.g. ``[0, 90, 180, 270]``; ``[0]`` is off.
        class_mirrors: also make each training class's mirror image (after the rotations)
            a new training class.
        n_way, k_shot, n_query: the evaluation task.
        within_group: draw each task's classes from one group.
        val_tasks, val_seed: number of validation episodes and the seed that fixes them.
        test_tasks, test_seed: likewise for the test split.
        val_pairs: size of the fixed, balanced pair (and triplet) set behind ``val/loss``.
        eval_batch_size: images per batch when embedding an evaluation split.
        num_workers: DataLoader workers.
        seed: seed of the training batch stream; ``None`` follows ``seed_everything``.
        predict_split: which split ``lightning predict`` embeds.
    """

    def __init__(
        self,
        image_size: int = 105,
        batch_kind: str = "pairs",
        pair_sampling: str = "balanced",
        batch_size: int = 128,
        images_per_class: int = 4,
        pairs_per_epoch: int = 30000,
        koch_pairs: int = 150000,
        koch_distortions: int = 8,
        same_group_prob: float = 0.5,
        augment: KochAffine | DarkShotAugment | None = None,
        class_rotations: Sequence[int] = (0,),
        class_mirrors: bool = False,
        n_way: int = 20,
        k_shot: int = 1,
        n_query: int = 1,
        within_group: bool = True,
        val_tasks: int = 400,
        val_seed: int = 0,
        test_tasks: int = 400,
        test_seed: int = 1,
        val_pairs: int = 2048,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        seed: int | None = None,
        predict_split: str = "val",
    ) -> None:
        super().__init__()
        if batch_kind not in BATCH_KINDS:
            raise ValueError(f"batch_kind must be one of {BATCH_KINDS}, got {batch_kind!r}")
        if pair_sampling not in PAIR_SAMPLING:
            raise ValueError(f"pair_sampling must be one of {PAIR_SAMPLING}, got {pair_sampling!r}")
        if pair_sampling == "koch":
            if batch_kind != "pairs":
                raise ValueError(f"pair_sampling 'koch' draws pairs: set batch_kind 'pairs', not {batch_kind!r}")
            if koch_distortions < 0 or koch_pairs < 1:
                raise ValueError(
                    f"need koch_pairs >= 1 and koch_distortions >= 0, got {koch_pairs} and {koch_distortions}"
                )
            if koch_distortions and not isinstance(augment, KochAffine):
                raise ValueError(
                    f"koch_distortions={koch_distortions} distorts copies with augment: KochAffine, got {augment!r}"
                )
        if batch_kind == "classes" and batch_size % images_per_class:
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of images_per_class={images_per_class} "
                f"for batch_kind 'classes'"
            )
        if predict_split not in ("train", "val", "test"):
            raise ValueError(f"predict_split must be 'train', 'val' or 'test', got {predict_split!r}")
        self.image_size = image_size
        self.batch_kind = batch_kind
        self.pair_sampling = pair_sampling
        self.batch_size = batch_size
        self.images_per_class = images_per_class
        self.pairs_per_epoch = pairs_per_epoch
        self.koch_pairs, self.koch_distortions = koch_pairs, koch_distortions
        self.same_group_prob = same_group_prob
        self.augment = augment
        self.class_rotations = list(class_rotations)
        self.class_mirrors = class_mirrors
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.within_group = within_group
        self.val_tasks, self.val_seed = val_tasks, val_seed
        self.test_tasks, self.test_seed = test_tasks, test_seed
        self.val_pairs = val_pairs
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.predict_split = predict_split
        self._collection: ImageCollection | None = None
        self._splits: dict[str, ImageCollection] = {}
        self._eval_sets: dict[str, EvaluationSet] = {}

    # --- what a subclass provides -------------------------------------------------

    def load_collection(self) -> ImageCollection:
        """Load every image the splits draw on (called once)."""
        raise NotImplementedError

    def select_split(self, name: str) -> ImageCollection:
        """The classes of split ``name`` (``train``, ``val`` or ``test``), disjoint from the others."""
        raise NotImplementedError

    # --- data ---------------------------------------------------------------------

    @property
    def collection(self) -> ImageCollection:
        if self._collection is None:
            self._collection = self.load_collection()
            log.info("%s: %s", type(self).__name__, self._collection.summary())
        return self._collection

    def split(self, name: str) -> ImageCollection:
        """The ``train``, ``val`` or ``test`` collection (classes never shared between splits)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; expected 'train', 'val' or 'test'")
        if name not in self._splits:
            split = self.select_split(name)
            if name == "train" and self.class_rotations != [0]:
                split = split.with_rotated_classes(self.class_rotations)
            if name == "train" and self.class_mirrors:
                split = split.with_mirrored_classes()
            self._splits[name] = split
        return self._splits[name]

    def evaluation_set(
        self,
        split: str,
        n_way: int | None = None,
        k_shot: int | None = None,
        n_query: int | None = None,
        tasks: int | None = None,
        seed: int | None = None,
    ) -> EvaluationSet:
        """Images of ``split`` with a fixed set of episodes (the configured task by default)."""
        collection = self.split(split)
        default_tasks, default_seed = (
            (self.test_tasks, self.test_seed) if split == "test" else (self.val_tasks, self.val_seed)
        )
        seed = default_seed if seed is None else seed
        episodes = sample_episodes(
            collection.labels,
            collection.class_groups,
            n_way=self.n_way if n_way is None else n_way,
            k_shot=self.k_shot if k_shot is None else k_shot,
            n_query=self.n_query if n_query is None else n_query,
            num_tasks=default_tasks if tasks is None else tasks,
            seed=seed,
            within_group=self.within_group,
            instances=collection.instances,
            group_names=collection.group_names,
        )
        pair_sampler = BalancedPairSampler(collection.labels, collection.class_groups, self.same_group_prob)
        rng = np.random.default_rng(seed)
        pairs = {k: torch.from_numpy(v) for k, v in pair_sampler.sample(self.val_pairs, rng).items()}
        triplet_sampler = TripletSampler(collection.labels, collection.class_groups, self.same_group_prob)
        triplets = {k: torch.from_numpy(v) for k, v in triplet_sampler.sample(self.val_pairs, rng).items()}
        return EvaluationSet(collection, episodes, pairs, triplets)

    def _batch_sampler(self, train: ImageCollection) -> BatchSampler:
        if self.batch_kind == "pairs" and self.pair_sampling.startswith("darkshot"):
            return ImagePairSampler(train.labels, balanced=self.pair_sampling == "darkshot")
        if self.batch_kind == "pairs":
            return BalancedPairSampler(train.labels, train.class_groups, self.same_group_prob)
        if self.batch_kind == "triplets":
            return TripletSampler(train.labels, train.class_groups, self.same_group_prob)
        return ClassBalancedSampler(
            train.labels,
            self.batch_size // self.images_per_class,
            self.images_per_class,
            train.class_groups,
            self.same_group_prob,
        )

    def test_set(self) -> EvaluationSet:
        """What the test stage scores: the test split's episodes, unless a subclass names a benchmark."""
        return self.evaluation_set("test")

    def _cached_evaluation_set(self, split: str) -> EvaluationSet:
        if split not in self._eval_sets:
            self._eval_sets[split] = self.test_set() if split == "test" else self.evaluation_set(split)
        return self._eval_sets[split]

    def _publish_summary(self, text: str, to_tensorboard: bool) -> None:
        """Print a data summary (once, on rank 0) and optionally log it to TensorBoard as text."""
        if self.trainer is None or self.trainer.is_global_zero:
            print(text)
        logger = None if self.trainer is None else self.trainer.logger
        if to_tensorboard and logger is not None and hasattr(logger.experiment, "add_text"):
            logger.experiment.add_text("data/summary", text.replace("\n", "  \n"))

    def setup(self, stage: str) -> None:
        # Build what the stage needs now, so impossible tasks fail before training starts.
        if stage == "fit":
            train = self.split("train")
            log.info("train split: %s", train.summary())
            self._train_sampler = self._batch_sampler(train)
        if stage in ("fit", "validate"):
            self._cached_evaluation_set("val")
        if stage == "test":
            self._cached_evaluation_set("test")
        if stage == "predict":
            self.split(self.predict_split)

    # --- loaders ------------------------------------------------------------------

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def train_batches(self, seed: int) -> Dataset:
        """The training set of whole batches, item ``(epoch, b)`` (see :class:`SampledBatches`)."""
        train = self.split("train")
        if self.pair_sampling == "koch":
            pairs = self._train_sampler.sample_per_group(self.koch_pairs, np.random.default_rng(seed))
            return KochPairBatches(train.images, pairs, self.batch_size, seed, self.koch_distortions, self.augment)
        num_batches = self.pairs_per_epoch // self.batch_size
        return SampledBatches(train.images, self._train_sampler, self.batch_size, num_batches, seed, self.augment)

    def train_dataloader(self) -> DataLoader:
        seed = torch.initial_seed() % 2**62 if self.seed is None else self.seed
        rank, world = self._rank_and_world()
        dataset = self.train_batches(seed)
        if len(dataset) < world:
            raise ValueError(
                f"an epoch of {len(dataset)} batches of {self.batch_size} (pairs_per_epoch={self.pairs_per_epoch}, "
                f"pair_sampling={self.pair_sampling!r}) has fewer batches than the {world} processes"
            )
        sampler = EpochKeySampler(dataset, num_replicas=world, rank=rank, shuffle=False, drop_last=True)
        if self.trainer is not None and self.trainer.overfit_batches:  # the sampler Lightning would swap in
            sampler = SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _evaluation_loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self._cached_evaluation_set("val"))

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self._cached_evaluation_set("test"))

    def predict_dataloader(self) -> DataLoader:
        collection = self.split(self.predict_split)
        return self._evaluation_loader(EvaluationSet(collection))


class OmniglotDataModule(SiameseDataModule):
    """Omniglot split by alphabet: class = character, group = alphabet, instance = drawer.

    The defaults follow Koch et al.: train on the background alphabets, validate on 20-way
    1-shot within-alphabet tasks over 10 evaluation alphabets, test on the other 10.

    Args:
        root: folder with the Omniglot sets (official zips or extracted folders).
        sets: which sets to load (``images_background``, ``images_evaluation``, the
            small sets ``images_background_small1``/``2``).
        val_alphabets: alphabets held out for validation (Koch: 10 evaluation alphabets).
        test_alphabets: alphabets held out for testing (the other 10).
        train_alphabets: alphabets to train on; ``None`` takes every other loaded one.
        train_drawers: train only on the images of drawers 1..``train_drawers`` (each
            character's ``<id>_<drawer>.png`` number); Koch et al. used 12 of the 20.
            ``None`` uses every drawer. Validation and test keep all drawers.
        download: fetch missing sets from the official repository (checksums verified).
        invert: strokes bright on black (default) rather than Omniglot's black on white.
        skip_bad_images: warn about and skip undecodable files instead of failing.
        same_alphabet_prob: probability that a different-character pair stays within one
            alphabet (the harder negatives the within-alphabet test asks about).
        within_alphabet: draw each task's characters from one alphabet (Koch's task).
        ink_fill: centre every image (training, validation, test, Lake's runs) on its
            strokes' bounding box and scale it so that their longer side spans this fraction
            of the image, before resizing to ``image_size``; None keeps the drawing box.
        runs_dir: Lake et al.'s 20 one-shot runs (a folder holding ``run01/`` ..., a folder
            with ``all_runs/`` or ``all_runs.zip``, or the zip); when set, the test stage
            scores them (``test/lake_runs_acc``, ``lake_runs.json``) instead of episodes over
            the test alphabets. With ``download``, a missing ``all_runs.zip`` is fetched.
        **kwargs: the options of :class:`SiameseDataModule` (batches, evaluation, loaders).
    """

    def __init__(
        self,
        root: str = "data/omniglot",
        sets: Sequence[str] = ("images_background", "images_evaluation"),
        val_alphabets: Sequence[str] = tuple(OMNIGLOT_VAL_ALPHABETS),
        test_alphabets: Sequence[str] = tuple(OMNIGLOT_TEST_ALPHABETS),
        train_alphabets: Sequence[str] | None = None,
        train_drawers: int | None = None,
        download: bool = False,
        invert: bool = True,
        skip_bad_images: bool = False,
        same_alphabet_prob: float = 0.5,
        within_alphabet: bool = True,
        ink_fill: float | None = None,
        runs_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(same_group_prob=same_alphabet_prob, within_group=within_alphabet, **kwargs)
        self.save_hyperparameters(ignore=["augment"])
        overlap = set(val_alphabets) & set(test_alphabets)
        if overlap:
            raise ValueError(f"val_alphabets and test_alphabets must be disjoint; both name {sorted(overlap)}")
        if train_alphabets is not None:
            overlap = set(train_alphabets) & (set(val_alphabets) | set(test_alphabets))
            if overlap:
                raise ValueError(f"train_alphabets must not name held-out alphabets: {sorted(overlap)}")
        self.root = root
        self.sets = list(sets)
        self.val_alphabets = list(val_alphabets)
        self.test_alphabets = list(test_alphabets)
        self.train_alphabets = None if train_alphabets is None else list(train_alphabets)
        if train_drawers is not None and train_drawers < 2:
            raise ValueError(f"train_drawers must be >= 2 (a same-character pair needs two drawers), got {train_drawers}")
        self.train_drawers = train_drawers
        self.download = download
        self.invert = invert
        self.skip_bad_images = skip_bad_images
        if ink_fill is not None and not 0.0 < ink_fill <= 1.0:
            raise ValueError(f"ink_fill must be in (0, 1] (the strokes' share of the image side), got {ink_fill}")
        self.ink_fill = ink_fill
        self.runs_dir = runs_dir

    def prepare_data(self) -> None:
        if self.download:  # fetch once, on one process; setup() then only reads
            for name in self.sets:
                locate_omniglot_set(self.root, name, download=True)
            if self.runs_dir is not None:
                locate_lake_runs(self.runs_dir, download=True)

    def test_set(self) -> EvaluationSet:
        if self.runs_dir is None:
            return super().test_set()
        collection, episodes = load_lake_runs(self.runs_dir, self.image_size, self.invert, self.download, self.ink_fill)
        log.info("Lake's runs at %s: %s", self.runs_dir, collection.summary())
        return lake_runs_set(collection, episodes)

    def load_collection(self) -> ImageCollection:
        return load_omniglot(
            self.root,
            self.sets,
            image_size=self.image_size,
            invert=self.invert,
            download=self.download,
            skip_bad_images=self.skip_bad_images,
            ink_fill=self.ink_fill,
        )

    def select_split(self, name: str) -> ImageCollection:
        loaded = self.collection.group_names
        if name == "train":
            alphabets = self.train_alphabets or [
                a for a in loaded if a not in self.val_alphabets and a not in self.test_alphabets
            ]
            if not alphabets:
                raise ValueError("no alphabets left to train on: every loaded alphabet is held out")
        else:
            alphabets = self.val_alphabets if name == "val" else self.test_alphabets
            if not alphabets:
                raise ValueError(f"no {name} alphabets configured ({name}_alphabets is empty)")
        missing = [a for a in alphabets if a not in loaded]
        if missing:
            raise ValueError(
                f"{name} alphabet(s) {missing} are not in the loaded sets {self.sets} under "
                f"{self.root}; loaded alphabets: {loaded}"
            )
        split = self.collection.select_groups(alphabets)
        if name == "train" and self.train_drawers is not None:
            split = split.select_images(split.instances <= self.train_drawers)
        return split


class FolderDataModule(SiameseDataModule):
    """Any ``root/<class>/<image>`` tree (classes may nest), split by class.

    Classes with fewer than ``min_images`` images cannot give a training positive: by
    default they become test classes (novel classes, the DarkShotLearning seed's rule), or
    they are dropped (``small_classes: drop``); either way they are reported. The other
    classes are shuffled with ``split_seed`` and a ``val_fraction`` and ``test_fraction`` of
    them held out, or whole top-level folders with ``split_by: group``. A data summary
    (classes, images per class, sizes before resizing, what went where) is printed at set-up
    and logged to TensorBoard as text.

    Args:
        root: the folder tree.
        channels: 1 (grayscale) or 3 (RGB).
        min_images: images a class needs to take part in training.
        small_classes: ``"test"`` or ``"drop"``, for classes under ``min_images``.
        val_fraction, test_fraction: share of the (large enough) classes or groups held out.
        split_by: ``"class"`` or ``"group"`` (top-level folder).
        split_seed: the seed of that split.
        skip_bad_images: warn about and skip unreadable or non-image files instead of failing.
        class_depth: which folder level names a class: ``"leaf"`` (the folder holding the
            images), or ``k`` (the first k levels under ``root``: 1 = top-level folder), so
            one nested tree gives several label granularities; the summary prints the class
            count at every depth the tree allows.
        same_group_prob, within_group, n_way: as in :class:`SiameseDataModule`, with
            defaults for ungrouped folders (0, False, 5-way).
        **kwargs: the other options of :class:`SiameseDataModule`.
    """

    def __init__(
        self,
        root: str,
        channels: int = 1,
        min_images: int = 2,
        small_classes: str = "test",
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        split_by: str = "class",
        split_seed: int = 0,
        skip_bad_images: bool = False,
        class_depth: int | str = "leaf",
        same_group_prob: float = 0.0,
        within_group: bool = False,
        n_way: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(same_group_prob=same_group_prob, within_group=within_group, n_way=n_way, **kwargs)
        self.save_hyperparameters(ignore=["augment"])
        if small_classes not in ("test", "drop"):
            raise ValueError(f"small_classes must be 'test' or 'drop', got {small_classes!r}")
        if split_by not in ("class", "group"):
            raise ValueError(f"split_by must be 'class' or 'group', got {split_by!r}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(
                f"val_fraction and test_fraction must be in [0, 1) and sum below 1, got {val_fraction} and {test_fraction}"
            )
        if min_images < 2:
            raise ValueError(f"min_images must be at least 2 (a positive pair needs two images), got {min_images}")
        self.root = root
        self.channels = channels
        self.min_images = min_images
        self.small_classes = small_classes
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.split_by = split_by
        self.split_seed = split_seed
        self.skip_bad_images = skip_bad_images
        self.class_depth = class_depth
        self._assignment: dict[str, list[int]] | None = None
        self.summary = ""

    def load_collection(self) -> ImageCollection:
        collection, self._load_summary = load_image_folder(
            self.root, self.image_size, self.channels, self.skip_bad_images, self.class_depth
        )
        return collection

    def _assign(self) -> dict[str, list[int]]:
        """Class indices of each split, and the dropped ones."""
        if self._assignment is None:
            data = self.collection
            counts = torch.bincount(data.labels, minlength=data.num_classes)
            small = [c for c in range(data.num_classes) if counts[c] < self.min_images]
            large = [c for c in range(data.num_classes) if counts[c] >= self.min_images]
            rng = np.random.default_rng(self.split_seed)
            # The unit held out is a class, or a whole top-level group of classes.
            unit = (lambda c: int(data.class_groups[c])) if self.split_by == "group" else (lambda c: c)
            units = sorted({unit(c) for c in large})
            order = [units[i] for i in rng.permutation(len(units))]
            n_val, n_test = round(self.val_fraction * len(order)), round(self.test_fraction * len(order))
            split_of = {u: "val" for u in order[:n_val]} | {u: "test" for u in order[n_val : n_val + n_test]}
            which = {c: split_of.get(unit(c), "train") for c in large}
            assignment = {k: sorted(c for c in large if which[c] == k) for k in ("train", "val", "test")}
            assignment["dropped"] = small if self.small_classes == "drop" else []
            if self.small_classes == "test":
                assignment["test"] = sorted(assignment["test"] + small)
            self._assignment = assignment
            self.summary = self._summary_text(assignment, counts)
        return self._assignment

    def _summary_text(self, assignment: dict[str, list[int]], counts: torch.Tensor) -> str:
        data = self.collection
        info = self._load_summary
        lines = [
            f"Folder data set {self.root}: {data.num_classes} classes, {len(data)} images, "
            f"{int(counts.min())}-{int(counts.max())} images per class (median {int(counts.median())}); "
            f"sizes before resizing {info['original_width'][0]}-{info['original_width'][1]} x "
            f"{info['original_height'][0]}-{info['original_height'][1]} px, resized to {self.image_size}x{self.image_size}, "
            f"{self.channels} channel(s).",
            f"  classes by class_depth: {depth_counts(info)}; using class_depth {self.class_depth}.",
        ]
        for name in ("train", "val", "test"):
            classes = assignment[name]
            lines.append(f"  {name}: {len(classes)} classes, {int(counts[classes].sum()) if classes else 0} images")
        small = [data.class_names[c] for c in range(data.num_classes) if counts[c] < self.min_images]
        if small:
            fate = "moved to the test split as novel classes" if self.small_classes == "test" else "dropped"
            lines.append(f"  {len(small)} classes with fewer than {self.min_images} images {fate}: {', '.join(small[:20])}"
                         + (" ..." if len(small) > 20 else ""))
        if info["skipped"]:
            lines.append(f"  {len(info['skipped'])} unreadable files skipped: {', '.join(info['skipped'][:10])}")
        return "\n".join(lines)

    def select_split(self, name: str) -> ImageCollection:
        classes = self._assign()[name]
        if not classes:
            raise ValueError(
                f"the {name} split of {self.root} has no classes (val_fraction={self.val_fraction}, "
                f"test_fraction={self.test_fraction}, {self.collection.num_classes} classes)"
            )
        return self.collection.select_classes(classes)

    def setup(self, stage: str) -> None:
        self._assign()
        self._publish_summary(self.summary, to_tensorboard=stage == "fit")
        super().setup(stage)


class LFWDataModule(SiameseDataModule):
    """Labeled Faces in the Wild for face verification: validated and tested on pair lists.

    The validation pairs are a seeded ``val_fraction`` of the training pair list, stratified
    by label; the test stage scores the official test list (``pairsDevTest.txt``), or with
    ``view2_fold`` one fold of View 2. Training either fits the remaining training pairs as
    they are, shuffled each epoch (``train_on: pairs``, the LFW seed's protocol), or draws
    fresh pairs, triplets or P x K batches (``batch_kind``) from every image of the training
    people (``train_on: people``). Then the people of the validation pairs are left out of
    training, so no validation face is trained on; with the pair protocol they overlap, as
    in the seed, and the data summary counts them.

    Images are centre-cropped to ``crop`` pixels (LFW's faces sit in the middle of 250x250
    images), resized to ``image_size`` whatever their size, and converted to ``channels``
    whatever their mode.

    Args:
        root: folder with the images (any LFW layout, or a zip in it such as LFW-a's
            ``lfw-a.zip``) and the pair and people lists.
        images: the image folder or zip, when it is not ``root``.
        train_pairs, test_pairs: pair lists, relative to ``root`` unless absolute.
        train_people: people list for ``train_on: people`` (``peopleDevTrain.txt``:
            4,038 people); ``None`` takes the people of the training pairs.
        train_on: ``"pairs"`` or ``"people"``.
        val_fraction, split_seed: share of the training pairs held out for validation, and
            the seed of that choice.
        view2_fold: fold k (1-10) of View 2's ``view2_pairs``: train on the other folds' pairs
            (less the validation share), test on fold k. The official protocol repeats this for
            every k and reports the mean accuracy and its standard error.
        channels: 1 (grayscale) or 3 (RGB).
        crop: centre crop in pixels before resizing; ``None`` keeps the whole image.
        download: fetch missing images (``image_set``) and official lists from ``download_url``.
        koch_distortions: with ``train_on: pairs``, distorted copies of each pair (needs
            ``augment: KochAffine``); 0 trains on the pairs as they are.
        **kwargs: the options of :class:`SiameseDataModule` (batches, loaders, image size).
    """

    task = "verification"

    def __init__(
        self,
        root: str = "data/lfw",
        images: str | None = None,
        train_pairs: str = "pairsDevTrain.txt",
        test_pairs: str | None = "pairsDevTest.txt",
        train_people: str | None = None,
        train_on: str = "pairs",
        val_fraction: float = 0.2,
        split_seed: int = 0,
        view2_fold: int | None = None,
        view2_pairs: str = "pairs.txt",
        channels: int = 1,
        crop: int | None = None,
        download: bool = False,
        image_set: str = "original",
        download_url: str = LFW_URL,
        batch_size: int = 32,
        koch_distortions: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size, koch_distortions=koch_distortions, same_group_prob=0.0, within_group=False, **kwargs
        )
        self.save_hyperparameters(ignore=["augment"])
        if train_on not in ("pairs", "people"):
            raise ValueError(f"train_on must be 'pairs' or 'people', got {train_on!r}")
        if train_on == "pairs" and self.batch_kind != "pairs":
            raise ValueError(f"train_on 'pairs' trains on the pair list: set batch_kind 'pairs', not {self.batch_kind!r}")
        if train_on == "pairs" and koch_distortions and not isinstance(self.augment, KochAffine):
            raise ValueError(f"koch_distortions={koch_distortions} distorts pairs with augment: KochAffine, got {self.augment!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if view2_fold is not None and view2_fold < 1:
            raise ValueError(f"view2_fold counts from 1, got {view2_fold}")
        self.root = Path(root)
        self.images = images
        self.train_pairs, self.test_pairs, self.train_people = train_pairs, test_pairs, train_people
        self.train_on = train_on
        self.val_fraction, self.split_seed = val_fraction, split_seed
        self.view2_fold, self.view2_pairs = view2_fold, view2_pairs
        self.channels, self.crop = channels, crop
        self.download, self.image_set, self.download_url = download, image_set, download_url
        self._files: LFWFiles | None = None
        self._lists: dict[str, PairList] = {}
        self._index: dict[str, dict[tuple[str, int], int]] = {}
        self.summary = ""

    # --- files ----------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.root / path

    def _list_names(self) -> list[str]:
        names = [self.view2_pairs] if self.view2_fold is not None else [self.train_pairs, self.test_pairs]
        return [n for n in [*names, self.train_people if self.train_on == "people" else None] if n is not None]

    def prepare_data(self) -> None:
        if not self.download:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.files  # opens the images if they are there
        except FileNotFoundError:
            download_lfw_images(self._image_root, self.image_set, self.download_url)
        for name in self._list_names():
            if not self._path(name).is_file():
                download_lfw_list(self._path(name), self.download_url)

    @property
    def _image_root(self) -> Path:
        return Path(self.images) if self.images else self.root

    @property
    def files(self) -> LFWFiles:
        if self._files is None:
            self._files = find_lfw_images(self._image_root)
        return self._files

    def pair_list(self, name: str) -> PairList:
        """The ``train`` (less validation), ``val`` or ``test`` pairs, checked against the images."""
        if name not in self._lists:
            if name == "test":
                self._lists["test"] = self._read_test_list()
            else:
                self._lists["train"], self._lists["val"] = self._carve_validation(self._read_training_list())
            self.files.check_pairs(self._lists[name])
        return self._lists[name]

    def _read_view2(self) -> PairList:
        pairs = read_pairs(self._path(self.view2_pairs))
        folds = int(pairs.folds.max()) + 1
        if self.view2_fold > folds:
            raise ValueError(f"view2_fold={self.view2_fold}, but {pairs.source} has {folds} folds")
        return pairs

    def _read_training_list(self) -> PairList:
        if self.view2_fold is None:
            return read_pairs(self._path(self.train_pairs))
        pairs = self._read_view2()
        return pairs.select(pairs.folds != self.view2_fold - 1)

    def _read_test_list(self) -> PairList:
        if self.view2_fold is not None:
            pairs = self._read_view2()
            return pairs.select(pairs.folds == self.view2_fold - 1)
        if self.test_pairs is None:
            raise ValueError("the test stage needs test_pairs (e.g. pairsDevTest.txt) or view2_fold")
        return read_pairs(self._path(self.test_pairs))

    def _carve_validation(self, pairs: PairList) -> tuple[PairList, PairList]:
        """A seeded ``val_fraction`` of the matched and of the mismatched pairs for validation."""
        rng = np.random.default_rng(self.split_seed)
        val = torch.zeros(len(pairs), dtype=torch.bool)
        for label in (1, 0):
            members = torch.nonzero(pairs.same == label).flatten().numpy()
            chosen = rng.choice(members, size=round(self.val_fraction * len(members)), replace=False)
            val[torch.from_numpy(chosen)] = True
        if not val.any() or val.all():
            raise ValueError(f"val_fraction={self.val_fraction} of {len(pairs)} pairs leaves no validation or no training pairs")
        return pairs.select(~val), pairs.select(val)

    def training_images(self) -> list[tuple[str, int]]:
        """The training images: those of the training pairs, or every image of the training people."""
        train = self.pair_list("train")
        if self.train_on == "pairs":
            return train.images()
        counts = dict(self.files.people())
        if self.train_people is not None:
            listed = read_people(self._path(self.train_people))
        else:
            listed = [(p, counts.get(p, 0)) for p in sorted(train.people())]
        test = self._test_people()
        overlap = sorted(p for p, _ in listed if p in test)
        if overlap:
            raise ValueError(
                f"{len(overlap)} training people are in the test pairs ({', '.join(overlap[:5])}"
                f"{' ...' if len(overlap) > 5 else ''}): test faces must never be trained on"
            )
        held_out = self.pair_list("val").people()
        images = [(p, n) for p, count in listed if p not in held_out for n in range(1, count + 1)]
        for person, number in images:
            if not self.files.exists(person, number):
                raise FileNotFoundError(
                    f"{self.train_people or 'the training pairs'} lists {person} with at least {number} images, "
                    f"but {self.files.where(person, number)} does not exist"
                )
        return images

    def _test_people(self) -> set[str]:
        """People of the test pairs, when the list is here (it may be held back while training)."""
        try:
            return self._read_test_list().people()
        except (FileNotFoundError, ValueError):
            return set()

    # --- splits and evaluation -----------------------------------------------------------

    def select_split(self, name: str) -> ImageCollection:
        names = self.training_images() if name == "train" else self.pair_list(name).images()
        collection, self._index[name] = load_lfw(self.files, names, self.image_size, self.channels, self.crop)
        return collection

    def pair_indices(self, split: str) -> dict[str, torch.Tensor]:
        """The split's pairs as indices into its collection: ``first``, ``second``, ``same``, ``folds``."""
        self.split(split)  # loads the split's images and fills _index[split]
        pairs, index = self.pair_list(split), self._index[split]
        return {
            "first": torch.tensor([index[p] for p in pairs.first]),
            "second": torch.tensor([index[p] for p in pairs.second]),
            "same": pairs.same.clone(),
            "folds": pairs.folds.clone(),
        }

    def evaluation_set(self, split: str, **_: Any) -> EvaluationSet:
        """The split's pairs, scored as a verification benchmark (no episodes)."""
        pairs = self.pair_list(split)
        return EvaluationSet(self.split(split), pairs=self.pair_indices(split), name="verification", source=pairs.source)

    def _batch_sampler(self, train: ImageCollection) -> BatchSampler | None:
        return None if self.train_on == "pairs" else super()._batch_sampler(train)

    def train_batches(self, seed: int) -> Dataset:
        if self.train_on == "people":
            return super().train_batches(seed)
        pairs = {k: v.numpy() for k, v in self.pair_indices("train").items() if k != "folds"}
        return KochPairBatches(self.split("train").images, pairs, self.batch_size, seed, self.koch_distortions, self.augment)

    def describe(self) -> str:
        """People, images and pairs of each split, for the log and TensorBoard."""
        train, val = self.pair_list("train"), self.pair_list("val")
        lines = [f"LFW images at {self.files.root} ({self.files.prefix or 'top level'}), resized to "
                 f"{self.image_size}x{self.image_size}, {self.channels} channel(s), crop {self.crop}."]
        for name, pairs in (("training", train), ("validation", val)):
            lines.append(
                f"  {name} pairs: {len(pairs)} ({int(pairs.same.sum())} matched) from {pairs.source}, "
                f"{len(pairs.people())} people, {len(pairs.images())} images"
            )
        shared = train.people() & val.people()
        if self.train_on == "pairs":
            lines.append(f"  training on the pair list; {len(shared)} validation people also appear in training pairs")
        else:
            train_split = self.split("train")
            counts = torch.bincount(train_split.labels)
            lines.append(
                f"  training on {len(train_split)} images of {train_split.num_classes} people "
                f"({self.train_people or 'the training pairs people'}, less the {len(val.people())} validation people): "
                f"median {int(counts.median())} images per person, {int((counts >= 2).sum())} people with 2 or more"
            )
        return "\n".join(lines)

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.summary = self.describe()
            self._publish_summary(self.summary, to_tensorboard=True)
        super().setup(stage)


class MNISTDataModule(SiameseDataModule):
    """MNIST digits (through torchvision's ``MNIST``) for the triplet write-up of the ekeany seed.

    Unlike the one-shot modules, the splits share the ten classes: ``val`` is a seeded
    ``val_size`` of the 60,000 training digits, ``train`` the rest, ``test`` the 10,000
    MNIST test digits. Validation episodes are 10-way (every digit) ``k_shot`` tasks.
    Digits are bright on black, as MNIST stores them.

    Args:
        root: torchvision's root (files in ``<root>/MNIST/raw/``).
        files: a folder holding the four official ``.gz`` files, linked into the root
            (e.g. ``../shared/data/mnist``); ``None`` uses what the root holds.
        download: fetch missing files (torchvision, checksums verified).
        val_size: training digits held out for validation.
        split_seed: the seed of that hold-out.
        **kwargs: the options of :class:`SiameseDataModule`.
    """

    def __init__(
        self,
        root: str = "data/mnist",
        files: str | None = None,
        download: bool = False,
        val_size: int = 5000,
        split_seed: int = 0,
        image_size: int = 28,
        n_way: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(image_size=image_size, n_way=n_way, **kwargs)
        self.save_hyperparameters(ignore=["augment"])
        if val_size < 1:
            raise ValueError(f"val_size must be at least 1, got {val_size}")
        self.root, self.files, self.download = root, files, download
        self.val_size, self.split_seed = val_size, split_seed
        self.invert = False  # read_image and the baselines: MNIST digits are already bright on black
        self._num_train = 0

    def prepare_data(self) -> None:
        if self.download:  # fetch once, on one process
            load_mnist(self.root, self.files, download=True, image_size=self.image_size)

    def load_collection(self) -> ImageCollection:
        collection, self._num_train = load_mnist(self.root, self.files, self.download, self.image_size)
        if self.val_size >= self._num_train:
            raise ValueError(f"val_size={self.val_size} leaves no training digits out of {self._num_train}")
        return collection

    def select_split(self, name: str) -> ImageCollection:
        collection = self.collection
        keep = torch.zeros(len(collection), dtype=torch.bool)
        if name == "test":
            keep[self._num_train :] = True
        else:
            held_out = torch.from_numpy(np.random.default_rng(self.split_seed).permutation(self._num_train)[: self.val_size])
            keep[held_out] = True
            if name == "train":
                keep[: self._num_train] = ~keep[: self._num_train]
        return collection.select_images(keep)

