"""Log the weight update / weight magnitude ratio of optimizer steps: a learning-rate check."""

from __future__ import annotations

import statistics
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch.optim import Optimizer
from typing_extensions import override

from callbacks.media import log_histogram

PREFIX = "update_ratio"


class UpdateRatioMonitor(Callback):
    """Log ||W_after - W_before|| / ||W_before|| across one optimizer step, per parameter tensor.

    CS231n's rule of thumb: the ratio should be about 1e-3; far below means the learning rate is
    too small, far above too large. Every `every_n_steps` optimizer steps (global steps 0, N,
    2N, ...; accumulating micro-batches don't count) the tensors that the optimizer updates are
    copied (float32) just before the step and compared with themselves after it. Logged under
    that global step:

    - `update_ratio/median`: the median ratio over the tracked tensors;
    - `update_ratio/<parameter name>` (e.g. `update_ratio/net.head.1.weight`) for each tensor
      when there are at most `per_layer_max`, else a histogram of log10(ratio) under
      `update_ratio/log10_hist` (via `callbacks.media`).

    Scalars go straight to the trainer's loggers, so `log_every_n_steps` doesn't matter
    (`self.log` would hold an occasional value until the next multiple of `log_every_n_steps`
    and then resend it at every one after); the median is also in `trainer.callback_metrics`.
    A step that changed no weight is not recorded: one the fp16 GradScaler skipped (inf/nan
    gradients), lr = 0, or updates below float32 resolution (ratio under ~1e-7). A median outside
    `band` warns once per direction, on any record: if the LR warms up from ~0, widen the band.

    Args:
        every_n_steps: Record every this many optimizer steps.
        include_bias: Also track 1-d tensors (biases, norm scales); by default only weights
            (`ndim >= 2`) that require grad.
        band: (low, high): warn when the median leaves this range.
        per_layer_max: One scalar per tensor up to this many tensors, else a histogram.
    """

    def __init__(
        self,
        every_n_steps: int = 50,
        include_bias: bool = False,
        band: tuple[float, float] = (1e-4, 1e-2),
        per_layer_max: int = 20,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if len(band) != 2 or not 0 < band[0] < band[1]:
            raise ValueError(f"band must be (low, high) with 0 < low < high, got {band}")
        if per_layer_max < 0:
            raise ValueError(f"per_layer_max must be >= 0, got {per_layer_max}")
        self.every_n_steps = every_n_steps
        self.include_bias = include_bias
        self.band = (float(band[0]), float(band[1]))
        self.per_layer_max = per_layer_max
        self._warned = {"low": False, "high": False}
        self._step = 0
        self._names: list[str] = []
        self._params: list[torch.Tensor] = []
        self._before: list[torch.Tensor] = []

    @override
    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        # Runs once per real optimizer step (after the closure, never on accumulating
        # micro-batches), before the update; global_step counts the steps before this one.
        # A pending snapshot stays: LBFGS runs the closure (and so this hook) several times.
        if self._before or trainer.global_step % self.every_n_steps:
            return
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for name, param in pl_module.named_parameters():
            if (
                id(param) in stepped
                and param.requires_grad
                and param.grad is not None  # no grad: the optimizer leaves it alone
                and (param.ndim >= 2 or self.include_bias)
            ):
                self._names.append(name)
                self._params.append(param)
        self._before = [p.detach().to(torch.float32, copy=True) for p in self._params]
        self._step = trainer.global_step

    @override
    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._before:
            return
        before, params, names = self._before, self._params, self._names
        self._clear()
        with torch.no_grad():
            weight_norms = torch._foreach_norm(before)
            torch._foreach_sub_(before, [p.detach().float() for p in params])  # W_before - W_after
            diff_norms = torch._foreach_norm(before)
            # (2, n): one device-to-host copy for all tensors
            diff, weight = torch.stack([*diff_norms, *weight_norms]).view(2, -1).cpu()
        del before
        if not diff.any():  # the GradScaler skipped this step (inf/nan gradients), or lr = 0
            return
        valid = (weight > 0) & diff.isfinite()  # a zero or diverged tensor has no ratio
        if not valid.any():
            return
        ratios = diff[valid] / weight[valid]
        values = ratios.tolist()
        median = statistics.median(values)
        metrics = {f"{PREFIX}/median": median}
        per_layer = len(names) <= self.per_layer_max
        if per_layer:
            kept = [n for n, ok in zip(names, valid.tolist(), strict=True) if ok]
            metrics.update({f"{PREFIX}/{n}": r for n, r in zip(kept, values, strict=True)})
        pl_module.log(f"{PREFIX}/median", median, on_step=True, on_epoch=False, logger=False)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=self._step)
        if not per_layer:
            log_histogram(trainer, f"{PREFIX}/log10_hist", ratios.log10(), step=self._step)
        self._check_band(median)

    def _check_band(self, median: float) -> None:
        low, high = self.band
        if median < low and not self._warned["low"]:
            self._warned["low"] = True
            rank_zero_warn(
                f"UpdateRatioMonitor: update/weight ratio median {median:.1e} is below "
                f"{low:.1e}: the learning rate is probably too small (raise it)"
            )
        elif median > high and not self._warned["high"]:
            self._warned["high"] = True
            rank_zero_warn(
                f"UpdateRatioMonitor: update/weight ratio median {median:.1e} is above "
                f"{high:.1e}: the learning rate is probably too large (lower it)"
            )

    def _clear(self) -> None:
        self._names, self._params, self._before = [], [], []

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._clear()  # a run that stopped mid-step must not keep a copy of the weights

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"warned": dict(self._warned)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._warned.update(state_dict.get("warned", {}))
