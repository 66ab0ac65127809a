"""Callbacks shared by every task: prediction writing and logger-agnostic media."""

from callbacks.prediction_writer import PredictionWriter

__all__ = ["PredictionWriter"]
