"""Logo classification: torchvision EfficientNet fine-tuned (frozen backbone first), cross-entropy.

Metrics: accuracy, macro F1, per-class precision and recall, confusion matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from typing_extensions import override

from datamodules.common import IMAGENET_MEAN, IMAGENET_STD
from tasks.common import ClassificationTask, configure_optimizers

ModelName = Literal[
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7",
    "efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l",
]  # fmt: skip


def efficientnet(name: str, num_classes: int, pretrained: bool | str = False) -> nn.Module:
    """A torchvision EfficientNet whose last layer predicts `num_classes`.

    `pretrained`: True loads torchvision's ImageNet weights through its weights API (from the
    torch hub cache, downloading if needed); a path loads a state dict saved from the same
    architecture (its classifier is replaced anyway); False starts from random weights.
    """
    from torchvision import models

    if pretrained is True:
        weights = models.get_model_weights(name).DEFAULT
        try:
            net = models.get_model(name, weights=weights)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
            raise OSError(
                f"Could not load ImageNet weights for {name}: {error}. Offline? Download "
                f"{weights.url} to {cache} (or set TORCH_HOME), point `pretrained` at a local "
                f"state-dict file, or set `pretrained: false`."
            ) from error
    else:
        net = models.get_model(name, weights=None)
        if isinstance(pretrained, str) and pretrained:
            state = torch.load(Path(pretrained).expanduser(), map_location="cpu", weights_only=True)
            body = {k: v for k, v in state.items() if not k.startswith("classifier.")}
            try:
                missing, unexpected = net.load_state_dict(body, strict=False)
            except RuntimeError as error:  # same names, other shapes
                missing, unexpected = [str(error).splitlines()[1].strip()], []
            if unexpected or any(not k.startswith("classifier.") for k in missing):
                raise ValueError(
                    f"{pretrained} is not a {name} state dict (missing or mismatched: "
                    f"{missing[:3]}, unexpected: {unexpected[:3]})."
                )
    head = net.classifier[-1]
    net.classifier[-1] = nn.Linear(head.in_features, num_classes)
    return net


class LogoTask(ClassificationTask):
    """Classify images as containing a logo or not (any number of classes) with EfficientNet.

    The network's `features` are the `backbone` (frozen at first by the `FreezeBackbone`
    callback), its `classifier` the head. The backbone trains at `backbone_lr_ratio` times the
    optimizer's LR, in its own param group named "backbone" (the head's is "head").

    The other arguments are `ClassificationTask`'s (their help comes from there).

    Args:
        mean: Normalisation mean (linked: ImageNet, or 0.5 for the advprop [-1, 1] scaling).
        model_name: torchvision EfficientNet variant.
        pretrained: True for torchvision's ImageNet weights, a path to a local state dict, or
            False for random initialisation.
        backbone_lr_ratio: Backbone LR relative to the head's.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        image_size: int = 224,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        class_counts: Sequence[int] | None = None,
        model_name: ModelName = "efficientnet_b0",
        pretrained: bool | str = False,
        backbone_lr_ratio: float = 0.1,
        class_weights: Sequence[float] | Literal["balanced"] | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        if not 0.0 <= backbone_lr_ratio <= 1.0:
            raise ValueError(f"backbone_lr_ratio must be in [0, 1], got {backbone_lr_ratio}")
        net = efficientnet(model_name, len(class_names), pretrained)
        facts = (class_names, 3, image_size, mean, std, class_counts)  # always RGB
        super().__init__(net, *facts, class_weights, label_smoothing, optimizer, scheduler)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])

    @property
    def backbone(self) -> nn.Module:
        """The pretrained feature extractor (frozen first, then fine-tuned at a lower LR)."""
        return self.net.features

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The weights are in the checkpoint: loading it must not fetch ImageNet weights again.
        checkpoint["hyper_parameters"]["pretrained"] = False

    @override
    def configure_optimizers(self) -> Any:
        # Ordered lists, never sets: optimizer state is restored by position on resume.
        backbone = list(self.backbone.parameters())
        in_backbone = {id(p) for p in backbone}
        groups = [
            {"params": backbone, "lr_scale": self.hparams.backbone_lr_ratio, "name": "backbone"},
            {"params": [p for p in self.parameters() if id(p) not in in_backbone], "name": "head"},
        ]
        return configure_optimizers(self, self.optimizer, self.scheduler, params=groups)
