"""LightningDataModules, one per application; each falls back to a built-in `demo` source."""

from datamodules.face_expression import FaceExpressionDataModule

__all__ = ["FaceExpressionDataModule"]
