"""Training-step cost of Lightning and of the full `zoo` setup against a plain PyTorch loop.

Times the same task and training loader three ways in one process and prints ms/step and the
ratio to the plain loop:

- plain:   hand-written loop (fetch, `training_step`, zero_grad, backward, optimizer step);
- trainer: a bare `Trainer` (no logger, progress bar, checkpoints, summary or validation);
- zoo:     `zoo fit` with everything the config sets (logger, progress bar, checkpoints, LR
           monitor, validation, and any precision or gradient clipping: those count here only).

A `FreezeBackbone` in the config is set to train the backbone from the start, so all three
variants do the same work per step. A step is the time from one batch start to the next within
an epoch, so it includes fetching the next batch; intervals that span an epoch boundary
(validation, checkpointing) are dropped.

    python bench/overhead.py --config configs/face_expression.yaml [--steps 40 --repeats 2]
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning import seed_everything
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch import Callback, LightningModule, Trainer

from callbacks.freeze_backbone import FreezeBackbone
from tasks.cli import cli

GOAL = 1.10  # full zoo may cost at most this much per step relative to the plain loop
VARIANTS = ("plain", "trainer", "zoo")


@dataclass
class Timing:
    """Per-step milliseconds of one run: batch start to next batch start, and start to end."""

    steps: list[float]
    inside: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.steps)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.steps)


class StepTimer(Callback):
    """Records `perf_counter()` at every training batch start and end, with the epoch."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, float]] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append((trainer.current_epoch, time.perf_counter()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


def measure(starts: list[tuple[int, float]], ends: list[float], warmup: int, steps: int) -> Timing:
    """Step times within each epoch; drop the first `warmup`, keep the next `steps`."""
    total, inside = [], []
    for (epoch, t0), (next_epoch, t1), t_end in zip(starts, starts[1:], ends, strict=False):
        if epoch == next_epoch:  # the last batch of an epoch is followed by validation
            total.append(1000 * (t1 - t0))
            inside.append(1000 * (t_end - t0))
    if len(total) < warmup + steps:
        raise RuntimeError(f"only {len(total)} steps recorded, need {warmup + steps}")
    keep = slice(warmup, warmup + steps)
    return Timing(total[keep], inside[keep])


def build(config: str, *overrides: str) -> Any:
    # Without a subcommand: LightningCLI(run=False) has no fit/validate/... parsers.
    return cli(["-c", config, *overrides], run=False)


def first_optimizer(conf: Any) -> tuple[torch.optim.Optimizer, Any, str]:
    """(optimizer, scheduler or None, "step"|"epoch") from any `configure_optimizers` return."""
    scheduler: Any = None
    if isinstance(conf, dict):
        optimizer, scheduler = conf["optimizer"], conf.get("lr_scheduler")
    elif isinstance(conf, list | tuple):
        if len(conf) == 2 and isinstance(conf[0], list | tuple):  # ([optimizers], [schedulers])
            optimizer, scheduler = conf[0][0], (conf[1][0] if conf[1] else None)
        else:
            return first_optimizer(conf[0])
    else:
        optimizer = conf
    interval = "epoch"
    if isinstance(scheduler, dict):
        interval = scheduler.get("interval", "epoch")
        scheduler = scheduler["scheduler"]
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler = None  # needs a validation metric; its step is outside the timed steps anyway
    return optimizer, scheduler, interval


def run_plain(
    model: LightningModule, datamodule: Any, epochs: int, batches: int, warmup: int, steps: int
) -> Timing:
    if not model.automatic_optimization:
        raise SystemExit(
            "plain loop: manual optimization (automatic_optimization=False) unsupported"
        )
    # `self.log`/`self.log_dict` outside a Trainer would warn and return on every call; a
    # hand-written loop would not log at all, so they become no-ops on this instance. Logging
    # cost therefore counts as Lightning overhead in the other two variants.
    model.log = lambda *args, **kwargs: None
    model.log_dict = lambda *args, **kwargs: None
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # as accelerator="auto"
    model.to(device).train()
    optimizer, scheduler, interval = first_optimizer(model.configure_optimizers())
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    starts: list[tuple[int, float]] = []
    ends: list[float] = []
    for epoch in range(epochs):
        batch_iter = iter(loader)
        for batch_idx in range(batches):
            batch = move_data_to_device(next(batch_iter), device)
            starts.append((epoch, time.perf_counter()))  # where on_train_batch_start fires
            out = model.training_step(batch, batch_idx)
            loss = out["loss"] if isinstance(out, dict) else out
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None and interval == "step":
                scheduler.step()
            ends.append(time.perf_counter())
        if scheduler is not None and interval == "epoch":
            scheduler.step()
    return measure(starts, ends, warmup, steps)


def run_trainer(
    model: LightningModule, datamodule: Any, epochs: int, batches: int, warmup: int, steps: int
) -> Timing:
    timer = StepTimer()
    trainer = Trainer(
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=datamodule)
    return measure(timer.starts, timer.ends, warmup, steps)


def run_zoo(
    config: str, epochs: int, batches: int, warmup: int, steps: int, *overrides: str
) -> Timing:
    limits = (f"--trainer.max_epochs={epochs}", f"--trainer.limit_train_batches={batches}")
    result = build(config, *overrides, *limits)
    timer = StepTimer()
    # First in the list: its hooks run before the configured callbacks' hooks of the same name.
    result.trainer.callbacks.insert(0, timer)
    for callback in result.trainer.callbacks:
        if isinstance(callback, FreezeBackbone):
            # A frozen backbone makes steps cheaper than the plain loop's: compare like for like.
            callback.unfreeze_at_epoch = 0
    result.trainer.fit(result.model, datamodule=result.datamodule)
    return measure(timer.starts, timer.ends, warmup, steps)


def train_batches(datamodule: Any) -> int | None:
    datamodule.setup("fit")
    try:
        return len(datamodule.train_dataloader())
    except TypeError:  # an iterable dataset without a length
        return None


def plan(length: int | None, warmup: int, steps: int) -> tuple[int, int]:
    """(epochs, batches per epoch) that give `warmup + steps` within-epoch intervals."""
    needed = warmup + steps
    longest = needed + 1 if length is None else min(length, needed + 1)
    if longest < 2:
        raise SystemExit(f"the training loader has {length} batch(es); need at least 2 per epoch")
    epochs = math.ceil(needed / (longest - 1))
    # Spread the steps evenly over the epochs rather than running the last one in full.
    return epochs, math.ceil(needed / epochs) + 1


def quiet_lightning() -> None:
    """Keep the output readable: Lightning's info lines and a known data-loader hint."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a zoo config, e.g. configs/<app>.yaml")
    parser.add_argument("--steps", type=int, default=40, help="measured steps per run (40)")
    parser.add_argument("--warmup", type=int, default=5, help="steps dropped first (5)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant, best kept (2)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (2)")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1 or args.threads < 1:
        parser.error("--steps, --repeats and --threads must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    quiet_lightning()
    started = time.perf_counter()
    epochs, batches, runs = compare(args.config, args.steps, args.warmup, args.repeats)
    report(args, epochs, batches, runs, time.perf_counter() - started)


def compare(
    config: str, steps: int, warmup: int, repeats: int, *overrides: str
) -> tuple[int, int, dict[str, list[Timing]]]:
    """Run the three variants `repeats` times: (epochs, batches per epoch, timings by variant)."""
    config = str(Path(config).resolve())
    runs: dict[str, list[Timing]] = {name: [] for name in VARIANTS}
    # Everything `zoo fit` writes (runs/, checkpoints, saved config) lands in a temp dir. Relative
    # paths in the config resolve there too: give data roots as absolute paths.
    with tempfile.TemporaryDirectory(prefix="zoo-overhead-") as tmp:
        home = Path.cwd()
        os.chdir(tmp)
        try:
            epochs = batches = 0
            for repeat in range(repeats):
                # plain and trainer start from identical weights on the same datamodule.
                built = build(config, *overrides)
                if repeat == 0:
                    epochs, batches = plan(train_batches(built.datamodule), warmup, steps)
                initial = copy.deepcopy(built.model)
                seed_everything(0, verbose=False)
                runs["plain"].append(
                    run_plain(built.model, built.datamodule, epochs, batches, warmup, steps)
                )
                seed_everything(0, verbose=False)
                runs["trainer"].append(
                    run_trainer(initial, built.datamodule, epochs, batches, warmup, steps)
                )
                seed_everything(0, verbose=False)
                runs["zoo"].append(run_zoo(config, epochs, batches, warmup, steps, *overrides))
        finally:
            os.chdir(home)
    return epochs, batches, runs


def report(
    args: argparse.Namespace,
    epochs: int,
    batches: int,
    runs: dict[str, list[Timing]],
    seconds: float,
) -> None:
    best = {name: min(timings, key=lambda t: t.median) for name, timings in runs.items()}
    base = best["plain"].median
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print()
    print(
        f"config: {args.config}   steps measured: {args.steps} (warm-up {args.warmup} dropped)"
        f"   torch threads: {torch.get_num_threads()}"
    )
    print(
        f"schedule: {epochs} epoch(s) x {batches} batches; {args.repeats} repeat(s), best median"
        f" kept; load average (1/5/15 min): {load}; wall time {seconds:.0f} s"
    )
    print("per repeat, median ms/step:")
    for name, timings in runs.items():
        print(f"  {name:<8}" + "".join(f"{t.median:10.1f}" for t in timings))
    print()
    print(
        f"{'variant':<10}{'median ms/step':>16}{'mean ms/step':>15}{'ratio to plain':>17}"
        f"{'in-step ms':>13}"
    )
    for name, t in best.items():
        print(
            f"{name:<10}{t.median:>16.1f}{t.mean:>15.1f}{t.median / base:>17.2f}"
            f"{statistics.median(t.inside):>13.1f}"
        )
    print("(in-step: median batch start -> batch end, without fetching the next batch)")
    ratio = best["zoo"].median / base
    goal = getattr(args, "goal", GOAL)
    verdict = "PASS" if ratio <= goal else "over"
    print(f"goal: full zoo <= {goal:.2f}x plain (median): {ratio:.2f}x {verdict}")


if __name__ == "__main__":
    main()
