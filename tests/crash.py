"""Crash tests' tools: callbacks that stop `zoo fit` at a step, and the kill that ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class StallAt(Callback):
    """Before training step `step`, write this process's id to `marker` and wait (for SIGKILL)."""

    def __init__(self, step: int, marker: str) -> None:
        self.step = step
        self.marker = marker

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            Path(self.marker).write_text(str(os.getpid()))
            time.sleep(600)


class FailAt(Callback):
    """Before training step `step`, raise (a crash, for tests that stay in one process)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"crash test: stopped before step {self.step}")


def kill_when_stalled(process: subprocess.Popen, marker: Path, timeout: float = 300) -> None:
    """Wait until `process` writes `marker` (it stalls there), then SIGKILL it: it must die."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no {marker} after {timeout} s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
