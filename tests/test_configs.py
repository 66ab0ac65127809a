"""Every config in configs/ runs fit, validate, test and predict through `zoo` on demo data,
and the checkpoint flow: fit, then validate/test/predict/resume from the checkpoint alone."""

from __future__ import annotations

import csv
import inspect
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.cli import cli

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
# Per-application overrides that keep the demo data tiny; see `tiny`.
TINY = {
    "bart_summarization": [
        "--data.init_args.demo_articles=32",
        "--data.init_args.batch_size=8",
        "--data.init_args.tokenizer_vocab_size=400",
        "--model.init_args.d_model=16",
        "--model.init_args.num_layers=1",
        "--model.init_args.num_beams=2",
        "--model.init_args.max_new_tokens=8",
    ],
    "bert_news": [
        "--data.init_args.demo_headlines=64",
        "--data.init_args.batch_size=16",
        "--model.init_args.hidden_size=16",
        "--model.init_args.num_layers=1",
    ],
    "cat_segmentation": [
        "--data.init_args.demo_images=8",
        "--data.init_args.image_size=32",
        "--model.init_args.init_features=4",
    ],
    "face_expression": ["--data.init_args.demo_per_class=16"],
    "imdb_lstm": [
        "--data.init_args.demo_reviews=64",
        "--data.init_args.batch_size=16",
        "--model.init_args.embedding_dim=8",
        "--model.init_args.hidden_dim=8",
    ],
    "logo": [
        "--data.init_args.demo_per_class=8",
        "--data.init_args.image_size=32",
        "--model.init_args.pretrained=false",  # offline: no ImageNet weights
    ],
}


def tiny(config: Path) -> list[str]:
    """The small-data overrides of the config's application (`cat_segmentation_photos` is cat's)."""
    app = max((name for name in TINY if config.stem.startswith(name)), key=len, default=None)
    return TINY[app] if app else []


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
@pytest.mark.parametrize("subcommand", ["fit", "validate", "test", "predict"])
def test_config_runs(config: Path, subcommand: str) -> None:
    args = [subcommand, "-c", str(config), "--trainer.fast_dev_run=2", *tiny(config)]
    result = cli(args)
    assert result.trainer.state.finished, f"{subcommand} with {config.name} did not finish"
    if subcommand == "predict":
        predictions = [*Path().rglob("predictions.csv"), *Path().rglob("summaries.jsonl")]
        assert predictions, "predict wrote no predictions.csv / summaries.jsonl"
        assert len(predictions[0].read_text().splitlines()) > 1


PRESETS = sorted((Path(__file__).parents[1] / "configs" / "presets").glob("*.yaml"))
# Strategies for GPUs: tests/test_presets.py parses them with every config and builds them.
NEEDS_GPU = {"ddp", "deepspeed", "fsdp", "multinode"}


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_presets_combine_with_a_config(preset: Path) -> None:
    base = ["-c", str(CONFIGS[0]), "-c", str(preset), *tiny(CONFIGS[0])]
    if preset.stem in NEEDS_GPU:
        pytest.skip("needs a GPU; tests/test_presets.py parses it and builds its strategy")
    result = cli(["fit", *base, "--trainer.fast_dev_run=2"])
    assert result.trainer.state.finished


def test_configs_exist() -> None:
    assert any(c.stem == "face_expression" for c in CONFIGS)


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists() and (path.parent / "summaries.jsonl").exists():
        lines = (path.parent / "summaries.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _separate_inputs(config: Path, folder: Path) -> Path:
    """Inputs to predict that are not the training data: images (one broken, one text file)
    or a one-review-per-line text file."""
    folder.mkdir()
    if config.stem in ("imdb_lstm", "bert_news", "bart_summarization"):
        path = folder / "texts.txt"
        path.write_text("A truly wonderful film.\nThe plot was not good at all.\n")
        return path
    rng = np.random.default_rng(0)
    for i, size in enumerate((40, 57)):  # sizes the model was not trained at
        Image.fromarray(rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)).save(
            folder / f"photo{i}.png"
        )
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_checkpoint_flow(config: Path, tmp_path: Path) -> None:
    """fit -> validate/test/predict/resume with --ckpt_path, and load_from_checkpoint."""
    small = tiny(config)
    steps = ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    fitted = cli(["fit", "-c", str(config), "--trainer.max_epochs=1", *steps, *small])
    checkpoint = Path(fitted.trainer.log_dir) / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    task_class = type(fitted.model)

    # Hyperparameters: the task's own small __init__ arguments, nothing else.
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    own = set(inspect.signature(task_class.__init__).parameters) - {"self"}
    assert set(saved["hyper_parameters"]) <= own - {"optimizer", "scheduler"}
    assert all(len(str(v)) < 1000 for v in saved["hyper_parameters"].values())

    for subcommand in ("validate", "test", "predict"):
        result = cli([subcommand, "-c", str(config), "--ckpt_path", str(checkpoint), *small])
        assert result.trainer.state.finished, subcommand
    rows = _rows(Path(result.trainer.log_dir, "predictions.csv"))
    assert "true" in rows[0] or "dice" in rows[0] or "reference" in rows[0]

    # Predict other inputs with no root and none of the tiny data settings: the checkpoint
    # alone defines the model and its preprocessing; no training data is read.
    inputs = _separate_inputs(config, tmp_path / "inputs")
    args = ["-c", str(config), "--ckpt_path", str(checkpoint)]
    result = cli(["predict", *args, f"--data.init_args.predict_path={inputs}"])
    assert {"source", "encoded"}.isdisjoint(vars(result.datamodule)), "read the training data"
    rows = _rows(Path(result.trainer.log_dir, "predictions.csv"))
    assert len(rows) == 2  # broken.png and notes.txt skipped
    for key in ("image_size", "class_names", "max_length"):
        if key in fitted.model.hparams:
            assert result.model.hparams[key] == fitted.model.hparams[key]

    # Resume: training continues from the checkpoint's step and epoch.
    resumed = cli(["fit", *args, "--trainer.max_epochs=2", *steps, *small])
    assert resumed.trainer.current_epoch == 2
    assert resumed.trainer.global_step == 2 * fitted.trainer.global_step

    # The Python API: the checkpoint alone rebuilds the task and predicts.
    model = task_class.load_from_checkpoint(checkpoint, map_location="cpu")
    if config.stem == "bart_summarization":
        (summary,) = model.summarize(["A good film."])
        assert isinstance(summary, str)
        return
    if config.stem in ("imdb_lstm", "bert_news"):
        predicted = model.predict_texts(["A good film."])
    else:
        predicted = model.predict_images([sorted(inputs.glob("photo*.png"))[0]])
    assert len(predicted) == 1
    assert predicted[0].get("predicted", "mask") in [*model.class_names, "mask"]


def test_every_logger_keeps_one_folder_per_run() -> None:
    import wandb

    face = next(c for c in CONFIGS if c.stem == "face_expression")
    preset = face.parent / "presets" / "wandb.yaml"
    steps = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
    args = ["-c", str(face), "-c", str(preset), *TINY["face_expression"], *steps]
    folders = []
    for _ in range(2):
        result = cli(["fit", *args, "--trainer.limit_val_batches=1"])
        folders.append(Path(result.trainer.checkpoint_callback.dirpath).parent)
        wandb.finish()
    checkpoint = folders[0] / "checkpoints" / "last.ckpt"
    result = cli(["predict", *args, f"--ckpt_path={checkpoint}"])
    (writer,) = [c for c in result.trainer.callbacks if type(c).__name__ == "PredictionWriter"]
    folders.append(writer.path.parent)
    wandb.finish()

    assert len(set(folders)) == 3, "each run gets its own folder"
    assert all(f.parent == Path("runs/lightning-task-zoo") for f in folders)
    for folder in folders[:2]:
        assert (folder / "config.yaml").is_file()
        assert (folder / "checkpoints" / "last.ckpt").is_file()
    assert (folders[2] / "config.yaml").is_file()
    assert (folders[2] / "predictions.csv").is_file()
    assert not Path("runs/config.yaml").exists()


def test_evaluation_runs_do_not_warn_about_checkpoint_folders_nor_show_v_num() -> None:
    from callbacks.progress_bar import RunProgressBar

    face = next(c for c in CONFIGS if c.stem == "face_expression")
    tiny = [*TINY["face_expression"], "--trainer.limit_train_batches=1"]
    fitted = cli(["fit", "-c", str(face), *tiny, "--trainer.max_epochs=1"])
    checkpoint = Path(fitted.trainer.log_dir) / "checkpoints" / "last.ckpt"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cli(["validate", "-c", str(face), *tiny, f"--ckpt_path={checkpoint}"])
    assert not any("dirpath has changed" in str(w.message) for w in caught)
    assert not any("Be aware" in str(w.message) for w in caught)
    assert result.trainer.state.finished
    bar = next(c for c in fitted.trainer.callbacks if isinstance(c, RunProgressBar))
    assert "v_num" not in bar.get_metrics(fitted.trainer, fitted.model)


def test_without_a_logger_nothing_lands_in_the_working_directory() -> None:
    face = next(c for c in CONFIGS if c.stem == "face_expression")
    before = set(Path().iterdir())
    steps = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2"]
    cli(["fit", "-c", str(face), "--trainer.logger=false", *TINY["face_expression"], *steps])
    assert set(Path().iterdir()) - before == {Path("runs")}
    assert list(Path("runs").rglob("*confusion_matrix*.png")), "media go under runs/"
    assert (Path("runs") / "checkpoints" / "last.ckpt").is_file()


def test_a_checkpoint_of_another_task_is_named_as_such() -> None:
    imdb = next(c for c in CONFIGS if c.stem == "imdb_lstm")
    checkpoint = Path(__file__).parent / "data" / "checkpoints" / "face_expression.ckpt"
    with pytest.raises(ValueError, match=r"written by another task.*\['class_weights'"):
        cli(["validate", "-c", str(imdb), f"--ckpt_path={checkpoint}"])
