"""LightningDataModules, one per application; each falls back to a built-in `demo` source."""

from datamodules.face_expression import FaceExpressionDataModule
from datamodules.logo import LogoDataModule

__all__ = ["FaceExpressionDataModule", "LogoDataModule"]
