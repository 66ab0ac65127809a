"""InitialLossCheck (warns only when the first loss is far from ln C) and ActivationHistograms."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks.histograms import ActivationHistograms
from callbacks.initial_loss import InitialLossCheck

CLASSES = ["a", "b", "c", "d"]


class TinyClassifier(LightningModule):
    """A linear-ReLU-linear classifier whose final layer starts at zero (uniform prediction)."""

    def __init__(self, class_names: list[str] | None = CLASSES, bias: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(3, 8), nn.ReLU())
        self.head = nn.Linear(8, len(CLASSES))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.head.bias.data[0] = bias

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.head(self.body(x)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(8, 3, generator=generator)
        return DataLoader(TensorDataset(x, torch.arange(8) % len(CLASSES)), batch_size=2)


def fit(model, callback, tmp_path: Path, epochs: int = 1, ckpt_path=None, **kwargs) -> Trainer:
    trainer = Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **{"logger": False, **kwargs},
    )
    trainer.fit(model, ckpt_path=ckpt_path)
    return trainer


def messages(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


def initial_loss_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if "initial loss" in str(w.message)]


def test_uniform_prediction_passes_and_logs_the_loss(tmp_path: Path, lightning_info) -> None:
    logger = CSVLogger(tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit(TinyClassifier(), InitialLossCheck(), tmp_path, logger=logger)
    assert initial_loss_warnings(record) == []
    assert messages(lightning_info, "InitialLossCheck") == [
        "InitialLossCheck: initial loss 1.39 ≈ ln(4) = 1.39: OK"
    ]
    rows = (Path(logger.log_dir) / "metrics.csv").read_text().splitlines()
    header, first = rows[0].split(","), rows[1].split(",")
    assert math.isclose(
        float(first[header.index("sanity/initial_loss")]), math.log(4), rel_tol=1e-5
    )


def test_accumulated_loss_is_rescaled(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as record:  # loss / 4 would read 0.35 and warn
        warnings.simplefilter("always")
        fit(TinyClassifier(), InitialLossCheck(), tmp_path, accumulate_grad_batches=4)
    assert initial_loss_warnings(record) == []


def test_confident_wrong_init_warns_once_and_not_after_resume(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=r"initial loss \d.* differs from ln\(4\) = 1.39") as rec:
        trainer = fit(TinyClassifier(bias=10.0), InitialLossCheck(), tmp_path)
    assert len(initial_loss_warnings(rec.list)) == 1
    ckpt = tmp_path / "epoch1.ckpt"
    trainer.save_checkpoint(ckpt)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer = fit(TinyClassifier(bias=10.0), InitialLossCheck(), tmp_path, 2, ckpt_path=ckpt)
    assert trainer.global_step == 8  # it did train on
    assert initial_loss_warnings(record) == []


def test_num_classes_overrides_and_missing_class_names_skip(tmp_path: Path, lightning_info) -> None:
    with pytest.warns(UserWarning, match=r"ln\(40\)"):
        fit(TinyClassifier(), InitialLossCheck(num_classes=40), tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fit(TinyClassifier(class_names=None, bias=10.0), InitialLossCheck(), tmp_path)
    assert initial_loss_warnings(record) == []
    assert messages(lightning_info, "InitialLossCheck") == [
        "InitialLossCheck: set num_classes to check the initial loss"
    ]


@pytest.mark.parametrize(
    ("kwargs", "bad"), [({"num_classes": 1}, "num_classes"), ({"tolerance": 0}, "tolerance")]
)
def test_initial_loss_init_validates(kwargs: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        InitialLossCheck(**kwargs)


def test_histograms_on_logged_steps_only_and_hooks_removed(tmp_path: Path) -> None:
    model = TinyClassifier()
    callback = ActivationHistograms(every_n_steps=2, layer_types=("Linear", "ReLU"))
    fit(model, callback, tmp_path, max_steps=4)
    names = {p.name for p in (tmp_path / "media").iterdir()}
    keys = ["activations_body.0", "activations_body.1", "activations_head"]
    keys += ["grads_body.0.weight", "grads_body.0.bias", "grads_head.weight", "grads_head.bias"]
    assert names == {f"{key}_step{step:06d}.png" for key in keys for step in (0, 2)}
    assert all(not m._forward_hooks for m in model.modules())


def test_histograms_respect_max_layers_and_gradients_flag(tmp_path: Path) -> None:
    callback = ActivationHistograms(every_n_steps=3, gradients=False, max_layers=2)
    fit(TinyClassifier(), callback, tmp_path, max_steps=2)
    names = {p.name for p in (tmp_path / "media").iterdir()}
    # Linear and ReLU layers: body.0, body.1, head -> first and last
    assert names == {"activations_body.0_step000000.png", "activations_head_step000000.png"}


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"max_layers": 0}, "max_layers"),
        ({"layer_types": "Linear"}, "layer_types"),
    ],
)
def test_histograms_init_validates(kwargs: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        ActivationHistograms(**kwargs)
