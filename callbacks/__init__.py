"""Callbacks shared by every task: LR schedules, diagnostics, prediction writing, media."""

from callbacks.lr_finder import LRFinder
from callbacks.lr_schedule import LRSchedule
from callbacks.prediction_writer import PredictionWriter

__all__ = ["LRFinder", "LRSchedule", "PredictionWriter"]
