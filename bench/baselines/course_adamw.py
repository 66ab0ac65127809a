"""The course's AdamW for BERT and BART: no weight decay on parameters whose name matches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def course_adamw(
    model: nn.Module, no_decay: Sequence[str], weight_decay: float, lr: float
) -> torch.optim.AdamW:
    """AdamW (eps 1e-8) with `weight_decay` on all but the parameters named like `no_decay`."""
    params = list(model.named_parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for n, p in params if not any(nd in n for nd in no_decay)],
             "weight_decay": weight_decay},
            {"params": [p for n, p in params if any(nd in n for nd in no_decay)],
             "weight_decay": 0.0},
        ],
        lr=lr,
        eps=1e-8,
    )  # fmt: skip
