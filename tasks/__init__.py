"""LightningModules, one per application, plus the `zoo` command line (`tasks.cli`)."""

from tasks.face_expression import FaceExpressionTask
from tasks.logo import LogoTask

__all__ = ["FaceExpressionTask", "LogoTask"]
