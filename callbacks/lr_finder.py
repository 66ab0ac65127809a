"""LR range test: Lightning's `LearningRateFinder`, reporting its curve and suggestion."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateFinder
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from callbacks.media import log_image


class LRFinder(LearningRateFinder):
    """Sweep the LR exponentially before training and report what it suggests.

    Logs the loss-vs-LR curve as the image `lr_find/curve` and prints the suggested LR (steepest
    descent of the loss). Our tasks take the LR inside the injected optimizer, so nothing is
    changed for you: put the suggestion into the config's `optimizer.init_args.lr`. Training
    then continues with the configured LR; stop it with Ctrl-C if you only wanted the sweep.

    Args:
        min_lr: Start of the sweep.
        max_lr: End of the sweep.
        num_training_steps: Steps of the sweep.
    """

    def __init__(
        self, min_lr: float = 1e-6, max_lr: float = 1.0, num_training_steps: int = 100
    ) -> None:
        super().__init__(
            min_lr=min_lr, max_lr=max_lr, num_training_steps=num_training_steps, update_attr=False
        )

    @override
    def lr_find(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().lr_find(trainer, pl_module)
        if self.optimal_lr is None or not trainer.is_global_zero:
            return
        suggestion = self.optimal_lr.suggestion()
        figure = self.optimal_lr.plot(suggest=True, show=False)
        log_image(trainer, "lr_find/curve", figure, step=0)
        if suggestion is None:
            rank_zero_info("LR range test: no suggestion (too few steps or a flat loss curve).")
        else:
            rank_zero_info(
                f"LR range test suggests lr = {suggestion:.2e}: set it as "
                "model.init_args.optimizer.init_args.lr."
            )
