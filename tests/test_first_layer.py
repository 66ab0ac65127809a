"""FirstLayerFilters: grid geometry, one PNG per logged epoch, no-op without a conv, bad names."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks.first_layer import FirstLayerFilters, filter_grid


def test_filter_grid_rgb_shape_and_range() -> None:
    grid = filter_grid(torch.randn(8, 3, 3, 3), upscale=4, nrow=4)
    tile, padding = 3 * 4, 2  # make_grid's default padding around every tile
    rows, cols = 2, 4  # 8 tiles, 4 per row
    assert grid.shape == (3, rows * (tile + padding) + padding, cols * (tile + padding) + padding)
    assert grid.shape == (3, 30, 58)
    assert grid.min() >= 0.0
    assert grid.max() <= 1.0
    # Each filter is normalised on its own: every tile spans the full range.
    first = grid[:, padding : padding + tile, padding : padding + tile]
    assert first.min() == 0.0
    assert first.max() == 1.0


def test_filter_grid_grayscale_has_a_tile_per_filter_and_channel() -> None:
    grid = filter_grid(torch.randn(4, 2, 5, 5), upscale=2, nrow=8)
    tile, padding = 5 * 2, 2
    assert grid.shape == (3, tile + 2 * padding, 8 * (tile + padding) + padding)  # 8 tiles
    assert torch.equal(grid[0], grid[1])  # gray
    # Default layout: one filter per row, one input channel per column.
    assert filter_grid(torch.randn(4, 2, 5, 5), upscale=2).shape == (
        3,
        4 * (tile + padding) + padding,
        2 * (tile + padding) + padding,
    )


def test_filter_grid_caps_tiles() -> None:
    grid = filter_grid(torch.randn(64, 16, 3, 3), upscale=1, nrow=16)  # 1024 slices
    assert grid.shape == (3, 16 * 5 + 2, 16 * 5 + 2)  # 256 tiles


class TinyConv(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.body = nn.Conv2d(4, 4, 3)
        self.head = nn.Linear(4, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        features = self.body(self.stem(x)).mean(dim=(2, 3))
        return nn.functional.cross_entropy(self.head(features), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1])), 2)


class TinyMLP(TinyConv):
    def __init__(self) -> None:
        LightningModule.__init__(self)
        self.head = nn.Linear(3, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(x.mean(dim=(2, 3))), y)


def fit(model: LightningModule, callback: FirstLayerFilters, tmp_path: Path, epochs: int = 3):
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model)
    return trainer


def test_logs_initialisation_and_every_n_epochs(tmp_path: Path) -> None:
    fit(TinyConv(), FirstLayerFilters(every_n_epochs=2, upscale=2), tmp_path, epochs=5)
    names = sorted(p.name for p in (tmp_path / "media").iterdir())
    # Initialisation at step -1, then after epochs 1 and 3 (0-based), as the confusion matrices.
    assert names == [f"first_layer_filters_step{s:06d}.png" for s in (-1, 1, 3)]


def test_draws_the_first_conv_by_default_or_the_named_one(tmp_path: Path) -> None:
    from PIL import Image

    fit(TinyConv(), FirstLayerFilters(upscale=1), tmp_path / "a", epochs=1)
    fit(TinyConv(), FirstLayerFilters(module_name="body", upscale=1), tmp_path / "b", epochs=1)
    stem = Image.open(tmp_path / "a" / "media" / "first_layer_filters_step000000.png")
    body = Image.open(tmp_path / "b" / "media" / "first_layer_filters_step000000.png")
    assert stem.size == (2 * 5 + 2, 2 * 5 + 2)  # 4 RGB filters, 2x2
    assert body.size == (4 * 5 + 2, 4 * 5 + 2)  # 4 filters x 4 channels, gray


def test_no_conv_is_a_noop_with_one_info_line(tmp_path: Path, lightning_info) -> None:
    fit(TinyMLP(), FirstLayerFilters(), tmp_path, epochs=2)
    assert not (tmp_path / "media").exists()
    lines = [r.getMessage() for r in lightning_info.records if "FirstLayerFilters" in r.message]
    assert lines == ["FirstLayerFilters: no Conv2d in TinyMLP; nothing to visualise"]


@pytest.mark.parametrize(("name", "found"), [("stemm", "not found"), ("head", "a Linear")])
def test_bad_module_name_raises_naming_it(tmp_path: Path, name: str, found: str) -> None:
    with pytest.raises(ValueError, match=rf"module_name '{name}' is {found}.*'stem', 'body'"):
        fit(TinyConv(), FirstLayerFilters(module_name=name), tmp_path)
    assert not (tmp_path / "media").exists()


@pytest.mark.parametrize("kwargs", [{"every_n_epochs": 0}, {"upscale": 0}])
def test_init_validates(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        FirstLayerFilters(**kwargs)
