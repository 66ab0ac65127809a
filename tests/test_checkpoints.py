"""Checkpoints written by an earlier release (tests/data/checkpoints/) still load and predict.

They come from `tests/data/make_checkpoints.py`; a refactor that breaks them breaks users'.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.bart_summarization import BartSummarizationTask
from tasks.bert_news import BertNewsTask
from tasks.cat_segmentation import CatSegmentationTask
from tasks.cli import cli
from tasks.face_expression import FaceExpressionTask
from tasks.imdb_lstm import ImdbSentimentTask
from tasks.logo import LogoTask

SAVED = Path(__file__).parent / "data" / "checkpoints"
CONFIGS = Path(__file__).parents[1] / "configs"
TASKS = {
    "bart_summarization": BartSummarizationTask,
    "bert_news": BertNewsTask,
    "face_expression": FaceExpressionTask,
    "imdb_lstm": ImdbSentimentTask,
    "cat_segmentation": CatSegmentationTask,
    "logo": LogoTask,  # one value per tensor (make_checkpoints.py `_compact`): 131 KB, not 16 MB
}


@pytest.mark.parametrize("app", sorted(TASKS))
def test_saved_checkpoint_loads_safely_and_predicts(app: str, tmp_path: Path) -> None:
    checkpoint = SAVED / f"{app}.ckpt"
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)  # primitives only
    assert saved["state_dict"]
    model = TASKS[app].load_from_checkpoint(checkpoint, map_location="cpu")
    if app == "bart_summarization":
        inputs = tmp_path / "documents.txt"
        inputs.write_text("Kelso council approved a budget of 9 million pounds on Monday.\n")
        (summary,) = model.summarize(inputs.read_text().splitlines())
        assert isinstance(summary, str)
    elif app in ("imdb_lstm", "bert_news"):
        inputs = tmp_path / "reviews.txt"
        inputs.write_text("A wonderful film.\nNot good at all.\n")
        (row, _) = model.predict_texts(inputs.read_text().splitlines())
        assert row["predicted"] in model.class_names
    else:
        inputs = tmp_path / "images"
        inputs.mkdir()
        pixels = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(inputs / "photo.png")
        (row,) = model.predict_images([inputs / "photo.png"])
        assert row["path"].endswith("photo.png")
    # and through the CLI, with no data but the inputs
    args = ["predict", "-c", str(CONFIGS / f"{app}.yaml"), f"--ckpt_path={checkpoint}"]
    result = cli([*args, f"--data.init_args.predict_path={inputs}"])
    if app == "bart_summarization":
        assert (Path(result.trainer.log_dir) / "summaries.jsonl").read_text()
        return
    with (Path(result.trainer.log_dir) / "predictions.csv").open() as handle:
        assert list(csv.DictReader(handle))
