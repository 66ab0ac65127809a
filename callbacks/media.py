"""Log images, figures and tables to W&B, TensorBoard, or as files under the run directory.

Every task and callback logs media through these two functions, so the same code works with any
logger (or none) and only rank zero ever writes.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_warn

if TYPE_CHECKING:
    from lightning.pytorch import Trainer
    from matplotlib.figure import Figure


def run_dir(trainer: Trainer) -> Path:
    """The directory this run writes to: the logger's version folder, else `default_root_dir`."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def _to_hwc_uint8(image: Figure | np.ndarray | torch.Tensor) -> np.ndarray:
    """A matplotlib figure, HWC/CHW array or tensor (uint8 or float in [0, 1]) as HWC uint8."""
    if hasattr(image, "canvas"):  # matplotlib Figure
        image.canvas.draw()
        array = np.asarray(image.canvas.buffer_rgba())[..., :3].copy()
    else:
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = array.transpose(1, 2, 0)  # CHW -> HWC
        if array.dtype != np.uint8:
            array = (np.clip(array, 0.0, 1.0) * 255).round().astype(np.uint8)
    if array.ndim == 2:
        array = array[..., None]
    return array.repeat(3, axis=-1) if array.shape[-1] == 1 else array


def _file_stem(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_")


def log_image(
    trainer: Trainer, key: str, image: Figure | np.ndarray | torch.Tensor, step: int | None = None
) -> None:
    """Log one image under `key`: to W&B and TensorBoard when active, else as a PNG file.

    Files go to `<run dir>/media/<key>_step<step>.png`. Call it on every rank; rank zero writes.
    A failure warns and never interrupts training.
    """
    if not trainer.is_global_zero:
        return
    step = trainer.global_step if step is None else step
    try:
        array = _to_hwc_uint8(image)
        handled = False
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[array], step=step)
                handled = True
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, array, step, dataformats="HWC")
                handled = True
        if not handled:
            from PIL import Image

            path = run_dir(trainer) / "media" / f"{_file_stem(key)}_step{step:06d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path)
    except Exception as error:  # noqa: BLE001 - media must never kill a run
        rank_zero_warn(f"Could not log image {key!r}: {error}")
    finally:
        if hasattr(image, "canvas"):
            import matplotlib.pyplot as plt

            plt.close(image)


def log_table(
    trainer: Trainer, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Log a table under `key`: to W&B when active, else as `<run dir>/media/<key>.csv`."""
    if not trainer.is_global_zero:
        return
    try:
        wandb_loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        for logger in wandb_loggers:
            logger.log_table(key=key, columns=list(columns), data=[list(r) for r in rows])
        if not wandb_loggers:
            path = run_dir(trainer) / "media" / f"{_file_stem(key)}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                writer.writerows(rows)
    except Exception as error:  # noqa: BLE001 - media must never kill a run
        rank_zero_warn(f"Could not log table {key!r}: {error}")
