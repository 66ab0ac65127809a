"""Log images, figures and tables to W&B, TensorBoard, or as files under the run directory.

Every task and callback logs media through these functions, so the same code works with any
logger (or none) and only rank zero ever writes. W&B also gets its own panel types where they
exist: a native confusion matrix, images with toggleable mask layers, tables with images.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.logger import DummyLogger
from lightning.pytorch.utilities import rank_zero_warn

if TYPE_CHECKING:
    from lightning.pytorch import Trainer
    from matplotlib.figure import Figure


def _muted(trainer: Trainer) -> bool:
    """Rank > 0, or a `DummyLogger` (fast_dev_run, inside lr_find): log nothing, write nothing."""
    return not trainer.is_global_zero or any(isinstance(lg, DummyLogger) for lg in trainer.loggers)


def run_dir(trainer: Trainer) -> Path:
    """The folder of this run: config, checkpoints, media and predictions, for any logger.

    `<save_dir>/<name>/<version>`, where `ModelCheckpoint` puts `checkpoints/`: for TensorBoard
    `runs/face_expression/version_0`, for W&B `runs/<project>/<run id>` (`trainer.log_dir` is
    the bare `save_dir` there, shared by every run); `default_root_dir` without a logger. Unlike
    `trainer.log_dir` it runs no collective, so rank zero alone may call it (a broadcast called on
    one rank only would hang a multi-GPU run).
    """
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None:
        return Path(trainer.default_root_dir)
    if isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return Path(logger.log_dir)
    version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
    return Path(logger.save_dir or trainer.default_root_dir) / str(logger.name or "") / version


def _to_hwc_uint8(image: Figure | np.ndarray | torch.Tensor) -> np.ndarray:
    """A matplotlib figure, HWC/CHW array or tensor (uint8 or float in [0, 1]) as HWC uint8."""
    if hasattr(image, "canvas"):  # matplotlib Figure
        if image.canvas is None or not hasattr(image.canvas, "buffer_rgba"):
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            FigureCanvasAgg(image)
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
    try:
        if _muted(trainer):
            return
        step = trainer.global_step if step is None else step
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

            plt.close(image)  # no-op for figures made without pyplot


def log_histogram(
    trainer: Trainer, key: str, values: torch.Tensor | np.ndarray, step: int | None = None
) -> None:
    """Log a histogram of `values`: W&B / TensorBoard histograms, else a PNG bar plot.

    Call it on every rank; rank zero writes. A failure warns and never interrupts training.
    """
    if _muted(trainer):
        return
    step = trainer.global_step if step is None else step
    try:
        flat = torch.as_tensor(values).detach().float().flatten().cpu()
        handled = False
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                logger.experiment.log(
                    {key: wandb.Histogram(flat.numpy()), "trainer/global_step": step}
                )
                handled = True
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_histogram(key, flat, step)
                handled = True
        if not handled:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(4, 3))
            ax = fig.add_subplot()
            ax.hist(flat.numpy(), bins=50)
            ax.set_title(f"{key} (step {step})")
            fig.tight_layout()
            log_image(trainer, key, fig, step)
    except Exception as error:  # noqa: BLE001 - media must never kill a run
        rank_zero_warn(f"Could not log histogram {key!r}: {error}")


def _wandb(trainer: Trainer) -> list[WandbLogger]:
    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


def log_table(
    trainer: Trainer, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Log a table under `key`: to W&B when active, else as `<run dir>/media/<key>.csv`.

    Cells may be images (HWC/CHW arrays or tensors, figures): `wandb.Image` cells in W&B, PNG
    files beside the CSV (the cell holds their relative path) otherwise.
    """
    if _muted(trainer):
        return
    try:
        images = {
            (r, c)
            for r, row in enumerate(rows)
            for c, cell in enumerate(row)
            if isinstance(cell, (np.ndarray, torch.Tensor)) or hasattr(cell, "canvas")
        }
        wandb_loggers = _wandb(trainer)
        if wandb_loggers:
            import wandb

            data = [
                [wandb.Image(_to_hwc_uint8(cell)) if (r, c) in images else cell for c, cell in row]
                for r, row in enumerate(map(enumerate, rows))
            ]
            for logger in wandb_loggers:
                logger.log_table(key=key, columns=list(columns), data=data)
            return
        path = run_dir(trainer) / "media" / f"{_file_stem(key)}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        table = [list(row) for row in rows]
        if images:
            from PIL import Image

            (path.parent / path.stem).mkdir(exist_ok=True)
            for r, c in sorted(images):
                name = Path(path.stem) / f"row{r:03d}_{_file_stem(columns[c])}.png"
                Image.fromarray(_to_hwc_uint8(table[r][c])).save(path.parent / name)
                table[r][c] = name.as_posix()
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(table)
    except Exception as error:  # noqa: BLE001 - media must never kill a run
        rank_zero_warn(f"Could not log table {key!r}: {error}")


def log_confusion(
    trainer: Trainer, key: str, counts: torch.Tensor, class_names: Sequence[str], step: int
) -> None:
    """W&B's native, interactive confusion matrix from a (true, predicted) count matrix.

    Only W&B has this panel; callers log the plotted matrix through `log_image` for every
    logger as well.
    """
    if _muted(trainer) or not _wandb(trainer):
        return
    try:
        import wandb

        true, predicted = [], []
        for (i, j), n in np.ndenumerate(counts.detach().cpu().long().numpy()):
            true += [i] * int(n)
            predicted += [j] * int(n)
        chart = wandb.plot.confusion_matrix(
            y_true=true, preds=predicted, class_names=list(class_names), title=key
        )
        for logger in _wandb(trainer):
            logger.experiment.log({key: chart, "trainer/global_step": step})
    except Exception as error:  # noqa: BLE001 - media must never kill a run
        rank_zero_warn(f"Could not log confusion matrix {key!r}: {error}")


def log_masks(
    trainer: Trainer,
    key: str,
    images: Sequence[np.ndarray | torch.Tensor],
    layers: dict[str, Sequence[np.ndarray | torch.Tensor]],
    class_labels: dict[int, str],
    step: int,
) -> None:
    """W&B images with class-index masks as toggleable layers (e.g. prediction, ground truth).

    Only W&B overlays masks itself; callers log their own overlay grid through `log_image` for
    every logger as well.
    """
    if _muted(trainer) or not _wandb(trainer):
        return
    try:
        import wandb

        def mask(values: np.ndarray | torch.Tensor) -> np.ndarray:
            array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
            return array.astype(np.uint8)

        panels = [
            wandb.Image(
                _to_hwc_uint8(image),
                masks={
                    name: {"mask_data": mask(masks[i]), "class_labels": class_labels}
                    for name, masks in layers.items()
                },
            )
            for i, image in enumerate(images)
        ]
        for logger in _wandb(trainer):
            logger.experiment.log({key: panels, "trainer/global_step": step})
    except Exception as error:  # noqa: BLE001 - media must never kill a run
        rank_zero_warn(f"Could not log masks {key!r}: {error}")


def log_summary(trainer: Trainer, values: dict[str, Any]) -> None:
    """Record run-level facts (best score, checkpoint path) in W&B's run summary and in JSON.

    The file, `<run dir>/summary.json`, is written whatever the logger.
    """
    if _muted(trainer):
        return
    try:
        for logger in _wandb(trainer):
            logger.experiment.summary.update(values)
        path = run_dir(trainer) / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=1) + "\n")
    except Exception as error:  # noqa: BLE001 - media must never kill a run
        rank_zero_warn(f"Could not write the run summary: {error}")
