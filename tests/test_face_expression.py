"""Face expression: model, data formats, CLI round trip, bad input."""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from callbacks.prediction_writer import PredictionWriter
from datamodules.demo.mouths import CLASS_NAMES, make_mouths
from datamodules.face_expression import FaceExpressionDataModule
from tasks.cli import cli
from tasks.face_expression import FaceExpressionTask

CONFIG = str(Path(__file__).parents[1] / "configs" / "face_expression.yaml")
QUICK = ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]


def test_every_parameter_gets_a_gradient_and_outputs_are_finite() -> None:
    model = FaceExpressionTask(class_names=list(CLASS_NAMES), in_channels=1)
    logits = model.net(torch.randn(4, 1, 40, 56))  # any input size works
    assert logits.shape == (4, 4)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_demo_generator_is_seeded() -> None:
    a, la = make_mouths(3, 32, seed=5)
    b, lb = make_mouths(3, 32, seed=5)
    c, _ = make_mouths(3, 32, seed=6)
    assert a.shape == (12, 32, 32, 3)
    assert a.dtype.name == "uint8"
    assert (a == b).all()
    assert (la == lb).all()
    assert not (a == c).all()
    assert sorted(set(la.tolist())) == [0, 1, 2, 3]


def test_loss_drops_on_demo_data() -> None:
    seed_everything(0)
    data = FaceExpressionDataModule(demo_per_class=128, batch_size=32)
    model = FaceExpressionTask(
        class_names=data.class_names,
        in_channels=data.num_channels,
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-3),
    )
    trainer = Trainer(
        max_epochs=5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    # Validating before fitting (the initial-loss check) must not break the fit that follows.
    before = trainer.validate(model, data, verbose=False)[0]
    trainer.fit(model, data)
    after = trainer.validate(model, data, verbose=False)[0]
    assert after["val/loss"] < before["val/loss"] - 0.3
    assert after["val/acc"] > 0.45  # chance level is 0.25


def test_cli_fit_checkpoint_reload_and_predict(mouth_folders: Path) -> None:
    result = cli(
        [
            "fit",
            "-c",
            CONFIG,
            f"--data.init_args.root={mouth_folders}",
            "--trainer.max_epochs=1",
            *QUICK,
        ]
    )
    checkpoint = Path(result.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()

    # The checkpoint alone predicts: class names and preprocessing travel with it.
    model = FaceExpressionTask.load_from_checkpoint(checkpoint)
    assert model.class_names == sorted(CLASS_NAMES)
    images = sorted((mouth_folders / "val" / "smile").glob("*.png"))[:2]
    rows = model.predict_images(images)
    assert [r["path"] for r in rows] == [str(p) for p in images]
    assert all(r["predicted"] in CLASS_NAMES for r in rows)
    assert sum(v for k, v in rows[0].items() if k.startswith("prob_")) == pytest.approx(1.0)

    # `zoo predict` with that checkpoint writes predictions.csv into its run directory.
    result = cli(
        [
            "predict",
            "-c",
            CONFIG,
            f"--ckpt_path={checkpoint}",
            f"--data.init_args.root={mouth_folders}",
            f"--data.init_args.predict_path={mouth_folders / 'val' / 'smile'}",
        ]
    )
    written = Path(result.trainer.log_dir) / "predictions.csv"
    with written.open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(list((mouth_folders / "val" / "smile").glob("*.png")))
    assert list(table[0]) == ["path", "predicted", *(f"prob_{c}" for c in sorted(CLASS_NAMES))]


def test_checkpoint_defines_classes_channels_and_size(mouth_folders: Path, tmp_path: Path) -> None:
    # Trained on 3 grayscale classes at 64 px; the config's defaults are the demo's 4 RGB
    # classes at 48 px. Predicting with the checkpoint needs neither `root` nor the sizes.
    from PIL import Image

    root = tmp_path / "gray"
    for path in (mouth_folders / "train").rglob("*.png"):
        if path.parent.name != "neutral":
            target = root / "train" / path.relative_to(mouth_folders / "train")
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.open(path).convert("L").save(target)
    fit = ["fit", "-c", CONFIG, f"--data.init_args.root={root}", "--data.init_args.image_size=64"]
    result = cli([*fit, "--trainer.max_epochs=1", *QUICK])
    checkpoint = Path(result.trainer.log_dir) / "checkpoints" / "last.ckpt"
    classes = sorted(set(CLASS_NAMES) - {"neutral"})

    photos = sorted((mouth_folders / "val" / "smile").glob("*.png"))[:3]
    args = ["-c", CONFIG, f"--ckpt_path={checkpoint}"]
    result = cli(["predict", *args, f"--data.init_args.predict_path={photos[0].parent}"])
    assert (result.model.hparams.in_channels, result.model.hparams.image_size) == (1, 64)
    assert result.datamodule.image_size == 64
    with (Path(result.trainer.log_dir) / "predictions.csv").open() as handle:
        table = {row["path"]: row for row in csv.DictReader(handle)}
    model = FaceExpressionTask.load_from_checkpoint(checkpoint)
    for row in model.predict_images(photos):  # the same preprocessing as from Python
        for name in classes:
            assert float(table[row["path"]][f"prob_{name}"]) == pytest.approx(
                row[f"prob_{name}"], abs=1e-5
            )

    # Validating on data with other classes (the demo's four) names both lists.
    with pytest.raises(ValueError, match=re.escape(str(classes)) + ".*neutral"):
        cli(["validate", *args, "--data.init_args.demo_per_class=8"])


def test_prediction_writer_same_from_python(tmp_path: Path) -> None:
    data = FaceExpressionDataModule(demo_per_class=8, batch_size=8)
    model = FaceExpressionTask(class_names=data.class_names)
    trainer = Trainer(
        logger=False, callbacks=[PredictionWriter(str(tmp_path / "out"))], enable_progress_bar=False
    )
    trainer.predict(model, data)
    with (tmp_path / "out" / "predictions.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 8  # the demo val split: 8 // 4 = 2 per class
    assert {row["true"] for row in table} == set(CLASS_NAMES)


def test_fer2013_csv_splits_by_usage_and_counts_bad_rows(tmp_path: Path, write_fer2013) -> None:
    write_fer2013(tmp_path / "fer2013.csv", extra_rows=("9,1 2 3,Training", "3,1 2,Training"))
    data = FaceExpressionDataModule(root=str(tmp_path))  # a folder holding fer2013.csv works
    with pytest.warns(UserWarning, match="Skipped 2 FER2013 row"):
        assert data.num_channels == 1
    data.setup("fit")
    assert len(data.class_names) == 7
    assert [len(data.datasets[s]) for s in ("train", "val", "test")] == [42, 42, 42]
    image, label, _ = data.datasets["train"][0]
    assert image.shape == (1, 48, 48)
    assert 0 <= label < 7


def test_fer2013_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("label,pixels\n0,1 2 3\n")
    with pytest.raises(ValueError, match=r"bad.csv lacks column\(s\) \['emotion'\]"):
        FaceExpressionDataModule(root=str(path)).setup("fit")


def test_folders_without_val_are_split_with_the_seed(mouth_folders: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(mouth_folders / "train", tmp_path / "data" / "train")
    data = FaceExpressionDataModule(root=str(tmp_path / "data"), val_split=0.25, seed=3)
    data.setup("fit")
    again = FaceExpressionDataModule(root=str(tmp_path / "data"), val_split=0.25, seed=3)
    again.setup("fit")
    assert len(data.datasets["val"]) == 12
    assert len(data.datasets["train"]) == 36
    assert data.datasets["val"].paths == again.datasets["val"].paths
    assert sorted(data.datasets["val"].labels) == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_held_out_validation_keeps_every_class_of_a_small_dataset(mouth_folders, tmp_path) -> None:
    import shutil

    # 26 / 26 / 27 images, as in the bug report; a random hold-out gave 5 / 8 / 3.
    for name, count in (("frown", 26), ("smile", 26), ("surprise", 27)):
        source = sorted((mouth_folders / "train" / name).glob("*.png"))[0]
        folder = tmp_path / "data" / "train" / name
        folder.mkdir(parents=True)
        for i in range(count):
            shutil.copy(source, folder / f"{i:03d}.png")
    data = FaceExpressionDataModule(root=str(tmp_path / "data"), val_split=0.2)
    data.setup("fit")
    assert sorted(data.datasets["val"].labels) == [0] * 5 + [1] * 5 + [2] * 5


def test_predicting_a_class_folder_tree_gives_true_labels(mouth_folders: Path) -> None:
    data = FaceExpressionDataModule(
        root=str(mouth_folders), predict_path=str(mouth_folders / "val")
    )
    data.setup("predict")
    dataset = data.datasets["predict"]
    assert [data.class_names[i] for i in dataset.labels] == [p.parent.name for p in dataset.paths]
    flat = FaceExpressionDataModule(
        root=str(mouth_folders), predict_path=str(mouth_folders / "val" / "smile")
    )
    flat.setup("predict")
    assert set(flat.datasets["predict"].labels) == {-1}  # no class folders: labels unknown


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        FaceExpressionDataModule(root=str(tmp_path / "nowhere")).setup("fit")


def test_empty_class_folder_is_an_error(mouth_folders: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(mouth_folders, tmp_path / "data")
    for image in (tmp_path / "data" / "val" / "smile").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match=r"val/smile has no readable images"):
        FaceExpressionDataModule(root=str(tmp_path / "data")).setup("fit")


def test_corrupt_and_non_image_files_are_counted_skips(mouth_folders: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(mouth_folders, tmp_path / "data")
    (tmp_path / "data" / "train" / "smile" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "data" / "train" / "smile" / "notes.txt").write_text("hello")
    data = FaceExpressionDataModule(root=str(tmp_path / "data"))
    with pytest.warns(UserWarning, match="Skipped") as record:
        data.setup("fit")
    messages = sorted(str(w.message) for w in record if "Skipped" in str(w.message))
    assert len(messages) == 2
    assert re.search(r"Skipped 1 non-image file\(s\).*notes.txt", messages[0])
    assert re.search(r"Skipped 1 unreadable file\(s\).*broken.png", messages[1])
    assert len(data.datasets["train"]) == 48  # every readable image is still there


def test_balanced_class_weights_from_linked_counts() -> None:
    model = FaceExpressionTask(
        class_names=["a", "b"], class_counts=[10, 30], class_weights="balanced"
    )
    assert model.loss_fn.weight.tolist() == pytest.approx([2.0, 2 / 3])
    result = cli(
        [
            "fit",
            "-c",
            CONFIG,
            "--data.init_args.demo_per_class=8",
            "--trainer.fast_dev_run=1",
            "--model.init_args.class_weights=balanced",
        ]
    )
    assert result.model.hparams.class_counts == [8, 8, 8, 8]
    assert result.model.loss_fn.weight.tolist() == pytest.approx([1.0] * 4)


def test_unknown_config_key_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["fit", "-c", CONFIG, "--data.init_args.batchsize=8"])
    assert "batchsize" in capsys.readouterr().err


def test_yaml_optimizer_and_scheduler_reach_the_trainer() -> None:
    result = cli(
        [
            "fit",
            "-c",
            CONFIG,
            "--data.init_args.demo_per_class=16",
            "--trainer.max_epochs=3",
            *QUICK,
            "--model.init_args.optimizer=torch.optim.SGD",
            "--model.init_args.optimizer.lr=0.2",
            "--model.init_args.optimizer.momentum=0.8",
            "--model.init_args.scheduler=torch.optim.lr_scheduler.StepLR",
            "--model.init_args.scheduler.step_size=1",
            "--model.init_args.scheduler.gamma=0.5",
            "--trainer.callbacks=[]",  # without the config's LRSchedule: one scheduler at a time
        ]
    )
    optimizer = result.trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]["momentum"] == 0.8
    assert optimizer.param_groups[0]["initial_lr"] == 0.2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2 * 0.5**3)  # stepped every epoch


def test_help_lists_prepare(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli(["--help"])
    assert exit_info.value.code == 0
    assert "zoo prepare mouths" in capsys.readouterr().out


def test_precision_and_recall_equal_hand_computed_values() -> None:
    from tasks.common import classification_metrics

    metrics = classification_metrics(["cat", "dog", "fox"]).clone(prefix="val/")
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    predicted = torch.tensor([0, 0, 1, 1, 2, 2])
    metrics.update(torch.nn.functional.one_hot(predicted, 3).float(), labels)
    values = {k: round(v.item(), 4) for k, v in metrics.compute().items()}
    # cat: 2 of 2 predicted are right, 2 of 3 found; dog: 1/2, 1/2; fox: 1/2, 1/1.
    assert values == {
        "val/acc": round(4 / 6, 4),
        "val/f1": round((0.8 + 0.5 + 2 / 3) / 3, 4),
        "val/precision_cat": 1.0,
        "val/precision_dog": 0.5,
        "val/precision_fox": 0.5,
        "val/recall_cat": round(2 / 3, 4),
        "val/recall_dog": 0.5,
        "val/recall_fox": 1.0,
    }
