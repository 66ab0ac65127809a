"""PredictionWriter: one CSV per run, images in rows saved as PNGs without overwriting."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from lightning.pytorch import LightningModule, Trainer
from PIL import Image
from torch.utils.data import DataLoader

from callbacks.prediction_writer import PredictionWriter

PATHS = ["a/cat.jpg", "b/cat.jpg", "c/dog.png"]  # two share the stem "cat"


class MaskPredictor(LightningModule):
    def predict_step(self, batch, batch_idx):
        return [
            {"path": path, "score": 1 / 3, "mask": Image.new("L", (4, 2), 255)} for path in batch
        ]

    def predict_dataloader(self):
        return DataLoader(PATHS, batch_size=2)


def test_rows_and_images(tmp_path: Path) -> None:
    trainer = Trainer(
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        callbacks=[PredictionWriter()],
    )
    trainer.predict(MaskPredictor(), return_predictions=False)
    with (tmp_path / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["path"] for r in rows] == PATHS
    assert [r["score"] for r in rows] == ["0.333333"] * 3
    masks = [r["mask"] for r in rows]
    assert masks == [
        "predictions/cat_mask.png",
        "predictions/cat-1_mask.png",
        "predictions/dog_mask.png",
    ]
    assert all(Image.open(tmp_path / m).size == (4, 2) for m in masks)


def test_filename_must_be_csv() -> None:
    with pytest.raises(ValueError, match="filename must end with .csv"):
        PredictionWriter(filename="out.txt")


def test_counts_read_as_english(tmp_path: Path, lightning_info) -> None:
    from datamodules.common import size_summary

    class One(MaskPredictor):
        def predict_dataloader(self):
            return DataLoader(PATHS[:1], batch_size=1)

    trainer = Trainer(logger=False, default_root_dir=tmp_path, callbacks=[PredictionWriter()])
    trainer.predict(One(), return_predictions=False)
    assert "Wrote 1 prediction to" in lightning_info.text
    assert size_summary([(4, 2)]).endswith("(1 image)")
