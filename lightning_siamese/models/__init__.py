from lightning_siamese.models.encoders import (
    ConvNetEncoder,
    EnsembleEncoder,
    KochEncoder,
    SigNet,
    SmallConvEmbedding,
)
from lightning_siamese.models.heads import (
    ClassifierHead,
    ContrastiveHead,
    CosFaceHead,
    DistanceHead,
    KochHead,
    PairHead,
    PrototypicalHead,
    TripletHead,
)
from lightning_siamese.models.module import SiameseModule

__all__ = [
    "ClassifierHead",
    "ContrastiveHead",
    "ConvNetEncoder",
    "CosFaceHead",
    "DistanceHead",
    "EnsembleEncoder",
    "KochEncoder",
    "KochHead",
    "PairHead",
    "PrototypicalHead",
    "SiameseModule",
    "SigNet",
    "SmallConvEmbedding",
    "TripletHead",
]
