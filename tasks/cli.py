"""`zoo`: one LightningCLI for every task (fit/validate/test/predict) plus `zoo prepare ...`.

Task and datamodule classes are picked in YAML by short name (`class_path: FaceExpressionTask`).
Facts that come from the data (class names, channels, ...) are linked into the task's arguments
after the datamodule is built, so configs never repeat them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

import callbacks  # noqa: F401 - registers the callbacks for short class names
import datamodules  # noqa: F401 - registers the datamodules for short class names
import tasks  # noqa: F401 - registers the tasks for short class names
from callbacks.prediction_writer import PredictionWriter

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
}

EPILOG = """data preparation:
  zoo prepare mouths SRC DST   crop mouth regions of face photos (class-per-folder) for training
  zoo prepare labelme SRC DST --labels labels.txt
                               labelme JSON polygons -> VOC-style masks for segmentation

examples:
  zoo fit -c configs/face_expression.yaml
  zoo fit -c configs/face_expression.yaml --data.init_args.root data/mouths
  zoo predict -c configs/face_expression.yaml --ckpt_path runs/.../last.ckpt \\
      --data.init_args.predict_path photos/"""


class ZooCLI(LightningCLI):
    """LightningCLI in subclass mode with data-to-model links and a default prediction writer."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link data facts into the task (only for tasks that take them)."""
        for source, target in DATA_TO_MODEL.items():
            parser.link_arguments(
                f"data.{source}", f"model.init_args.{target}", apply_on="instantiate"
            )

    def before_predict(self) -> None:
        """Write predictions.csv into the run directory unless a config adds its own writer."""
        if not any(isinstance(c, BasePredictionWriter) for c in self.trainer.callbacks):
            self.trainer.callbacks.append(PredictionWriter())


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of `zoo`; tests call it in process with a list of arguments."""
    cli(args)


def cli(args: Sequence[str] | None = None, run: bool = True) -> ZooCLI | None:
    """Run `zoo` with `args` and return the LightningCLI (None for `zoo prepare`)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["prepare"]:
        prepare_main(argv[1:])
        return None
    return ZooCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,  # None: LightningCLI reads sys.argv itself
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": "zoo",
            "description": "Lightning Task Zoo: train, evaluate and predict with one command.",
            "epilog": EPILOG,
            "formatter_class": argparse.RawDescriptionHelpFormatter,
        },
    )


def prepare_main(argv: Sequence[str]) -> None:
    """`zoo prepare <what> ...`: data preparation steps, one sub-command per application."""
    parser = argparse.ArgumentParser(prog="zoo prepare", description="Prepare data for a task.")
    steps = parser.add_subparsers(dest="step", required=True)
    mouths = steps.add_parser(
        "mouths",
        help="crop mouth regions of face photos for face-expression training",
        description="Detect faces (OpenCV Haar cascade) in SRC's class-per-folder images, crop "
        "the mouth region and write the same tree of PNG crops to DST.",
    )
    mouths.add_argument("src", type=Path, help="class-per-folder face photos, e.g. raw/train/smile")
    mouths.add_argument("dst", type=Path, help="output folder for the mouth crops")
    mouths.add_argument("--size", type=int, default=64, help="side of the square crops (64)")
    mouths.add_argument("--min-face", type=int, default=48, help="smallest face side in pixels")
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
        from datamodules.cat_segmentation import convert_labelme

        report = convert_labelme(
            options.src, options.dst, options.labels, visualize=not options.no_viz
        )
        print(report.summary())
    if options.step == "mouths":
        from datamodules.face_expression import prepare_mouths

        report = prepare_mouths(
            options.src,
            options.dst,
            size=options.size,
            use_smile=not options.no_smile,
            min_face=options.min_face,
        )
        print(report.summary())


if __name__ == "__main__":
    main()
