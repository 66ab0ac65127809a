"""LightningModules, one per application, plus the `zoo` command line (`tasks.cli`)."""

from tasks.face_expression import FaceExpressionTask

__all__ = ["FaceExpressionTask"]
