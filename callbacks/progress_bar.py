"""The configs' progress bar: Lightning's rich bar, with only the metrics worth reading."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import RichProgressBar
from typing_extensions import override


class RunProgressBar(RichProgressBar):
    """`RichProgressBar` without Lightning's `v_num` entry.

    The rich bar formats every number with three decimals, so the run version read
    `v_num: 0.000`; the run folder is printed once at the start instead (see `zoo`).
    """

    @override
    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
