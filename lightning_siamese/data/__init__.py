from lightning_siamese.data.datamodules import (
    EvaluationSet,
    FolderDataModule,
    KochPairBatches,
    LFWDataModule,
    MNISTDataModule,
    OmniglotDataModule,
    SampledBatches,
    SiameseDataModule,
)
from lightning_siamese.data.samplers import (
    BalancedPairSampler,
    ClassBalancedSampler,
    Episodes,
    ImagePairSampler,
    TripletSampler,
    sample_episodes,
)
from lightning_siamese.data.signature_datamodule import SignatureDataModule
from lightning_siamese.data.sources import ImageCollection, load_image_folder, load_lake_runs, load_omniglot
from lightning_siamese.data.transforms import AlignmentViews, DarkShotAugment, KochAffine

__all__ = [
    "AlignmentViews",
    "BalancedPairSampler",
    "ClassBalancedSampler",
    "DarkShotAugment",
    "Episodes",
    "EvaluationSet",
    "FolderDataModule",
    "ImagePairSampler",
    "ImageCollection",
    "KochAffine",
    "KochPairBatches",
    "LFWDataModule",
    "MNISTDataModule",
    "OmniglotDataModule",
    "TripletSampler",
    "SampledBatches",
    "SiameseDataModule",
    "SignatureDataModule",
    "load_image_folder",
    "load_lake_runs",
    "load_omniglot",
    "sample_episodes",
]
