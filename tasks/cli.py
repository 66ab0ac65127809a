"""`zoo`: one LightningCLI for every task (fit/validate/test/predict) plus `zoo prepare ...`.

Task and datamodule classes are picked in YAML by short name (`class_path: FaceExpressionTask`).
Facts that come from the data (class names, channels, ...) are linked into the task's arguments
after the datamodule is built, so configs never repeat them. With `--ckpt_path FILE` the facts flow
the other way: the checkpoint's facts are handed to the datamodule as it is built, so the task is
rebuilt exactly as it was trained and the data is read the way the model expects.
"""

from __future__ import annotations

import argparse
import linecache
import os
import re
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import torch
import yaml
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info

import callbacks  # noqa: F401 - registers the callbacks for short class names
import datamodules  # noqa: F401 - registers the datamodules for short class names
import tasks  # noqa: F401 - registers the tasks for short class names
from callbacks.finite_loss import FiniteLoss, NonFiniteLossError
from callbacks.last_checkpoint import LastCheckpoint
from callbacks.media import run_dir
from callbacks.prediction_writer import PredictionWriter
from callbacks.run_summary import RunSummary
from tasks.common import ARTIFACTS

# datamodule attribute -> task argument; a task without the argument simply does not get it.
DATA_TO_MODEL = {
    "class_names": "class_names",
    "num_channels": "in_channels",
    "image_size": "image_size",
    "mean": "mean",
    "std": "std",
    "class_counts": "class_counts",
    "vocab": "vocab",
    "max_length": "max_length",
    "tokenizer": "tokenizer",
    "pretrained": "pretrained",
    "multi_label": "multi_label",
    "max_source_length": "max_source_length",
    "max_target_length": "max_target_length",
}

EPILOG = """data preparation:
  zoo prepare mouths SRC DST   crop mouth regions of face photos (class-per-folder) for training
  zoo prepare labelme SRC DST --labels labels.txt
                               labelme JSON polygons -> VOC-style masks for segmentation

export:
  zoo export CKPT DIR          a Hugging Face task's checkpoint -> a save_pretrained folder
                               that transformers.pipeline(...) loads

examples:
  zoo fit -c configs/face_expression.yaml
  zoo fit -c configs/face_expression.yaml --data.init_args.root data/mouths
  zoo predict -c configs/face_expression.yaml --ckpt_path runs/.../last.ckpt \\
      --data.init_args.predict_path photos/"""


class ZooArgumentParser(LightningArgumentParser):
    """jsonargparse's parser, its errors printed the zoo's way: `zoo: error: <message>`."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print the message and a pointer to `--help` (not the whole usage block), exit 2."""
        if not self.exit_on_error or os.environ.get("ZOO_DEBUG"):
            super().error(message, ex)
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(f"zoo: error: {message}\n(`{prog} --help` lists every option)\n")
        self.exit(2)


class ZooCLI(LightningCLI):
    """LightningCLI in subclass mode with data-to-task links and a default prediction writer.

    With `--ckpt_path FILE` the checkpoint's facts reach the datamodule first (see
    `instantiate_classes`); every run writes into one folder of its own (`RunConfigSaver`).
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link data facts into the task (only for tasks that take them)."""
        for source, target in DATA_TO_MODEL.items():
            parser.link_arguments(
                f"data.{source}", f"model.init_args.{target}", apply_on="instantiate"
            )

    def _parse_ckpt_path(self) -> None:
        """With `--ckpt_path FILE`, take the task's arguments and data facts from the checkpoint.

        Replaces LightningCLI's merge, which needs the `_class_path` its instantiator saves in
        the hyperparameters: zoo checkpoints hold only the task's own `__init__` arguments. They
        become the configured task's arguments (over the config's), and the data facts are kept
        for `instantiate_classes`.
        """
        self.checkpoint_facts: dict[str, Any] | None = None
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not path or path in ("last", "best", "hpc") or path.startswith("registry"):
            return  # none, or one the Trainer finds
        if not Path(path).exists():
            raise FileNotFoundError(
                f"--ckpt_path {path} does not exist. Give the path of a .ckpt file (e.g. "
                "runs/<app>/version_<N>/checkpoints/last.ckpt), or `last` to resume this "
                "config's latest run."
            )
        hparams, self.checkpoint_facts = read_checkpoint(path)
        model = self.config[subcommand].model
        accepted = _init_arguments(model.class_path)
        # zoo 0.1 also saved LightningCLI's keys and links the task does not take; anything
        # else that does not fit means the checkpoint belongs to another task.
        legacy = {"_class_path", "_instantiator", *DATA_TO_MODEL.values()}
        foreign = sorted(set(hparams) - accepted - legacy)
        if foreign:
            raise ValueError(
                f"{path} was written by another task than {model.class_path}: it has the "
                f"argument(s) {foreign}, which that task does not take. Use the config of the "
                "task that trained it."
            )
        # What the command line sets explicitly (e.g. `--model.init_args.threshold 0.3` for
        # predict) wins over the checkpoint; the config files' values do not.
        typed = _typed_model_args(getattr(self, "_argv", []))
        init_args = {k: v for k, v in hparams.items() if k in accepted and k not in typed}
        update = {subcommand: {"model": {"class_path": model.class_path, "init_args": init_args}}}
        try:
            self.config = self.parser.parse_object(update, self.config)
        except SystemExit:
            sys.stderr.write(f"The hyperparameters in {path} do not fit {model.class_path}.\n")
            raise

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, remembering the command line (see `_parse_ckpt_path`)."""
        self._argv = (
            list(sys.argv[1:] if args is None else args) if not isinstance(args, dict) else []
        )
        super().parse_arguments(parser, args)

    def instantiate_classes(self) -> None:
        """Build datamodule, task and trainer; with `--ckpt_path FILE` the checkpoint's facts first.

        The checkpoint's data facts (class names, channels, image size, normalisation,
        vocabulary) go into the datamodule as it is built, so the links above hand the task the
        checkpoint's facts, not the data's, and the data is preprocessed and labelled the way
        the model expects.
        """
        instantiators = []
        if self.checkpoint_facts is not None:
            build = partial(_datamodule_for, self.checkpoint_facts)
            instantiators.append((build, LightningDataModule, True))
        self.config_init = self.parser.instantiate(self.config, instantiators=instantiators)
        config = self.config_init.get(str(self.subcommand), self.config_init)
        self.datamodule = config.get("data")
        self.model = config.get("model")
        self.trainer = self.instantiate_trainer()

    def before_instantiate_classes(self) -> None:
        """Name unnamed loggers after the task: W&B runs `<task>-<start time>`, folders `<task>`.

        The W&B preset unsets the name it would inherit from the config's TensorBoard logger
        (a second `-c` merges `init_args`), so a W&B run is named, for example,
        `face_expression-20261203-081500`; a TensorBoard or CSV logger whose name was unset that
        way (`-c wandb.yaml -c tensorboard.yaml`) writes to `runs/<task>/` again.
        """
        config = self.config.get(str(self.subcommand), self.config)
        loggers = config.trainer.logger
        task = str(config.model.class_path).rpartition(".")[2].removesuffix("Task")
        app = re.sub(r"(?<!^)(?=[A-Z])", "_", task).lower()
        names = {
            "WandbLogger": f"{app}-{time.strftime('%Y%m%d-%H%M%S')}",
            "TensorBoardLogger": app,
            "CSVLogger": app,
        }
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            kind = str(getattr(logger, "class_path", "")).rpartition(".")[2]
            if kind in names and logger.init_args.get("name") is None:
                logger.init_args.name = names[kind]

    def before_fit(self) -> None:
        """Add `FiniteLoss` (stop at a NaN loss) and `RunSummary` unless the config has them.

        `--ckpt_path last` resumes this task's newest `last.ckpt` (`latest_last_checkpoint`).
        """
        for callback in (FiniteLoss, RunSummary):
            if not any(isinstance(c, callback) for c in self.trainer.callbacks):
                self.trainer.callbacks.append(callback())
        config = self.config_init[self.subcommand]
        if config.get("ckpt_path") == "last":
            path = latest_last_checkpoint(self.trainer, type(self.model))
            if path is None:
                rank_zero_info("--ckpt_path last: no earlier run of this task; starting afresh.")
            else:
                rank_zero_info(f"--ckpt_path last: resuming from {path}")
            config["ckpt_path"] = None if path is None else str(path)

    def _quiet_checkpoint_restore(self) -> None:
        # validate/test/predict write no checkpoints, so ModelCheckpoint's warning on restore
        # that "the dirpath has changed" (to this run's folder) says nothing useful here.
        warnings.filterwarnings("ignore", message="The dirpath has changed from")

    def before_validate(self) -> None:
        """Evaluate without the checkpoint-folder warning."""
        self._quiet_checkpoint_restore()

    def before_test(self) -> None:
        """Evaluate without the checkpoint-folder warning."""
        self._quiet_checkpoint_restore()

    def before_predict(self) -> None:
        """Write predictions into the run directory unless a config adds its own writer.

        The file is the task's `prediction_file` (default predictions.csv).
        """
        self._quiet_checkpoint_restore()
        if not any(isinstance(c, BasePredictionWriter) for c in self.trainer.callbacks):
            filename = getattr(self.model, "prediction_file", "predictions.csv")
            self.trainer.callbacks.append(PredictionWriter(filename=filename))


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved `config.yaml` into the run folder (`callbacks.media.run_dir`).

    LightningCLI saves it to `trainer.log_dir`, which for W&B is the bare `save_dir` that every
    run of every application shares. Also prints the run folder once, and gives W&B the whole
    resolved config (its run page's "Config" and the runs table's columns), not only the task's
    hyperparameters.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Write the config on rank zero, before anything else of the run is written."""
        if self.already_saved:
            return
        if trainer.is_global_zero:
            folder = run_dir(trainer)
            folder.mkdir(parents=True, exist_ok=True)
            self.parser.save(
                self.config,
                str(folder / self.config_filename),
                skip_none=False,
                overwrite=self.overwrite,
                multifile=self.multifile,
            )
            rank_zero_info(f"Run folder: {folder}")
            for logger in trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.experiment.config.update(self.config.as_dict(), allow_val_change=True)
        self.already_saved = True


def latest_last_checkpoint(trainer: Trainer, task: type[LightningModule]) -> Path | None:
    """The newest `last.ckpt` of an earlier run of `task` beside this run's folder, if any.

    Lightning's own `ckpt_path="last"` looks only in this run's checkpoint folder, which is a
    new `version_<N>` (or W&B run id) each run, so it would start afresh. Runs are the sibling
    folders `<save_dir>/<name>/*` (`callbacks.media.run_dir`); W&B's are shared by every
    application of the project, so a run counts only when its `config.yaml` names this task.
    """
    found = [c.path(trainer) for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint)]
    if trainer.loggers:
        found += run_dir(trainer).parent.glob(f"*/checkpoints/{LastCheckpoint.FILENAME}")
    task_name = task.__name__

    def of_task(path: Path) -> bool:
        config = path.parent.parent / "config.yaml"
        if not config.is_file():
            return True  # not written by `zoo`: the folder is the only clue
        class_path = (yaml.safe_load(config.read_text()) or {}).get("model", {}).get("class_path")
        return str(class_path).rpartition(".")[2] == task_name

    found = [path for path in found if path.is_file() and of_task(path)]
    return max(found, key=lambda path: path.stat().st_mtime, default=None)


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint's hyperparameters, and its data facts keyed like `DATA_TO_MODEL`'s sources.

    The facts are what `zoo` links from data into the task: hyperparameters and artifacts
    (vocabulary, ...). Memory-mapped and weights-only: fast and safe for any checkpoint size.
    A sharded checkpoint (FSDP's `state_dict_type: sharded`) is a folder: its metadata file
    holds everything but the weights and optimizer states.
    """
    from lightning.fabric.utilities.load import _METADATA_FILENAME

    path = Path(path)
    if path.is_dir():
        if not (path / _METADATA_FILENAME).is_file():
            raise FileNotFoundError(
                f"{path} is a folder but not a sharded FSDP checkpoint: it has no "
                f"{_METADATA_FILENAME}. A DeepSpeed checkpoint folder becomes one file with "
                "lightning.pytorch.utilities.deepspeed.convert_zero_checkpoint_to_fp32_state_dict."
            )
        path = path / _METADATA_FILENAME
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same advice
        raise ValueError(
            f"{path} is not a checkpoint the zoo can read ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}). It may be truncated "
            "(written by a run that crashed), not a Lightning checkpoint, or hold pickled objects "
            "that safe (weights-only) loading refuses. Use another checkpoint of the run, such as "
            "checkpoints/last.ckpt."
        ) from error
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a Lightning checkpoint.")
    hparams = dict(checkpoint.get("hyper_parameters", {}))
    saved = {**hparams, **checkpoint.get(ARTIFACTS, {})}
    facts = {source: saved[target] for source, target in DATA_TO_MODEL.items() if target in saved}
    return hparams, facts


def _typed_model_args(argv: Sequence[str]) -> set[str]:
    """Task arguments given on the command line: `--model.init_args.NAME[=VALUE]`."""
    prefix = "--model.init_args."
    return {a[len(prefix) :].split("=")[0] for a in argv if a.startswith(prefix)}


def _init_arguments(class_path: str) -> set[str]:
    """Names of the `__init__` arguments of the class at `class_path`."""
    import importlib
    import inspect

    module, _, name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def _datamodule_for(
    facts: Mapping[str, Any], cls: type[LightningDataModule], *args: Any, **kwargs: Any
) -> LightningDataModule:
    """Instantiate a datamodule that reads data the way the checkpoint's model expects."""
    datamodule = cls(*args, **kwargs)
    if not hasattr(datamodule, "use_model_facts"):
        raise TypeError(
            f"{cls.__name__} cannot follow a checkpoint: it has no `use_model_facts(facts)` "
            "method, so --ckpt_path cannot tell it the model's classes and preprocessing."
        )
    datamodule.use_model_facts(facts)
    return datamodule


# What an error the zoo raises on purpose (a bad folder, column, label, config value, an offline
# hub name, a NaN loss) can be; its message names the file or field and the fix.
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, NonFiniteLossError)
PACKAGES = tuple(str(Path(__file__).parents[1] / p) for p in ("tasks", "datamodules", "callbacks"))


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of `zoo`; tests call it in process with a list of arguments.

    An error the user can fix prints `zoo: error: <message>` and exits with 2, without a
    traceback (`ZOO_DEBUG=1` shows it). Such an error is one the zoo raises on purpose: a `raise`
    statement in the zoo's own code. Anything else is a bug and keeps its traceback.
    """
    try:
        cli(args)
    except USER_ERRORS as error:
        ours = purposeful(error)
        if os.environ.get("ZOO_DEBUG") or ours is None:
            raise
        message = str(ours.args[0]) if isinstance(ours, KeyError) and ours.args else str(ours)
        print(f"zoo: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def purposeful(error: BaseException) -> BaseException | None:
    """The error the zoo raised on purpose behind `error`, if any.

    jsonargparse reports a task's or datamodule's `__init__` error as its own ("Does not
    validate against any of the Union subtypes"), with ours as the cause.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, USER_ERRORS) and raised_on_purpose(current):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def raised_on_purpose(error: BaseException) -> bool:
    """Whether `error` comes from a `raise` statement in the zoo's own code.

    Not from a bug in it (a failed lookup, a wrong call), nor from deep inside a library.
    """
    frame = error.__traceback__
    if frame is None:
        return False
    while frame.tb_next is not None:
        frame = frame.tb_next
    path = frame.tb_frame.f_code.co_filename
    line = linecache.getline(path, frame.tb_lineno).strip()
    return path.startswith(PACKAGES) and line.startswith("raise ")


def cli(args: Sequence[str] | None = None, run: bool = True) -> ZooCLI | None:
    """Run `zoo` with `args` and return the LightningCLI (None for `zoo prepare`)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["prepare"]:
        prepare_main(argv[1:])
        return None
    if argv[:1] == ["export"]:
        export_main(argv[1:])
        return None
    return ZooCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,  # None: LightningCLI reads sys.argv itself
        run=run,
        # Without a logger, runs (checkpoints, media, config) still go under runs/, never into
        # the working directory itself.
        trainer_defaults={"default_root_dir": "runs"},
        save_config_callback=RunConfigSaver,
        parser_class=ZooArgumentParser,
        save_config_kwargs={"overwrite": True},
        # Hyperparameters are each task's own `__init__` arguments (`save_hyperparameters`), not
        # the CLI's config dump with link targets the task does not take; tasks inject their
        # own optimizer and scheduler, so no top-level --optimizer/--lr_scheduler.
        load_from_checkpoint_support=False,
        auto_configure_optimizers=False,
        parser_kwargs={
            "prog": "zoo",
            "description": "Lightning Task Zoo: train, evaluate and predict with one command.",
            "epilog": EPILOG,
            "formatter_class": argparse.RawDescriptionHelpFormatter,
        },
    )


def prepare_main(argv: Sequence[str]) -> None:
    """`zoo prepare <what> ...`: data preparation steps, one sub-command per application."""
    from datamodules.prepare.mouths import DETECT_SIDE, MIN_FACE, MIN_FACE_FLOOR

    parser = argparse.ArgumentParser(prog="zoo prepare", description="Prepare data for a task.")
    steps = parser.add_subparsers(dest="step", required=True)
    mouths = steps.add_parser(
        "mouths",
        help="crop mouth regions of face photos for face-expression training",
        description="Detect faces (OpenCV Haar cascade) in SRC's class-per-folder images, crop "
        f"the mouth region and write the same tree of PNG crops to DST. Images under "
        f"{DETECT_SIDE} px (FER2013's 48 x 48 faces) are upscaled for detection.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    mouths.add_argument("src", type=Path, help="class-per-folder face photos, e.g. raw/train/smile")
    mouths.add_argument("dst", type=Path, help="output folder for the mouth crops")
    mouths.add_argument("--size", type=int, default=64, help="side of the square crops")
    mouths.add_argument(
        "--min-face",
        type=float,
        default=MIN_FACE,
        help="smallest face side: below 1 a fraction of the image's shorter side (at least "
        f"{MIN_FACE_FLOOR} px), else pixels",
    )
    mouths.add_argument(
        "--no-smile", action="store_true", help="do not refine the crop with the smile cascade"
    )
    labelme = steps.add_parser(
        "labelme",
        help="convert labelme JSON polygons to a VOC-style segmentation folder",
        description="Convert labelme annotations (SRC/**/*.json) to DST/JPEGImages/*.jpg, "
        "DST/SegmentationClassPNG/*.png (palette class-index masks, 255 = __ignore__) and "
        "DST/class_names.txt, ready for --data.init_args.root DST.",
    )
    labelme.add_argument("src", type=Path, help="folder with labelme's *.json (and images)")
    labelme.add_argument("dst", type=Path, help="output folder (VOC layout)")
    labelme.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="labels file: __ignore__, _background_, then one class per line",
    )
    labelme.add_argument(
        "--no-viz", action="store_true", help="skip SegmentationClassVisualization/ overlays"
    )
    options = parser.parse_args(argv)
    if options.step == "labelme":
        from datamodules.prepare.labelme import convert_labelme

        report = convert_labelme(
            options.src, options.dst, options.labels, visualize=not options.no_viz
        )
        print(report.summary())
    if options.step == "mouths":
        from datamodules.prepare.mouths import prepare_mouths

        report = prepare_mouths(
            options.src,
            options.dst,
            size=options.size,
            use_smile=not options.no_smile,
            min_face=options.min_face,
        )
        print(report.summary())


def export_main(argv: Sequence[str]) -> Path:
    """`zoo export CKPT DIR`: a Hugging Face task's checkpoint as a `save_pretrained` folder."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="zoo export",
        description="Write a checkpoint of a Hugging Face task (BertNewsTask, ...) as a folder "
        "that transformers.pipeline(...) and from_pretrained(...) load.",
    )
    parser.add_argument("checkpoint", type=Path, help="a .ckpt written by `zoo fit`")
    parser.add_argument("folder", type=Path, help="output folder")
    options = parser.parse_args(argv)
    if not options.checkpoint.is_file():
        parser.error(f"{options.checkpoint} does not exist")
    checkpoint = torch.load(options.checkpoint, map_location="cpu", weights_only=True, mmap=True)
    class_path = checkpoint.get(ARTIFACTS, {}).get("task")
    if class_path is None:
        parser.error(
            f"{options.checkpoint} holds no Hugging Face model: only the tasks built on "
            "transformers (BertNewsTask, ...) export to a save_pretrained folder."
        )
    module, _, name = class_path.rpartition(".")
    task = getattr(importlib.import_module(module), name).load_from_checkpoint(
        options.checkpoint, map_location="cpu"
    )
    folder = task.save_pretrained(options.folder)
    print(f"Exported {class_path.rpartition('.')[2]} to {folder}")
    return folder


if __name__ == "__main__":
    main()
