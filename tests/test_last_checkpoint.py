"""LastCheckpoint: `last.ckpt` is the latest state, whatever the monitored metric does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from crash import kill_when_stalled
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, TensorDataset

from callbacks.last_checkpoint import AtomicCheckpointIO, LastCheckpoint


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


# A child process that overwrites `path` with a new checkpoint and stalls at `when` (after the
# first write call, or after all bytes are written but before they are synced and renamed).
_WRITER = """
import builtins, os, sys, time
import torch
from callbacks.last_checkpoint import AtomicCheckpointIO

path, marker, when = sys.argv[1:]


def stall(*args):
    open(marker, "w").close()
    time.sleep(600)


class StallingFile:
    def __init__(self, file):
        self.file, self.writes = file, 0

    def write(self, data):
        self.writes += 1
        if self.writes == 2:
            self.file.flush()  # the first bytes reach the file
            stall()
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


if when == "mid-write":
    real_open = builtins.open
    builtins.open = lambda *a, **k: StallingFile(real_open(*a, **k))
else:
    os.fsync = stall
new = {"state_dict": {"w": torch.full((1_000_000,), 2.0)}, "global_step": 20}
AtomicCheckpointIO().save_checkpoint(new, path)
"""


@pytest.mark.parametrize("when", ["mid-write", "before-rename"])
def test_a_kill_during_the_write_leaves_the_previous_checkpoint(tmp_path: Path, when: str) -> None:
    path, marker = tmp_path / "last.ckpt", tmp_path / "stalled"
    old = {"state_dict": {"w": torch.ones(3)}, "global_step": 10}
    AtomicCheckpointIO().save_checkpoint(old, path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = [sys.executable, "-c", _WRITER, str(path), str(marker), when]
    writer = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    kill_when_stalled(writer, marker, timeout=120)

    assert (tmp_path / ".last.ckpt.partial").stat().st_size > 0  # killed while writing it
    kept = torch.load(path, weights_only=True)
    assert kept["global_step"] == 10
    torch.testing.assert_close(kept["state_dict"]["w"], torch.ones(3))


def test_the_run_writes_through_the_atomic_plugin_unless_it_has_its_own(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, epochs=1)
    trainer.fit(NeverImproves(), _loader(), _loader())
    assert type(trainer.strategy.checkpoint_io) is AtomicCheckpointIO
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []

    class OwnIO(TorchCheckpointIO):
        pass

    own = Trainer(max_epochs=1, logger=False, callbacks=[LastCheckpoint()], plugins=[OwnIO()])
    own.fit(NeverImproves(), _loader(), _loader())
    assert type(own.strategy.checkpoint_io) is OwnIO
