"""Epoch time with a config's default-on diagnostics vs none, measured side by side.

For every config (or the ones given), trains the same task twice per repeat, interleaved: as
configured, and with the zoo's diagnostic callbacks (update ratio, first-layer filters, sanity
checks, histograms) removed. The LR schedule stays in both: it changes training, not overhead.
Epoch time runs from one train-epoch start to the next (training, validation, epoch-end hooks),
the first epoch dropped as warm-up. Goal: ratio <= 1.03.

    python bench/diagnostics.py [configs/face_expression.yaml ...] [--epochs 4 --repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from lightning import seed_everything
from lightning.pytorch import Callback

from tasks.cli import cli

GOAL = 1.03
DIAGNOSTICS = (
    "callbacks.update_ratio",
    "callbacks.first_layer",
    "callbacks.initial_loss",
    "callbacks.histograms",
)


class EpochTimer(Callback):
    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.marks.append(time.perf_counter())

    def on_fit_end(self, trainer, pl_module) -> None:
        self.marks.append(time.perf_counter())


def epoch_seconds(config: Path, diagnostics: bool, epochs: int, batches: int) -> list[float]:
    seed_everything(0)
    result = cli(
        [
            "-c",
            str(config),
            f"--trainer.max_epochs={epochs}",
            f"--trainer.limit_train_batches={batches}",
            "--trainer.enable_model_summary=false",
        ],
        run=False,
    )
    trainer = result.trainer
    removed = [c for c in trainer.callbacks if type(c).__module__ in DIAGNOSTICS]
    if not diagnostics:
        trainer.callbacks = [c for c in trainer.callbacks if c not in removed]
    timer = EpochTimer()
    trainer.callbacks.append(timer)
    trainer.fit(result.model, datamodule=result.datamodule)
    marks = timer.marks
    return [b - a for a, b in zip(marks[1:], marks[2:], strict=False)]  # first epoch dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=30, help="train batches per epoch")
    parser.add_argument("--repeats", type=int, default=2)
    options = parser.parse_args()
    configs = [c.resolve() for c in options.configs] or sorted(
        (Path(__file__).parents[1] / "configs").glob("*.yaml")
    )
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)  # runs and media go to a scratch folder
        for config in configs:
            times: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(options.repeats):
                for on in (False, True):  # interleaved, so machine load hits both alike
                    times[on] += epoch_seconds(config, on, options.epochs, options.batches)
            off, on = statistics.median(times[False]), statistics.median(times[True])
            rows.append((config.stem, off, on, on / off))
    print(f"\n{'config':<20} {'none s/epoch':>13} {'diagnostics':>12} {'ratio':>7}")
    for name, off, on, ratio in rows:
        verdict = "PASS" if ratio <= GOAL else "OVER"
        print(f"{name:<20} {off:>13.3f} {on:>12.3f} {ratio:>7.3f}  (goal <= {GOAL}: {verdict})")


if __name__ == "__main__":
    main()
