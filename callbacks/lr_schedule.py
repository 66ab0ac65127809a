"""Learning-rate schedules set per optimizer step: constant, step, cosine, linear, inverse sqrt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from callbacks.media import log_image

ScheduleName = Literal["constant", "step", "cosine", "linear", "inverse_sqrt"]
PLOT_POINTS = 500  # the planned curve is drawn from at most this many steps


@dataclass(frozen=True)
class Schedule:
    """The closed form of a schedule over optimizer steps `step` = 0, 1, ..., `total_steps` - 1.

    Warmup (steps < W): lr = base * (step + 1) / W. After it, with progress
    p = (step - W) / (total_steps - W) and min = min_lr:
    constant: base; step: base * gamma ** (milestones passed); cosine: min + (base - min) *
    (1 + cos(pi p)) / 2; linear: min + (base - min) * (1 - p); inverse_sqrt: base *
    sqrt(max(W, 1) / (step + 1)).
    """

    name: ScheduleName
    total_steps: int
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()  # in optimizer steps
    gamma: float = 0.1

    def lr(self, step: int, base_lr: float, min_lr: float = 0.0) -> float:
        """Learning rate at optimizer step `step` for a group whose base LR is `base_lr`."""
        warmup = self.warmup_steps
        if step < warmup:
            return base_lr * (step + 1) / warmup
        if self.name == "constant":
            return base_lr
        if self.name == "step":
            return base_lr * self.gamma ** sum(step >= m for m in self.milestones)
        if self.name == "inverse_sqrt":
            return base_lr * math.sqrt(max(warmup, 1) / (step + 1))
        progress = min(1.0, (step - warmup) / max(1, self.total_steps - warmup))
        if self.name == "cosine":
            return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return min_lr + (base_lr - min_lr) * (1.0 - progress)  # linear


class LRSchedule(Callback):
    """Set the LR of every optimizer param group at each optimizer step from a `Schedule`.

    Logs `lr/<group>` every step (group name from the param group's "name", else `group<i>`),
    and at fit start the planned curve as the image `lr/schedule`. Each group keeps its own base
    LR (a lower backbone LR stays proportionally lower; `min_lr` is for the first group and scaled
    for the others). Param groups added later (e.g. on unfreezing) start from their LR when added.

    Use this or a task's `scheduler` (a torch `LRScheduler` injected from YAML), not both: this one
    is step-based with warmup and resumes mid-curve; torch schedulers are per epoch and cover
    anything else (e.g. `ReduceLROnPlateau`).

    Args:
        schedule: Shape of the curve after warmup.
        warmup_steps: Optimizer steps of linear warmup from ~0 to the base LR.
        warmup_fraction: Warmup as a share of the total steps instead (BERT fine-tuning: 0.1);
            used when `warmup_steps` is 0.
        milestones: For "step": where the LR is multiplied by `gamma`.
        milestone_unit: Whether `milestones` count epochs (ResNet: 30, 60, 90) or optimizer steps.
        gamma: Factor applied at each milestone.
        min_lr: Final LR of "cosine" and "linear" (first param group).
        total_steps: Length of the schedule; default the trainer's estimated optimizer steps.
        plot: Log the planned curve at fit start.
    """

    def __init__(
        self,
        schedule: ScheduleName = "cosine",
        warmup_steps: int = 0,
        warmup_fraction: float = 0.0,
        milestones: Sequence[int] = (30, 60, 90),
        milestone_unit: Literal["epoch", "step"] = "epoch",
        gamma: float = 0.1,
        min_lr: float = 0.0,
        total_steps: int | None = None,
        plot: bool = True,
    ) -> None:
        if schedule not in ("constant", "step", "cosine", "linear", "inverse_sqrt"):
            raise ValueError(
                f"schedule must be one of constant/step/cosine/linear/inverse_sqrt, "
                f"got {schedule!r}"
            )
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        if min_lr < 0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr}")
        if total_steps is not None and total_steps <= warmup_steps:
            raise ValueError(
                f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})"
            )
        self.schedule_name = schedule
        self.warmup_steps = warmup_steps
        self.warmup_fraction = warmup_fraction
        self.milestones = tuple(sorted(milestones))
        self.milestone_unit = milestone_unit
        self.gamma = gamma
        self.min_lr = min_lr
        self.total_steps = total_steps
        self.plot = plot
        self.base_lrs: list[list[float]] = []  # per optimizer, per param group; saved for resume
        self.schedule: Schedule | None = None

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            rank_zero_warn(
                "LRSchedule and the task's `scheduler` both set the learning rate; "
                "the LR logged under lr/ is LRSchedule's. Remove one of them."
            )
        total = self.total_steps or trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ValueError(
                "LRSchedule needs a finite schedule: set trainer max_epochs/max_steps "
                "or LRSchedule(total_steps=...)."
            )
        milestones = self.milestones
        if self.milestone_unit == "epoch":
            per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
            milestones = tuple(m * per_epoch for m in milestones)
        warmup = self.warmup_steps or round(self.warmup_fraction * total)
        self.schedule = Schedule(self.schedule_name, int(total), warmup, milestones, self.gamma)
        if not self.base_lrs:  # fresh run; on resume they come from the checkpoint
            self.base_lrs = [[g["lr"] for g in opt.param_groups] for opt in trainer.optimizers]
        self._apply(trainer, pl_module, log=False)
        if self.plot:
            self._plot(trainer)

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._apply(trainer, pl_module, log=True)

    def _apply(self, trainer: Trainer, pl_module: LightningModule, log: bool) -> None:
        step = trainer.global_step  # counts optimizer steps, so accumulation is handled
        for opt, bases in zip(trainer.optimizers, self.base_lrs, strict=True):
            bases.extend(g["lr"] for g in opt.param_groups[len(bases) :])  # groups added later
            for i, (group, base) in enumerate(zip(opt.param_groups, bases, strict=True)):
                group["lr"] = self.schedule.lr(step, base, self._min_lr(base))
                if log:
                    name = group.get("name") or f"group{i}"
                    pl_module.log(f"lr/{name}", group["lr"], on_step=True, on_epoch=False)

    def _min_lr(self, base: float) -> float:
        first = self.base_lrs[0][0]
        return self.min_lr * base / first if first > 0 else 0.0

    def _plot(self, trainer: Trainer) -> None:
        from matplotlib.figure import Figure

        total = self.schedule.total_steps
        steps = sorted({round(i * (total - 1) / (PLOT_POINTS - 1)) for i in range(PLOT_POINTS)})
        fig = Figure(figsize=(5, 3))
        ax = fig.add_subplot()
        for opt, bases in zip(trainer.optimizers, self.base_lrs, strict=True):
            for i, (group, base) in enumerate(zip(opt.param_groups, bases, strict=True)):
                curve = [self.schedule.lr(s, base, self._min_lr(base)) for s in steps]
                ax.plot(steps, curve, label=group.get("name") or f"group{i}")
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("learning rate")
        ax.set_title(f"planned LR: {self.schedule_name}, warmup {self.schedule.warmup_steps}")
        if sum(len(b) for b in self.base_lrs) > 1:
            ax.legend()
        fig.tight_layout()
        log_image(trainer, "lr/schedule", fig, step=0)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": self.base_lrs}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_lrs = [list(b) for b in state_dict["base_lrs"]]
