"""UpdateRatioMonitor: hand-computed ratios, cadence under accumulation, warnings, AMP skips."""

from __future__ import annotations

import csv
import statistics
import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins import MixedPrecision
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import DataLoader, TensorDataset

from callbacks.update_ratio import UpdateRatioMonitor

SANE_LR = 3e-3  # median ratio ~1e-3 on this model and data


class OneLayer(LightningModule):
    """Linear(4, 3) regression on fixed random data, plain SGD (no momentum, no weight decay)."""

    def __init__(self, lr: float, inf_loss_at: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 3, bias=True)
        self.lr = lr
        self.inf_loss_at = inf_loss_at  # global steps whose loss is inf (AMP skips them)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self.lin(x), y)
        return loss * float("inf") if self.global_step in self.inf_loss_at else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(64, 4, generator=g), torch.randn(64, 3, generator=g))
        return DataLoader(data, batch_size=4)


class HandRatios(Callback):
    """SGD's closed form lr * ||g|| / ||W|| per parameter, at every optimizer step."""

    def __init__(self) -> None:
        self.ratios: dict[int, dict[str, float]] = {}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        lr = optimizer.param_groups[0]["lr"]
        self.ratios[trainer.global_step] = {
            name: (lr * p.grad.float().norm() / p.detach().float().norm()).item()
            for name, p in pl_module.named_parameters()
        }


def fit(
    monitor: UpdateRatioMonitor,
    tmp_path: Path,
    model: OneLayer,
    steps: int = 4,
    ckpt_path: Path | None = None,
    **kwargs,
):
    """Train; return what was logged under update_ratio/ by step, the hand ratios, our warnings."""
    hand = HandRatios()
    trainer = Trainer(
        max_steps=steps,
        callbacks=[monitor, hand],
        logger=CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        **kwargs,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, ckpt_path=ckpt_path)
    logged: dict[int, dict[str, float]] = {}
    path = Path(trainer.logger.log_dir) / "metrics.csv"  # absent when nothing was logged
    for row in csv.DictReader(path.read_text().splitlines()) if path.exists() else []:
        values = {k: float(v) for k, v in row.items() if k.startswith("update_ratio/") and v}
        if values:
            assert int(row["step"]) not in logged, "one row per record"
            logged[int(row["step"])] = values
    messages = [str(w.message) for w in caught if "UpdateRatioMonitor" in str(w.message)]
    return logged, hand.ratios, messages, trainer


def model(lr: float, **kwargs) -> OneLayer:
    torch.manual_seed(0)
    return OneLayer(lr, **kwargs)


def test_ratio_matches_sgd_closed_form(tmp_path: Path) -> None:
    logged, hand, _, trainer = fit(UpdateRatioMonitor(every_n_steps=1), tmp_path, model(0.1))
    assert sorted(logged) == [0, 1, 2, 3]
    for step, values in logged.items():
        expected = hand[step]["lin.weight"]
        assert values == {
            "update_ratio/median": pytest.approx(expected, rel=1e-4),
            "update_ratio/lin.weight": pytest.approx(expected, rel=1e-4),
        }
    last = trainer.callback_metrics["update_ratio/median"].item()
    assert last == pytest.approx(hand[3]["lin.weight"], rel=1e-4)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_cadence_counts_optimizer_steps(tmp_path: Path, accumulate: int) -> None:
    monitor = UpdateRatioMonitor(every_n_steps=3)
    logged, hand, _, _ = fit(
        monitor, tmp_path, model(0.1), steps=7, accumulate_grad_batches=accumulate
    )
    assert sorted(logged) == [0, 3, 6]
    for step, values in logged.items():  # with accumulation: the accumulated gradient's ratio
        assert values["update_ratio/lin.weight"] == pytest.approx(hand[step]["lin.weight"], 1e-4)


@pytest.mark.parametrize(
    ("lr", "expected"),
    [
        (1.0, "above 1.0e-02: the learning rate is probably too large (lower it)"),
        (1e-6, "below 1.0e-04: the learning rate is probably too small (raise it)"),
        (SANE_LR, None),
    ],
)
def test_warns_once_outside_band(tmp_path: Path, lr: float, expected: str | None) -> None:
    logged, _, messages, _ = fit(UpdateRatioMonitor(every_n_steps=1), tmp_path, model(lr), 6)
    assert len(logged) == 6
    if expected is None:
        assert messages == []
        assert all(1e-4 < v["update_ratio/median"] < 1e-2 for v in logged.values())
    else:
        assert len(messages) == 1
        assert expected in messages[0]
        assert messages[0].startswith("UpdateRatioMonitor: update/weight ratio median ")


def test_warned_flags_survive_resume(tmp_path: Path) -> None:
    first = Trainer(
        max_steps=2,
        callbacks=[UpdateRatioMonitor(every_n_steps=1)],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    with pytest.warns(UserWarning, match="too large"):
        first.fit(model(1.0))
    first.save_checkpoint(tmp_path / "last.ckpt")
    monitor = UpdateRatioMonitor(every_n_steps=1)
    logged, _, messages, _ = fit(
        monitor, tmp_path, model(1.0), steps=4, ckpt_path=tmp_path / "last.ckpt"
    )
    assert sorted(logged) == [2, 3]
    assert messages == []
    assert monitor.state_dict() == {"warned": {"low": False, "high": True}}


def test_bias_only_when_asked(tmp_path: Path) -> None:
    logged, hand, _, _ = fit(UpdateRatioMonitor(every_n_steps=2), tmp_path / "w", model(0.1))
    assert {key for values in logged.values() for key in values} == {
        "update_ratio/median",
        "update_ratio/lin.weight",
    }
    logged, hand, _, _ = fit(
        UpdateRatioMonitor(every_n_steps=2, include_bias=True), tmp_path / "b", model(0.1)
    )
    assert sorted(logged) == [0, 2]
    for step, values in logged.items():
        weight, bias = hand[step]["lin.weight"], hand[step]["lin.bias"]
        assert values == {
            "update_ratio/median": pytest.approx(statistics.median([weight, bias]), rel=1e-4),
            "update_ratio/lin.weight": pytest.approx(weight, rel=1e-4),
            "update_ratio/lin.bias": pytest.approx(bias, rel=1e-4),
        }


def test_many_tensors_give_a_histogram(tmp_path: Path) -> None:
    monitor = UpdateRatioMonitor(every_n_steps=1, include_bias=True, per_layer_max=1)
    logged, _, _, trainer = fit(monitor, tmp_path, model(0.1), steps=1)
    assert list(logged[0]) == ["update_ratio/median"]
    media = Path(trainer.logger.log_dir) / "media"
    assert [p.name for p in media.iterdir()] == ["update_ratio_log10_hist_step000000.png"]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"band": (1e-2, 1e-4)}, "band"),
        ({"band": (0.0, 1e-2)}, "band"),
        ({"band": (1e-4,)}, "band"),
        ({"per_layer_max": -1}, "per_layer_max"),
    ],
)
def test_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        UpdateRatioMonitor(**kwargs)


def test_step_that_changes_nothing_is_not_recorded(tmp_path: Path) -> None:
    # lr = 0: every update is exactly 0, as when the GradScaler skips a step; the median (0) is
    # below the band, but there is nothing to warn about
    logged, _, messages, _ = fit(UpdateRatioMonitor(every_n_steps=1), tmp_path, model(0.0))
    assert logged == {}
    assert messages == []


def test_amp_skipped_step_is_not_recorded(tmp_path: Path) -> None:
    # Real fp16 AMP on CPU: an inf loss at step 1 makes the GradScaler skip that update.
    scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    amp = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    logged, hand, messages, _ = fit(
        UpdateRatioMonitor(every_n_steps=1),
        tmp_path,
        model(SANE_LR, inf_loss_at=(1,)),
        steps=3,
        plugins=[amp],
    )
    assert sorted(logged) == [0, 2]
    assert logged[2]["update_ratio/lin.weight"] == pytest.approx(hand[2]["lin.weight"], 1e-4)
    assert messages == []


def test_bf16_weights_are_compared_in_float32(tmp_path: Path) -> None:
    logged, hand, _, _ = fit(
        UpdateRatioMonitor(every_n_steps=1), tmp_path, model(0.1), steps=2, precision="bf16-true"
    )
    assert sorted(logged) == [0, 1]
    for step, values in logged.items():  # bf16 rounds each weight to ~3 significant digits
        assert values["update_ratio/lin.weight"] == pytest.approx(hand[step]["lin.weight"], 0.1)
