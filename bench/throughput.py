"""Images (samples) per second for training and for prediction, ours vs a plain PyTorch loop.

Builds the config's task and demo data as `zoo` does and measures, side by side in one run:
training steps through `Trainer.fit` vs a hand-written loop over the same model and batches, and
prediction through `Trainer.predict` (with the prediction writer) vs a plain `torch.inference_mode`
loop calling the model. The first batches are dropped as warm-up.

    python bench/throughput.py --config configs/logo.yaml [--batches 30]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from lightning import seed_everything
from lightning.pytorch import Callback, Trainer

from callbacks.prediction_writer import PredictionWriter
from tasks.cli import cli

WARMUP = 3


class Clock(Callback):
    """Wall time and sample count of train/predict batches after the warm-up."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.samples = 0
        self.seen = 0

    def _tick(self, batch) -> None:
        self.seen += 1
        if self.seen == WARMUP:
            self.start = time.perf_counter()
        elif self.seen > WARMUP:
            self.samples += len(batch[1])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._tick(batch)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        self._tick(batch)

    def rate(self) -> float:
        return self.samples / (time.perf_counter() - self.start)


def plain_train(model, loader, batches: int) -> float:
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    model.train()
    samples, start = 0, None
    for i, (images, labels, _) in enumerate(loader):
        if i == batches + WARMUP:
            break
        if i == WARMUP:
            start = time.perf_counter()
        loss = model.loss_fn(model.net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        samples += len(labels) if i >= WARMUP else 0
    return samples / (time.perf_counter() - start)


@torch.inference_mode()
def plain_predict(model, loader, batches: int) -> float:
    model.eval()
    samples, start = 0, None
    for i, (images, labels, _) in enumerate(loader):
        if i == batches + WARMUP:
            break
        if i == WARMUP:
            start = time.perf_counter()
        model(images)
        samples += len(labels) if i >= WARMUP else 0
    return samples / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--batches", type=int, default=30, help="measured batches per variant")
    parser.add_argument("--threads", type=int, default=2)
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    warnings.filterwarnings("ignore")
    config = options.config.resolve()
    with tempfile.TemporaryDirectory() as workdir:
        os.chdir(workdir)
        seed_everything(0)
        built = cli(["-c", str(config)], run=False)
        model, data = built.model, built.datamodule
        data.setup("predict")  # builds train, val and predict datasets
        initial = copy.deepcopy(model)
        steps = options.batches + WARMUP
        epochs = -(-steps // len(data.train_dataloader()))

        rows = [("train", plain_train(model, data.train_dataloader(), options.batches))]
        clock = Clock()
        Trainer(
            max_epochs=epochs,
            limit_val_batches=0,
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            callbacks=[clock],
            num_sanity_val_steps=0,
        ).fit(copy.deepcopy(initial), datamodule=data)
        rows[0] += (clock.rate(),)

        plain = plain_predict(initial, data.predict_dataloader(), options.batches)
        clock = Clock()
        Trainer(
            logger=False,
            enable_progress_bar=False,
            limit_predict_batches=steps,
            callbacks=[clock, PredictionWriter(workdir)],
        ).predict(initial, datamodule=data, return_predictions=False)
        rows.append(("predict", plain, clock.rate()))
    size = getattr(data, "image_size", "-")
    print(
        f"\nconfig: {options.config}   image size: {size}   batch: {data.batch_size}   "
        f"threads: {options.threads}"
    )
    print(f"{'':<8} {'plain samples/s':>16} {'ours samples/s':>15} {'ours/plain':>11}")
    for name, plain, ours in rows:
        print(f"{name:<8} {plain:>16.1f} {ours:>15.1f} {ours / plain:>11.2f}")


if __name__ == "__main__":
    main()
