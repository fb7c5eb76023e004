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
from lightning_siamese.models.miners import (
    AllPairsMiner,
    BatchAllMiner,
    BatchHardMiner,
    HardPairsMiner,
    SemiHardMiner,
    TripletCap,
    TripletPairsMiner,
)
from lightning_siamese.models.module import SiameseModule

__all__ = [
    "AllPairsMiner",
    "BatchAllMiner",
    "BatchHardMiner",
    "ClassifierHead",
    "ContrastiveHead",
    "ConvNetEncoder",
    "CosFaceHead",
    "DistanceHead",
    "EnsembleEncoder",
    "HardPairsMiner",
    "KochEncoder",
    "KochHead",
    "PairHead",
    "PrototypicalHead",
    "SemiHardMiner",
    "SiameseModule",
    "SigNet",
    "SmallConvEmbedding",
    "TripletCap",
    "TripletHead",
    "TripletPairsMiner",
]
