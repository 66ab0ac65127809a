"""Offline environment and tiny datasets in the real on-disk formats."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# Caches (tokenised IMDB, ...) go to a throwaway folder, never the user's ~/.cache; so do W&B's
# staged artifacts (offline tables with images) and settings, never ~/.local/share or ~/.config.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="zoo-test-cache-")
for _name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
    os.environ[_name] = str(Path(os.environ["XDG_CACHE_HOME"]) / _name.lower())

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs write `runs/` into the working directory of the config: keep it per test."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def lightning_info(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch):
    """caplog at INFO for Lightning's `rank_zero_info` lines.

    Lightning's logger stops propagating when the root logger had no handler at import.
    """
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "propagate", True)
    caplog.set_level(logging.INFO, logger="lightning.pytorch")
    return caplog


@pytest.fixture(scope="session")
def mouth_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-per-folder tree (train/val) of PNG mouth crops drawn by the demo generator."""
    from PIL import Image

    from datamodules.demo.mouths import CLASS_NAMES, make_mouths

    root = tmp_path_factory.mktemp("mouths")
    for split, per_class, seed in (("train", 12, 0), ("val", 4, 1)):
        images, labels = make_mouths(per_class, 48, seed)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / split / CLASS_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def write_fer2013() -> Callable[..., Path]:
    """Returns a writer of FER2013-format CSVs (`emotion,pixels,Usage`, 48x48 random pixels)."""
    return _write_fer2013


def _write_fer2013(path: Path, rows_per_usage: int = 6, extra_rows: tuple[str, ...] = ()) -> Path:
    rng = np.random.default_rng(0)
    lines = ["emotion,pixels,Usage"]
    for usage in ("Training", "PublicTest", "PrivateTest"):
        for i in range(rows_per_usage * 7):
            pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
            lines.append(f"{i % 7},{pixels},{usage}")
    lines.extend(extra_rows)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT and WordPiece tokenizer, written with `save_pretrained`.

    What a user has after downloading a hub model; its head has 3 labels, not the data's 4.
    """
    from transformers import BertConfig, BertForSequenceClassification

    from datamodules.demo.headlines import make_headlines
    from datamodules.subwords import train_tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    texts, _, _ = make_headlines(400, seed=5)
    tokenizer = train_tokenizer(texts, 300, "wordpiece")
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=3,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BART and byte-level BPE tokenizer, written with `save_pretrained`."""
    from transformers import BartConfig, BartForConditionalGeneration

    from datamodules.demo.articles import make_articles
    from datamodules.subwords import train_tokenizer

    folder = tmp_path_factory.mktemp("tiny-bart")
    documents, summaries = make_articles(200, seed=5)
    tokenizer = train_tokenizer(documents + summaries, 400, "byte_bpe")
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    BartForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
