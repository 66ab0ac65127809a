"""Callbacks shared by every task: LR schedules, diagnostics, prediction writing, media."""

from callbacks.finite_loss import FiniteLoss
from callbacks.first_layer import FirstLayerFilters
from callbacks.freeze_backbone import FreezeBackbone
from callbacks.histograms import ActivationHistograms
from callbacks.initial_loss import InitialLossCheck
from callbacks.last_checkpoint import LastCheckpoint
from callbacks.lr_finder import LRFinder
from callbacks.lr_schedule import LRSchedule
from callbacks.prediction_writer import PredictionWriter
from callbacks.progress_bar import RunProgressBar
from callbacks.run_summary import RunSummary
from callbacks.update_ratio import UpdateRatioMonitor

__all__ = [
    "ActivationHistograms",
    "FiniteLoss",
    "FirstLayerFilters",
    "FreezeBackbone",
    "InitialLossCheck",
    "LastCheckpoint",
    "LRFinder",
    "LRSchedule",
    "PredictionWriter",
    "RunProgressBar",
    "RunSummary",
    "UpdateRatioMonitor",
]
