"""Run summary: the best monitored score and the checkpoint paths, for W&B and as JSON."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override

from callbacks.last_checkpoint import LastCheckpoint
from callbacks.media import log_summary


class RunSummary(Callback):
    """At the end of `fit`, record what the run produced (`ModelCheckpoint`, `LastCheckpoint`).

    Writes `best/<monitor>` (the best score), `best_checkpoint`, `last_checkpoint`, `epochs` and
    `steps` into W&B's run summary (the run table's columns) and `<run dir>/summary.json`.
    `zoo fit` adds it when a config has none.
    """

    @override
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        values: dict[str, object] = {"epochs": trainer.current_epoch, "steps": trainer.global_step}
        for checkpoint in trainer.checkpoint_callbacks:
            if isinstance(checkpoint, LastCheckpoint) and checkpoint.path(trainer).is_file():
                values["last_checkpoint"] = str(checkpoint.path(trainer))
            if not isinstance(checkpoint, ModelCheckpoint):
                continue
            if checkpoint.monitor and checkpoint.best_model_score is not None:
                values[f"best/{checkpoint.monitor}"] = checkpoint.best_model_score.item()
                values["best_checkpoint"] = checkpoint.best_model_path
            if checkpoint.last_model_path:
                values["last_checkpoint"] = checkpoint.last_model_path
        log_summary(trainer, values)
