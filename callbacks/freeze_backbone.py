"""Fine-tuning schedule: train with the backbone frozen for some epochs, then unfreeze it."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from typing_extensions import override


class FreezeBackbone(Callback):
    """Freeze `pl_module.<module>` for the first `unfreeze_at_epoch` epochs, then train it.

    At every train-epoch start, `requires_grad` of the backbone's parameters is set from the
    current epoch, so a run resumed after the unfreeze epoch keeps training the backbone
    (Lightning's `BackboneFinetuning` re-freezes on resume and unfreezes only *at* that epoch).
    The task keeps
    the backbone's parameters in its optimizer from the start, in their own param group with a
    lower LR: no param groups are added mid-run, so LR schedules see every group from step 0.
    While frozen, BatchNorm layers of the backbone stay in eval mode (their running statistics
    are kept) unless `train_bn`. Logs one info line when the backbone is unfrozen.

    Under DDP the frozen parameters get no gradients, so DDP must look for unused parameters:
    with plain `strategy: ddp` it is switched on at setup, before DDP wraps the model, and one
    info line says so (`ddp_find_unused_parameters_true` does the same explicitly).

    Args:
        unfreeze_at_epoch: First epoch (0-based) in which the backbone trains.
        module: Attribute of the task that holds the backbone.
        train_bn: Keep the frozen backbone's BatchNorm layers in train mode.
    """

    def __init__(
        self, unfreeze_at_epoch: int = 1, module: str = "backbone", train_bn: bool = False
    ) -> None:
        if unfreeze_at_epoch < 0:
            raise ValueError(f"unfreeze_at_epoch must be >= 0, got {unfreeze_at_epoch}")
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.module = module
        self.train_bn = train_bn

    def _backbone(self, pl_module: LightningModule) -> nn.Module:
        backbone = getattr(pl_module, self.module, None)
        if not isinstance(backbone, nn.Module):
            raise ValueError(
                f"FreezeBackbone: {type(pl_module).__name__} has no module attribute "
                f"{self.module!r}; set `module` to the attribute that holds the backbone."
            )
        return backbone

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._backbone(pl_module)
        strategy = trainer.strategy
        if stage != "fit" or self.unfreeze_at_epoch == 0 or not isinstance(strategy, DDPStrategy):
            return
        # DDPStrategy passes these to DistributedDataParallel when it wraps the model, which
        # happens after the setup hooks.
        options = strategy._ddp_kwargs
        if not options.get("find_unused_parameters", False):
            options["find_unused_parameters"] = True
            rank_zero_info(
                "FreezeBackbone: DDP will find unused parameters (the frozen backbone gets no "
                "gradients); `strategy: ddp_find_unused_parameters_true` says so explicitly."
            )

    @override
    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        backbone = self._backbone(pl_module)
        trainable = trainer.current_epoch >= self.unfreeze_at_epoch
        for parameter in backbone.parameters():
            parameter.requires_grad_(trainable)
        for layer in backbone.modules():
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                # Lightning does not call train() per epoch: restore it once unfrozen.
                layer.train(trainable or self.train_bn)
        if trainable and trainer.current_epoch == self.unfreeze_at_epoch > 0:
            rank_zero_info(
                f"FreezeBackbone: training the backbone from epoch {self.unfreeze_at_epoch}"
            )
