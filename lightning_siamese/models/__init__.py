from lightning_siamese.models.encoders import KochEncoder
from lightning_siamese.models.heads import KochHead, PairHead
from lightning_siamese.models.module import SiameseModule

__all__ = ["KochEncoder", "KochHead", "PairHead", "SiameseModule"]
