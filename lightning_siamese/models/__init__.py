from lightning_siamese.models.encoders import ConvNetEncoder, KochEncoder, SigNet, SmallConvEmbedding
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
    "KochEncoder",
    "KochHead",
    "PairHead",
    "PrototypicalHead",
    "SiameseModule",
    "SigNet",
    "SmallConvEmbedding",
    "TripletHead",
]
