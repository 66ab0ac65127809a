"""`last.ckpt` as the latest state: written at every epoch end, and every N steps if asked.

Every checkpoint file is written atomically (`AtomicCheckpointIO`), so a crash while writing
leaves the previous one whole.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from callbacks.media import run_dir


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write a checkpoint beside its target, sync it to disk, then rename it into place.

    Lightning's own save goes through an fsspec transaction whose temporary file lies in
    `$TMPDIR`; when that is another filesystem (a tmpfs `/tmp`, a node-local disk under a
    shared run folder) the final move is a copy, and a crash during it leaves a truncated
    checkpoint where the previous one was. Here the temporary file is `.<name>.partial` in the
    same folder, so the rename is atomic: a reader sees the old file or the new one, whole. A
    crash leaves at most the `.partial` file, overwritten by the next save. Remote URLs
    (`s3://...`) are left to Lightning.
    """

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(
                f"storage_options is not supported for local files, got {storage_options}"
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        with open(partial, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        os.replace(partial, path)
        if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename itself durable
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)


class LastCheckpoint(Checkpoint):
    """Save the latest training state to `<checkpoint dir>/last.ckpt`, whatever the metrics do.

    `ModelCheckpoint(save_last=True)` rewrites `last.ckpt` only when it also saves a top-k
    checkpoint (Lightning 2.6), so after a run whose metric stopped improving `last.ckpt` holds
    the best epoch, and a resume restarts there. This callback writes it at the end of every
    training epoch and, with `every_n_train_steps`, during the epoch too, so a crash loses at
    most that many steps. The folder is `dirpath`, else the `ModelCheckpoint`'s folder, else
    `<run dir>/checkpoints` (`callbacks.media.run_dir`), so `--ckpt_path last` finds it.
    Unless the trainer has a checkpoint plugin of its own, every checkpoint of the run is
    written with `AtomicCheckpointIO`. Every checkpoint also keeps the random generators'
    states (torch, CUDA, NumPy, Python); a resumed run sets them back before its first batch, so
    with the training loader's order restored (`datamodules.common.ResumableLoader`) it repeats
    the interrupted run's dropout and augmentation draws (with `num_workers=0`).
    Lightning runs checkpoint callbacks after all others, so the saved callback states are
    those of the finished step.

    Args:
        dirpath: Folder for `last.ckpt`; default as above.
        every_n_train_steps: Also save every N optimizer steps (0: at epoch ends only).
    """

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int = 0) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.dirpath = dirpath
        self.every_n_train_steps = every_n_train_steps
        self._saved_at_step = -1
        self._restored_rng: dict[str, Any] | None = None

    def path(self, trainer: Trainer) -> Path:
        """Where `last.ckpt` goes for this trainer."""
        if self.dirpath:
            return Path(self.dirpath) / self.FILENAME
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath:
                return Path(callback.dirpath) / self.FILENAME
        return run_dir(trainer) / "checkpoints" / self.FILENAME

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Write this run's checkpoints atomically (the strategy's default plugin only)."""
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    def _save(self, trainer: Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        if self._saved_at_step == trainer.global_step:  # nothing new since the last save
            return
        self._saved_at_step = trainer.global_step
        # every rank calls it; rank zero writes. The full state (optimizer, loops, callbacks).
        trainer.save_checkpoint(self.path(trainer), weights_only=False)

    @override
    def state_dict(self) -> dict[str, Any]:
        """The random generators' states, saved into every checkpoint of the run."""
        return {"rng": _collect_rng_states()}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restored_rng = state_dict.get("rng")  # set back in on_train_start

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Resuming: the generators as they were at the save, just before the next batch.

        Later than the restore itself: a sanity check and the loaders' setup come in between
        (the training loader draws nothing from them, `ResumableLoader`).
        """
        if self._restored_rng is not None:
            _set_rng_states(self._restored_rng)
            self._restored_rng = None

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        step = trainer.global_step
        if self.every_n_train_steps and step and step % self.every_n_train_steps == 0:
            self._save(trainer)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)


def _collect_rng_states() -> dict[str, Any]:
    """The generators a step may draw from, as tensors and primitives (`weights_only` loads)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()  # this rank's device
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])
