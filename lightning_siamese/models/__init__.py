from lightning_siamese.models.encoders import KochEncoder
from lightning_siamese.models.heads import ContrastiveHead, DistanceHead, KochHead, PairHead, TripletHead
from lightning_siamese.models.module import SiameseModule

__all__ = ["ContrastiveHead", "DistanceHead", "KochEncoder", "KochHead", "PairHead", "SiameseModule", "TripletHead"]
