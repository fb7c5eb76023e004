"""The base data module and its evaluation sets (its training batches: :mod:`.batches`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import cast

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from lightning_siamese.data import trainer_state
from lightning_siamese.data.datamodules.batches import (
    BatchSampler,
    EpochKeySampler,
    KochPairBatches,
    SampledBatches,
    TrainingBatches,
)
from lightning_siamese.data.samplers.classes import ClassBalancedSampler
from lightning_siamese.data.samplers.episodes import Episodes, sample_episodes
from lightning_siamese.data.samplers.pairs import (
    BalancedPairSampler,
    ImagePairSampler,
    TripletSampler,
)
from lightning_siamese.data.samplers.seeds import seed_stream
from lightning_siamese.data.sources.collection import ImageCollection
from lightning_siamese.data.transforms.augment import DarkShotAugment, KochAffine
from lightning_siamese.data.transforms.views import to_float

log = logging.getLogger(__name__)


BATCH_KINDS = ("pairs", "triplets", "classes")


PAIR_SAMPLING = ("balanced", "koch", "darkshot", "darkshot_unbalanced")


class EvaluationSet(Dataset):
    """The images of one split, each once, with the tasks to score them on.

    Items are ``(image, index)``; ``episodes``, ``pairs`` (``first``, ``second``,
    ``same``) and ``triplets`` (``anchor``, ``positive``, ``negative``), fixed by the
    split's seed, index into the same order. ``name`` names the accuracy metric
    (``<stage>/<name>_acc``); a benchmark of named tasks (Lake's runs) gives ``task_names``,
    one per episode, and each task's accuracy is then reported. A verification benchmark
    (LFW's pair lists) has no episodes: its ``pairs`` are the benchmark (with ``folds`` for
    View 2), read from the file ``source``. Each image is given as ``prepare`` makes it: its
    data module's :attr:`~SiameseDataModule.prepare`, set again whenever a loader is built.
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
        prepare: Callable[[torch.Tensor], torch.Tensor] = to_float,
    ) -> None:
        self.collection = collection
        self.prepare = prepare
        self.source = source
        self.episodes = episodes
        self.pairs = pairs or {}
        self.triplets = triplets or {}
        self.name = name
        self.task_names = task_names

    def __len__(self) -> int:
        return len(self.collection)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.prepare(self.collection.images[index]), index


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

    image_size: int | list[int]  # one side; a subclass may keep [height, width] (signatures)
    _train_sampler: BatchSampler | None  # built by setup (None: a subclass that draws its own training batches)

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

    @property
    def prepare(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """How this module's uint8 images ``[..., C, H, W]`` become what the model takes: float tensors.

        The one preparation of the module's images outside training: its evaluation and
        prediction sets give images through it, and whatever embeds the module's images
        elsewhere (the health callback, the end-of-run report, the projector, the tools) passes
        it to :func:`~lightning_siamese.models.embedding.embed_all`. Called like a method,
        ``data.prepare(images)``; a property so that what it returns is a plain callable a
        DataLoader worker can pickle. Here :func:`to_float` ([0, 1]); a module that normalises
        further (signatures: divided by the training pixel std) returns its own.
        """
        return to_float

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
        """Images of ``split`` with a fixed set of episodes (the configured task by default).

        The episodes, pairs and triplets (behind ``val/loss``) are fixed by ``seed`` (the split's
        by default), each through its own stream (:func:`~lightning_siamese.data.samplers.seeds.seed_stream`).
        """
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
        # Episodes, pairs and triplets each draw from their own stream of the one seed.
        pair_sampler = BalancedPairSampler(collection.labels, collection.class_groups, self.same_group_prob)
        drawn = pair_sampler.sample(self.val_pairs, seed_stream(seed, "pairs"))
        pairs = {k: torch.from_numpy(v) for k, v in drawn.items()}
        triplet_sampler = TripletSampler(collection.labels, collection.class_groups, self.same_group_prob)
        drawn = triplet_sampler.sample(self.val_pairs, seed_stream(seed, "triplets"))
        triplets = {k: torch.from_numpy(v) for k, v in drawn.items()}
        return EvaluationSet(collection, episodes, pairs, triplets)

    def _batch_sampler(self, train: ImageCollection) -> BatchSampler | None:
        if self.batch_kind == "pairs" and self.pair_sampling.startswith("darkshot"):
            return ImagePairSampler(train.labels, balanced=self.pair_sampling == "darkshot")
        if self.batch_kind == "pairs":
            return BalancedPairSampler(train.labels, train.class_groups, self.same_group_prob)
        if self.batch_kind == "triplets":
            return TripletSampler(train.labels, train.class_groups, self.same_group_prob)
        self._check_class_batch(train)
        return ClassBalancedSampler(
            train.labels,
            self.batch_size // self.images_per_class,
            self.images_per_class,
            train.class_groups,
            self.same_group_prob,
        )

    def _check_class_batch(self, train: ImageCollection) -> None:
        """A P x K batch needs P training classes of K images: if the split has fewer, say which option to set, and to what.

        An error, not a smaller batch taken quietly with a warning: P is the batch's number of
        negatives for every anchor, which the loss, its mining and the learning rate were
        chosen for, so a run should train on the batch its config names; the message gives
        the command-line value that fits the data (all the classes there are, x K).
        """
        p, k = self.batch_size // self.images_per_class, self.images_per_class
        eligible = int((torch.bincount(train.labels, minlength=train.num_classes) >= k).sum())
        if eligible >= p:
            return
        if eligible >= 2:
            remedy = (
                f"set a batch of the classes there are, --data.init_args.batch_size {eligible * k} "
                f"({eligible} classes x {k} images), or any smaller multiple of images_per_class={k} "
                f"down to {2 * k} (in a config: data.init_args.batch_size)"
            )
        else:
            remedy = (
                "a batch needs two such classes: lower --data.init_args.images_per_class, "
                "or train on more classes (a smaller val_fraction or test_fraction)"
            )
        raise ValueError(
            f"a batch of {p} x {k} (classes x images) needs {p} classes with at least {k} images; the training split "
            f"has {eligible} such classes of {train.num_classes}: {remedy}"
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
        if to_tensorboard and logger is not None:
            experiment = logger.experiment  # type: ignore[attr-defined]  # every Lightning logger has one; its base class does not declare it
            if hasattr(experiment, "add_text"):
                experiment.add_text("data/summary", text.replace("\n", "  \n"))

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

    def train_batches(self, seed: int) -> TrainingBatches:
        """The training set of whole batches, item ``(epoch, b)`` (see :class:`SampledBatches`)."""
        train = self.split("train")
        # Not None: only a subclass that draws its own training batches builds no sampler, and it does not come here.
        sampler = cast(BatchSampler, self._train_sampler)
        if self.pair_sampling == "koch":  # batch_kind "pairs" (checked in __init__): a BalancedPairSampler
            pairs = cast(BalancedPairSampler, sampler).sample_per_group(self.koch_pairs, np.random.default_rng(seed))
            return KochPairBatches(train.images, pairs, self.batch_size, seed, self.koch_distortions, self.augment)
        num_batches = self.pairs_per_epoch // self.batch_size
        return SampledBatches(train.images, sampler, self.batch_size, num_batches, seed, self.augment)

    def train_dataloader(self) -> DataLoader:
        seed = torch.initial_seed() % 2**62 if self.seed is None else self.seed
        rank, world = self._rank_and_world()
        dataset = self.train_batches(seed)
        if len(dataset) < world:
            raise ValueError(
                f"an epoch of {len(dataset)} batches of {self.batch_size} (pairs_per_epoch={self.pairs_per_epoch}, "
                f"pair_sampling={self.pair_sampling!r}) has fewer batches than the {world} processes"
            )
        sampler: Sampler = EpochKeySampler(dataset, num_replicas=world, rank=rank, shuffle=False, drop_last=True)
        if self.trainer is not None and trainer_state.overfit_batches(
            self.trainer
        ):  # the sampler Lightning would swap in
            sampler = SequentialSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def _evaluation_loader(self, dataset: EvaluationSet) -> DataLoader:
        dataset.prepare = self.prepare  # read now: a checkpoint restores what it depends on after setup
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self._cached_evaluation_set("val"))

    def test_dataloader(self) -> DataLoader:
        return self._evaluation_loader(self._cached_evaluation_set("test"))

    def predict_dataloader(self) -> DataLoader:
        collection = self.split(self.predict_split)
        return self._evaluation_loader(EvaluationSet(collection))
