"""LightningModules, one per application, plus the `zoo` command line (`tasks.cli`)."""

from tasks.bart_summarization import BartSummarizationTask
from tasks.bert_news import BertNewsTask
from tasks.cat_segmentation import CatSegmentationTask
from tasks.face_expression import FaceExpressionTask
from tasks.imdb_lstm import ImdbSentimentTask
from tasks.logo import LogoTask

__all__ = [
    "BartSummarizationTask",
    "BertNewsTask",
    "CatSegmentationTask",
    "FaceExpressionTask",
    "ImdbSentimentTask",
    "LogoTask",
]
