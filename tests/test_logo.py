"""Logo: EfficientNet weights loading, freeze then unfreeze (also on resume and under DDP)."""

from __future__ import annotations

import csv
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from callbacks.freeze_backbone import FreezeBackbone
from callbacks.lr_schedule import LRSchedule
from datamodules.logo import LogoDataModule
from tasks.cli import cli
from tasks.logo import LogoTask, efficientnet

CONFIG = str(Path(__file__).parents[1] / "configs" / "logo.yaml")
TINY = {"demo_per_class": 8, "image_size": 32, "batch_size": 8}


def tiny_trainer(epochs: int, callbacks: list, **kwargs) -> Trainer:
    return Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def test_pretrained_true_loads_torchvision_weights_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.models import EfficientNet_B0_Weights, efficientnet_b0

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = efficientnet_b0().state_dict()
    cached = tmp_path / "hub" / "checkpoints" / Path(EfficientNet_B0_Weights.DEFAULT.url).name
    cached.parent.mkdir(parents=True)
    torch.save(reference, cached)  # what a download would have left there
    net = efficientnet("efficientnet_b0", num_classes=2, pretrained=True)
    assert torch.equal(net.features[0][0].weight, reference["features.0.0.weight"])
    assert net.classifier[-1].out_features == 2


def test_pretrained_offline_fails_with_a_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import torchvision.models._api as api

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(OSError, match=r"Offline\?.*efficientnet_b0.*pretrained: false"):
        efficientnet("efficientnet_b0", num_classes=2, pretrained=True)


def test_pretrained_path_loads_a_local_state_dict(tmp_path: Path) -> None:
    from torchvision.models import efficientnet_b0, mobilenet_v3_small

    reference = efficientnet_b0().state_dict()
    torch.save(reference, tmp_path / "b0.pth")
    model = LogoTask(class_names=["logo", "others"], pretrained=str(tmp_path / "b0.pth"))
    assert torch.equal(model.backbone[0][0].weight, reference["features.0.0.weight"])
    torch.save(mobilenet_v3_small().state_dict(), tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth is not a efficientnet_b0 state dict"):
        efficientnet("efficientnet_b0", 2, pretrained=str(tmp_path / "other.pth"))


class Snapshots(Callback):
    """Backbone weights, BN statistics and requires_grad at the end of each train epoch."""

    def __init__(self) -> None:
        self.epochs: list[tuple[torch.Tensor, torch.Tensor, bool]] = []

    def on_train_epoch_end(self, trainer, pl_module):
        conv, bn = pl_module.backbone[0][0], pl_module.backbone[0][1]
        self.epochs.append(
            (conv.weight.detach().clone(), bn.running_mean.clone(), conv.weight.requires_grad)
        )


def test_backbone_frozen_first_then_trained() -> None:
    seed_everything(0)
    data = LogoDataModule(**TINY)
    model = LogoTask(class_names=data.class_names, image_size=32)
    start = model.backbone[0][0].weight.detach().clone()
    start_bn = model.backbone[0][1].running_mean.clone()
    snapshots = Snapshots()
    tiny_trainer(2, [FreezeBackbone(unfreeze_at_epoch=1), snapshots]).fit(model, data)
    (w0, bn0, grad0), (w1, bn1, grad1) = snapshots.epochs
    assert not grad0
    assert torch.equal(w0, start)  # frozen: weights untouched
    assert torch.equal(bn0, start_bn)  # and BatchNorm statistics kept
    assert grad1
    assert not torch.equal(w1, w0)  # unfrozen: trained
    assert not torch.equal(bn1, bn0)


def test_resume_after_the_unfreeze_epoch_keeps_training_the_backbone(tmp_path: Path) -> None:
    seed_everything(0)
    data = LogoDataModule(**TINY)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    tiny_trainer(2, [FreezeBackbone(unfreeze_at_epoch=1), checkpoint]).fit(
        LogoTask(class_names=data.class_names, image_size=32), data
    )
    resumed = LogoTask(class_names=data.class_names, image_size=32)
    snapshots = Snapshots()
    tiny_trainer(3, [FreezeBackbone(unfreeze_at_epoch=1), snapshots]).fit(
        resumed, data, ckpt_path=checkpoint.last_model_path
    )
    before = torch.load(checkpoint.last_model_path, weights_only=False)["state_dict"]
    ((weight, _, trainable),) = snapshots.epochs  # only epoch 2 ran
    assert trainable
    assert not torch.equal(weight, before["net.features.0.0.weight"])


def test_backbone_lr_follows_the_schedule_at_a_tenth() -> None:
    class RecordLR(Callback):
        def __init__(self) -> None:
            self.pairs: list[tuple[float, float]] = []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            groups = {g["name"]: g["lr"] for g in optimizer.param_groups}
            self.pairs.append((groups["backbone"], groups["head"]))

    data = LogoDataModule(**TINY)
    record = RecordLR()
    schedule = LRSchedule("step", warmup_steps=2, milestones=[1], plot=False)
    tiny_trainer(2, [FreezeBackbone(unfreeze_at_epoch=1), schedule, record]).fit(
        LogoTask(class_names=data.class_names, image_size=32), data
    )
    heads = [head for _, head in record.pairs]
    assert heads == pytest.approx([5e-4, 1e-3, 1e-4, 1e-4])  # warmup, then /10 at epoch 1
    assert [backbone for backbone, _ in record.pairs] == pytest.approx([h / 10 for h in heads])


def test_checkpoint_of_a_pretrained_model_reloads_offline(tmp_path: Path, monkeypatch) -> None:
    from torchvision.models import EfficientNet_B0_Weights, efficientnet_b0

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "hub" / "checkpoints"
    cached.mkdir(parents=True)
    torch.save(
        efficientnet_b0().state_dict(), cached / Path(EfficientNet_B0_Weights.DEFAULT.url).name
    )
    data = LogoDataModule(**TINY)
    trainer = tiny_trainer(
        1, [], default_root_dir=tmp_path, limit_train_batches=1, limit_val_batches=1
    )
    trainer.fit(LogoTask(class_names=data.class_names, image_size=32, pretrained=True), data)
    (cached / Path(EfficientNet_B0_Weights.DEFAULT.url).name).unlink()  # now "offline"
    model = LogoTask.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert model.hparams.pretrained is False


def test_cli_predictions_list_true_class_and_probabilities() -> None:
    result = cli(
        [
            "predict",
            "-c",
            CONFIG,
            "--data.init_args.demo_per_class=8",
            "--data.init_args.image_size=32",
        ]
    )
    with (Path(result.trainer.log_dir) / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4  # the demo val split: 8 // 4 = 2 per class
    assert list(rows[0]) == ["path", "predicted", "true", "prob_logo", "prob_others"]
    assert {row["true"] for row in rows} == {"logo", "others"}


def test_single_class_folder_is_an_error(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "train" / "logo").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "logo" / "a.png")
    with pytest.raises(ValueError, match="only the class folder \\['logo'\\].*at least two"):
        LogoDataModule(root=str(tmp_path)).setup("fit")


def test_corrupt_image_is_a_counted_skip(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("logo", "others"):
        (tmp_path / "train" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "train" / name / f"{i}.jpg")
    (tmp_path / "train" / "logo" / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    data = LogoDataModule(root=str(tmp_path), val_split=0.34)
    with pytest.warns(UserWarning, match=r"Skipped 1 unreadable file\(s\).*bad.jpg"):
        data.setup("fit")
    assert len(data.datasets["train"]) + len(data.datasets["val"]) == 6


def test_class_folders_at_the_top_level_are_the_training_split(tmp_path: Path) -> None:
    """Flickr Logos' and ImageFolder's layout: root/<class>/*, no train/ folder."""
    from PIL import Image

    for name in ("logo", "no_logo"):
        (tmp_path / name).mkdir()
        for i in range(4):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / name / f"{i}.jpg")
    (tmp_path / "labels.csv").write_text("not an image folder\n")
    data = LogoDataModule(root=str(tmp_path), val_split=0.25)
    data.setup("fit")
    assert data.class_names == ["logo", "no_logo"]
    assert len(data.datasets["train"]) == 6
    assert len(data.datasets["val"]) == 2


class RankChecksums(Callback):
    """Each rank writes its backbone checksum and whether it trained, for the test to compare."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_start(self, trainer, pl_module):
        self.start = sum(p.double().sum().item() for p in pl_module.backbone.parameters())

    def on_train_end(self, trainer, pl_module):
        total = sum(p.double().sum().item() for p in pl_module.backbone.parameters())
        (self.out / f"rank{trainer.global_rank}.txt").write_text(f"{self.start!r} {total!r}")


@pytest.mark.slow
def test_unfrozen_backbone_stays_in_sync_under_ddp(tmp_path: Path) -> None:
    data = LogoDataModule(demo_per_class=8, image_size=32, batch_size=4)
    trainer = tiny_trainer(
        2,
        [FreezeBackbone(unfreeze_at_epoch=1), RankChecksums(tmp_path)],
        strategy="ddp_spawn",  # FreezeBackbone turns on the unused-parameter search
        accelerator="cpu",
        devices=2,
        enable_checkpointing=False,
    )
    trainer.fit(LogoTask(class_names=data.class_names, image_size=32), data)
    (start0, end0), (start1, end1) = (
        map(float, (tmp_path / f"rank{r}.txt").read_text().split()) for r in (0, 1)
    )
    assert start0 == start1  # same initial weights
    assert end0 != start0  # the backbone trained after unfreezing...
    assert end0 == end1  # ...with gradients all-reduced: both ranks hold the same weights


def test_advprop_normalisation_reaches_the_task() -> None:
    result = cli(
        [
            "fit",
            "-c",
            CONFIG,
            "--data.init_args.demo_per_class=8",
            "--data.init_args.image_size=32",
            "--data.init_args.normalization=advprop",
            "--trainer.fast_dev_run=1",
        ]
    )
    assert list(result.model.hparams.mean) == [0.5, 0.5, 0.5]
    assert list(result.model.hparams.std) == [0.5, 0.5, 0.5]
    image, _, _ = result.datamodule.datasets["val"][0]
    assert image.min() >= -1.0 - 1e-6
    assert image.max() <= 1.0 + 1e-6


def test_eval_transform_keeps_the_whole_poster() -> None:
    data = LogoDataModule(image_size=32)
    poster = torch.zeros(3, 40, 120, dtype=torch.uint8)  # wide poster, logo at the far right
    poster[:, :, 110:] = 255
    out = data.eval_transform()(poster)
    assert out.shape == (3, 32, 32)
    assert out[:, :, -2:].mean() > out[:, :, :2].mean() + 1.0  # no centre crop cut it off
