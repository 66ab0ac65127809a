"""LastCheckpoint: `last.ckpt` is the latest state, whatever the monitored metric does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from callbacks.last_checkpoint import LastCheckpoint


class NeverImproves(LightningModule):
    """A linear model whose monitored metric stays constant."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/score", 0.5)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=2)  # 4 steps an epoch


def _trainer(tmp_path: Path, epochs: int, **last) -> Trainer:
    best = ModelCheckpoint(tmp_path, monitor="val/score", mode="max")
    return Trainer(
        max_epochs=epochs,
        callbacks=[best, LastCheckpoint(**last)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def test_last_is_the_final_epoch_and_a_resume_continues_from_it(tmp_path: Path) -> None:
    _trainer(tmp_path, epochs=3).fit(NeverImproves(), _loader(), _loader())
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 12)  # not the best epoch (0)

    resumed = _trainer(tmp_path, epochs=5)
    resumed.fit(NeverImproves(), _loader(), _loader(), ckpt_path="last")
    assert resumed.global_step == 20  # 12 restored + 2 epochs of 4, none counted twice
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 4


def test_every_n_train_steps_saves_during_the_epoch(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, epochs=1, every_n_train_steps=3)
    saved: list[int] = []
    original = trainer.save_checkpoint

    def spy(path, *args, **kwargs):
        if Path(path).name == "last.ckpt":
            saved.append(trainer.global_step)
        return original(path, *args, **kwargs)

    trainer.save_checkpoint = spy
    trainer.fit(NeverImproves(), _loader(), _loader())
    assert saved == [3, 4]  # mid-epoch, then the epoch end


def test_folder_follows_model_checkpoint_or_the_run(tmp_path: Path) -> None:
    trainer = Trainer(logger=False, default_root_dir=tmp_path, callbacks=[LastCheckpoint()])
    assert LastCheckpoint().path(trainer) == tmp_path / "checkpoints" / "last.ckpt"
    assert LastCheckpoint(dirpath="elsewhere").path(trainer) == Path("elsewhere/last.ckpt")
    with pytest.raises(ValueError, match="every_n_train_steps"):
        LastCheckpoint(every_n_train_steps=-1)
