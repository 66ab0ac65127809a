"""LightningDataModules, one per application; each falls back to a built-in `demo` source."""

from datamodules.cat_segmentation import CatSegmentationDataModule
from datamodules.face_expression import FaceExpressionDataModule
from datamodules.imdb import ImdbDataModule
from datamodules.logo import LogoDataModule
from datamodules.news import NewsDataModule
from datamodules.summarization import SummarizationDataModule

__all__ = [
    "CatSegmentationDataModule",
    "FaceExpressionDataModule",
    "ImdbDataModule",
    "LogoDataModule",
    "NewsDataModule",
    "SummarizationDataModule",
]
