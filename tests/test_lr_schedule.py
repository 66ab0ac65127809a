"""LRSchedule: closed forms at known steps, per-group bases, accumulation, resume mid-curve."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from callbacks.lr_finder import LRFinder
from callbacks.lr_schedule import LRSchedule

BATCHES = 4  # per epoch


class TwoGroups(LightningModule):
    """A tiny regression with two param groups: base LRs 0.1 and 0.01."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(3, 3)
        self.head = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.head(self.body(x)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(
            [
                {"params": self.body.parameters(), "lr": 0.01, "name": "body"},
                {"params": self.head.parameters(), "lr": 0.1, "name": "head"},
            ]
        )

    def train_dataloader(self):
        data = TensorDataset(torch.randn(BATCHES * 2, 3), torch.randn(BATCHES * 2, 1))
        return DataLoader(data, batch_size=2)


class RecordLR(Callback):
    """The LR of each group when each optimizer step is taken."""

    def __init__(self) -> None:
        self.lrs: list[tuple[int, float, float]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        body, head = (g["lr"] for g in optimizer.param_groups)
        self.lrs.append((trainer.global_step, body, head))


def fit(schedule: LRSchedule, epochs: int = 3, tmp_path: Path | None = None, **trainer_kwargs):
    record = RecordLR()
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=[schedule, record],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        **trainer_kwargs,
    )
    trainer.fit(TwoGroups())
    return record.lrs, trainer


def heads(lrs):
    return [head for _, _, head in lrs]


def test_cosine_with_warmup_matches_closed_form() -> None:
    lrs, _ = fit(LRSchedule("cosine", warmup_steps=2, min_lr=0.001, plot=False))
    total, warmup, base, floor = 3 * BATCHES, 2, 0.01, 0.001  # min_lr is the first group's
    expected = [
        base * (s + 1) / warmup
        if s < warmup
        else floor
        + (base - floor) * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
        for s in range(total)
    ]
    assert [body for _, body, _ in lrs] == pytest.approx(expected)
    # The head group keeps its own base (10x higher) and a proportionally scaled floor.
    assert heads(lrs) == pytest.approx([10 * lr for lr in expected])


def test_warmup_as_a_fraction_of_the_total_steps() -> None:
    lrs, _ = fit(LRSchedule("linear", warmup_fraction=0.25, plot=False))
    total, warmup, base = 3 * BATCHES, 3, 0.01  # 0.25 of 12 steps
    expected = [
        base * (s + 1) / warmup if s < warmup else base * (1 - (s - warmup) / (total - warmup))
        for s in range(total)
    ]
    assert [body for _, body, _ in lrs] == pytest.approx(expected)
    with pytest.raises(ValueError, match="warmup_fraction"):
        LRSchedule(warmup_fraction=1.0)


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("constant", lambda s: 0.1),
        ("linear", lambda s: 0.1 * (1 - s / 12)),
        ("inverse_sqrt", lambda s: 0.1 * math.sqrt(1 / (s + 1))),
    ],
)
def test_schedules_without_warmup(name: str, formula) -> None:
    lrs, _ = fit(LRSchedule(name, plot=False))
    assert heads(lrs) == pytest.approx([formula(s) for s in range(12)])


def test_inverse_sqrt_is_continuous_after_warmup() -> None:
    lrs, _ = fit(LRSchedule("inverse_sqrt", warmup_steps=4, plot=False))
    expected = [0.1 * (s + 1) / 4 if s < 4 else 0.1 * math.sqrt(4 / (s + 1)) for s in range(12)]
    assert heads(lrs) == pytest.approx(expected)


def test_step_decay_milestones_in_epochs_and_steps() -> None:
    lrs, _ = fit(LRSchedule("step", milestones=[1, 2], gamma=0.1, plot=False))
    assert heads(lrs) == pytest.approx([0.1] * 4 + [0.01] * 4 + [0.001] * 4)
    lrs, _ = fit(LRSchedule("step", milestones=[3], milestone_unit="step", gamma=0.5, plot=False))
    assert heads(lrs) == pytest.approx([0.1] * 3 + [0.05] * 9)


def test_accumulation_counts_optimizer_steps() -> None:
    lrs, _ = fit(LRSchedule("linear", plot=False), accumulate_grad_batches=2)
    assert [s for s, _, _ in lrs] == list(range(6))  # 12 batches, 6 optimizer steps
    assert heads(lrs) == pytest.approx([0.1 * (1 - s / 6) for s in range(6)])


def test_resume_mid_schedule_continues_the_curve(tmp_path: Path) -> None:
    schedule = dict(schedule="cosine", warmup_steps=3, min_lr=0.0, plot=False)
    full, _ = fit(LRSchedule(**schedule), tmp_path=tmp_path)

    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    Trainer(
        max_epochs=1,
        callbacks=[LRSchedule(**schedule), checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(TwoGroups())
    # The schedule length comes from the new trainer (3 epochs), as in a resumed run.
    record = RecordLR()
    Trainer(
        max_epochs=3,
        callbacks=[LRSchedule(**schedule), record],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    ).fit(TwoGroups(), ckpt_path=checkpoint.best_model_path)
    assert [s for s, _, _ in record.lrs] == list(range(4, 12))
    assert heads(record.lrs) == pytest.approx(heads(full[4:]))
    assert [body for _, body, _ in record.lrs] == pytest.approx([body for _, body, _ in full[4:]])


def test_logs_lr_per_group_and_plots_the_plan(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    trainer = Trainer(
        max_epochs=1,
        callbacks=[LRSchedule("linear")],
        logger=logger,
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(TwoGroups())
    with (Path(logger.log_dir) / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["lr/head"]) for r in rows if r.get("lr/head")] == pytest.approx(
        [0.1 * (1 - s / 4) for s in range(4)]
    )
    assert (Path(logger.log_dir) / "media" / "lr_schedule_step000000.png").is_file()


def test_groups_added_later_keep_their_own_base() -> None:
    class AddGroup(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                extra = torch.nn.Parameter(torch.zeros(1))
                trainer.optimizers[0].add_param_group({"params": [extra], "lr": 0.5})

    trainer = Trainer(
        max_epochs=2,
        callbacks=[AddGroup(), LRSchedule("constant", plot=False)],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(TwoGroups())
    assert [g["lr"] for g in trainer.optimizers[0].param_groups] == pytest.approx([0.01, 0.1, 0.5])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedule": "exponential"}, "schedule must be one of"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"gamma": 0.0}, "gamma"),
        ({"min_lr": -1.0}, "min_lr"),
        ({"total_steps": 5, "warmup_steps": 5}, "total_steps"),
    ],
)
def test_bad_arguments(kwargs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LRSchedule(**kwargs)


def test_warns_when_the_task_also_has_a_scheduler() -> None:
    class WithScheduler(TwoGroups):
        def configure_optimizers(self):
            optimizer = super().configure_optimizers()
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, 1)]

    trainer = Trainer(
        max_epochs=1,
        callbacks=[LRSchedule(plot=False)],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    with pytest.warns(UserWarning, match="both set the learning rate"):
        trainer.fit(WithScheduler())


def test_lr_finder_reports_curve_and_suggestion(tmp_path: Path, lightning_info) -> None:
    trainer = Trainer(
        max_epochs=10,
        callbacks=[LRFinder(num_training_steps=30)],
        logger=False,
        default_root_dir=tmp_path / "run",
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(TwoGroups())
    assert (tmp_path / "run" / "media" / "lr_find_curve_step000000.png").is_file()
    assert "LR range test suggests lr = " in lightning_info.text
    # The configured LRs are left alone: the user copies the suggestion into the config.
    assert [g["lr"] for g in trainer.optimizers[0].param_groups] == [0.01, 0.1]


class Regression(LightningModule):
    """Fit y = x @ 1 by SGD on a fixed sample of 5 batches; `scale` sets the curvature of the loss.

    scale 0.1: stable for every LR up to 1. scale 10: SGD diverges above lr ~1e-2.
    """

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0)) * scale
        self.data = TensorDataset(x, x.sum(dim=1, keepdim=True))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.linear(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=8)  # 5 batches


class RecordStart(Callback):
    """The weights and LR that real training starts from."""

    def on_train_start(self, trainer, pl_module):
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]


def find_lr(model: LightningModule, tmp_path: Path) -> tuple[LRFinder, RecordStart, Trainer]:
    finder, start = LRFinder(num_training_steps=30), RecordStart()
    trainer = Trainer(
        max_epochs=1,  # 5 steps: the 30-step sweep must run over 6 epochs anyway
        callbacks=[finder, start],
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(model)
    return finder, start, trainer


def test_lr_finder_sweeps_the_whole_range_on_short_epochs(tmp_path: Path, lightning_info) -> None:
    model = Regression(scale=0.1)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    finder, start, trainer = find_lr(model, tmp_path)

    lrs = finder.optimal_lr.results["lr"]
    assert len(lrs) == len(finder.optimal_lr.results["loss"]) == 30
    assert lrs[0] == pytest.approx(1e-6)
    assert lrs[-1] == pytest.approx(1.0)
    assert "diverg" not in lightning_info.text
    assert (
        "LR range test: swept lr 1.00e-06 to 1.00e+00 in 30 steps (6.0 passes over 5 batches)."
        in lightning_info.text
    )
    assert "LR range test suggests lr = " in lightning_info.text
    # Training then starts from the original weights and LR and keeps its own epoch limit.
    assert all(torch.equal(start.weights[k], initial[k]) for k in initial)
    assert start.lr == 0.01
    assert trainer.max_epochs == 1
    assert trainer.global_step == 5


def test_lr_finder_still_reports_a_diverging_loss(tmp_path: Path, lightning_info) -> None:
    finder, _, trainer = find_lr(Regression(scale=10.0), tmp_path)

    lrs = finder.optimal_lr.results["lr"]
    # Stopped by the loss, past the first epoch and past SGD's stable LRs, before the end.
    assert 5 < len(lrs) < 30
    assert lrs[-1] > 1e-2
    assert f"LR range test: the loss diverged at lr {lrs[-1]:.2e}; swept lr 1.00e-06 to" in (
        lightning_info.text
    )
    assert f"in {len(lrs)} steps" in lightning_info.text
    assert trainer.global_step == 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_lr": 0.0}, "min_lr"),
        ({"min_lr": 1.0, "max_lr": 0.1}, "max_lr"),
        ({"num_training_steps": 1}, "num_training_steps"),
    ],
)
def test_lr_finder_bad_arguments(kwargs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LRFinder(**kwargs)


def test_suggestion_is_the_steepest_descent_per_decade() -> None:
    from callbacks.lr_finder import steepest_descent

    lrs = np.logspace(-6, 0, 61).tolist()  # 10 points a decade
    # Flat, then the loss falls fastest around 1e-3, then it blows up.
    losses = [2.0 - 1.5 / (1 + np.exp(-(np.log10(lr) + 3) * 4)) for lr in lrs]
    losses[-3:] = [5.0, 50.0, float("nan")]
    assert steepest_descent(lrs, losses) == pytest.approx(1e-3, rel=0.3)
    assert steepest_descent(lrs[:12], losses[:12]) is None  # too few points after skipping
