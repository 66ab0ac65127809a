"""LightningModules, one per application, plus the `zoo` command line (`tasks.cli`)."""

from tasks.cat_segmentation import CatSegmentationTask
from tasks.face_expression import FaceExpressionTask
from tasks.imdb_lstm import ImdbSentimentTask
from tasks.logo import LogoTask

__all__ = ["CatSegmentationTask", "FaceExpressionTask", "ImdbSentimentTask", "LogoTask"]
