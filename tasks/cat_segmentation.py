"""Cat segmentation: a UNet trained with soft Dice loss (optionally + BCE/CE) on class-index masks.

Metrics: foreground Dice and IoU from torchmetrics (mean over the classes other than background).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex
from torchvision.utils import draw_segmentation_masks, make_grid
from typing_extensions import override

from callbacks.media import log_image, log_masks
from datamodules.common import IMAGENET_MEAN, IMAGENET_STD
from datamodules.images import eval_transform, load_image
from datamodules.masks import IGNORE_INDEX, voc_colormap
from tasks.common import configure_optimizers, log_loss, updated_anywhere


class Block(nn.Sequential):
    """(3x3 conv -> BatchNorm -> ReLU) twice; the spatial size is kept."""

    def __init__(self, in_channels: int, features: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, features, 3, padding=1, bias=False),  # BN adds the bias
            nn.BatchNorm2d(features),
            nn.ReLU(inplace=True),
            nn.Conv2d(features, features, 3, padding=1, bias=False),
            nn.BatchNorm2d(features),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """The course's UNet: 4 encoder blocks, a bottleneck, a transposed-conv decoder with skips.

    Each decoder block sees the upsampled features concatenated with the encoder's at that level.

    Returns logits (B, out_channels, H, W). Four poolings halve the sides four times, so inputs
    whose sides are not multiples of 16 are padded (edge replication) and the output cropped back.
    """

    def __init__(
        self, in_channels: int = 3, out_channels: int = 1, init_features: int = 32
    ) -> None:
        super().__init__()
        widths = [init_features * 2**i for i in range(4)]  # f, 2f, 4f, 8f
        self.encoders = nn.ModuleList(
            Block(c_in, c_out)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = Block(widths[-1], widths[-1] * 2)
        self.upconvs = nn.ModuleList(
            nn.ConvTranspose2d(2 * w, w, 2, stride=2) for w in widths[::-1]
        )
        self.decoders = nn.ModuleList(Block(2 * w, w) for w in widths[::-1])
        self.head = nn.Conv2d(init_features, out_channels, 1)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, -width % 16, 0, -height % 16), mode="replicate")
        skips = []
        for encoder in self.encoders:
            x = encoder(x)  # (B, f * 2^i, H / 2^i, W / 2^i)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)  # (B, 16f, H / 16, W / 16)
        for upconv, decoder, skip in zip(self.upconvs, self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat([upconv(x), skip], dim=1))  # upsample x2, then merge the skip
        return self.head(x)[..., :height, :width]


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """`x` in float32, unless it is already wider (float64 for gradient checks)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def soft_dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    smooth: float = 1.0,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """1 - soft Dice, in float32 or wider: probabilities stand in for the predicted mask.

    Dice = (2 |P ∩ G| + smooth) / (|P| + |G| + smooth), summed over the whole batch per class and
    averaged over the foreground classes. One logit channel means binary (sigmoid, class 1 is the
    foreground); C channels mean softmax over C classes (class 0 is background). Pixels whose
    target is `ignore_index` count for neither side. Half-precision logits are promoted to
    float32; float64 stays float64, so `torch.autograd.gradcheck` can check it.
    """
    logits = at_least_float32(logits)
    valid = (target != ignore_index).unsqueeze(1)  # (B, 1, H, W)
    if logits.shape[1] == 1:
        probs, truth = logits.sigmoid(), (target == 1).unsqueeze(1)
    else:
        probs = logits.softmax(dim=1)
        truth = F.one_hot(target.where(valid[:, 0], 0).long(), logits.shape[1])
        truth = truth.permute(0, 3, 1, 2)[:, 1:]  # (B, C - 1, H, W), foreground classes only
        probs = probs[:, 1:]
    probs, truth = probs * valid, truth * valid
    intersection = (probs * truth).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + truth.sum(dim=(0, 2, 3))
    return 1.0 - ((2.0 * intersection + smooth) / (total + smooth)).mean()


class DiceCELoss(nn.Module):
    """`dice_weight` x soft Dice + (1 - `dice_weight`) x BCE (one channel) or cross-entropy.

    The cross-entropy term gives every pixel a gradient from the first step, which Dice alone
    (a ratio of sums) does not; Dice keeps small foregrounds from being ignored.
    """

    def __init__(self, dice_weight: float = 1.0, smooth: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= dice_weight <= 1.0:
            raise ValueError(f"dice_weight must be in [0, 1], got {dice_weight}")
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.dice_weight = dice_weight
        self.smooth = smooth

    @override
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(logits.device.type, enabled=False):  # sums of many pixels: float32
            logits = at_least_float32(logits)
            loss = logits.new_zeros(())
            if self.dice_weight > 0:
                loss = self.dice_weight * soft_dice_loss(logits, target, self.smooth)
            if self.dice_weight < 1:
                loss = loss + (1.0 - self.dice_weight) * _cross_entropy(logits, target)
            return loss


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE (one channel) or cross-entropy over the pixels that are not ignored.

    A masked mean, not boolean indexing: no host-device sync, and 0 when all is ignored.
    """
    valid = target != IGNORE_INDEX
    if logits.shape[1] == 1:
        truth = (target == 1).to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits[:, 0], truth, reduction="none")
    else:
        loss = F.cross_entropy(logits, target.long(), ignore_index=IGNORE_INDEX, reduction="none")
    return (loss * valid).sum() / valid.sum().clamp(min=1)


class CatSegmentationTask(LightningModule):
    """Semantic segmentation with a UNet: binary (cat vs background) or multi-class.

    Two class names give one logit channel (sigmoid, cut at `threshold`); more give one channel
    per class (softmax, argmax). Logs `<stage>/loss`, `<stage>/dice` and `<stage>/iou` (mean over
    the foreground classes; per class as `<stage>/dice_<name>` when there are several) and, at
    each validation end, a few validation images with the true and predicted masks overlaid
    (`val/overlays`). `predict_step` and `predict_images` return one row per image with the mask
    and the overlay as images at the input's original size, and each class's pixel share.

    Args:
        class_names: Class names by mask value, background first (linked from the datamodule).
        in_channels: Input channels (linked).
        image_size: Side the images are resized to (linked).
        mean: Normalisation mean (linked).
        std: Normalisation std (linked).
        init_features: Channels of the first encoder block (the UNet doubles them per level).
        dice_weight: Weight of soft Dice in the loss; the rest is BCE/cross-entropy.
        smooth: Dice smoothing, keeps the ratio defined on empty masks.
        threshold: Binary only: foreground where the sigmoid probability exceeds it.
        num_logged_images: Validation images shown with their masks each epoch (0: none).
        optimizer: Optimizer factory, chosen in YAML.
        scheduler: Optional LR scheduler factory (stepped per epoch).
    """

    def __init__(
        self,
        class_names: Sequence[str] = ("background", "cat"),
        in_channels: int = 3,
        image_size: int = 256,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        init_features: int = 32,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        threshold: float = 0.5,
        num_logged_images: int = 4,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.class_names = list(class_names)
        if len(self.class_names) < 2:
            raise ValueError(f"Need background and at least one class, got {self.class_names}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        num_classes = len(self.class_names)
        self.binary = num_classes == 2
        self.net = UNet(in_channels, 1 if self.binary else num_classes, init_features)
        self.loss_fn = DiceCELoss(dice_weight, smooth)
        # Per-class scores accumulated over all pixels of the epoch; Dice is the pixel F1. The
        # datamodule checked the mask values, so skip torchmetrics' per-step `unique` checks.
        options = {"average": "none", "ignore_index": IGNORE_INDEX, "validate_args": False}
        metrics = MetricCollection(
            {
                "dice": MulticlassF1Score(num_classes, **options),
                "iou": MulticlassJaccardIndex(num_classes, **options),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.preprocess = eval_transform(image_size, mean, std)
        self.palette = voc_colormap(num_classes)
        self._shown: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Probabilities (B, C, H, W) for preprocessed images; C = 1 (foreground) when binary."""
        logits = self.net(images)
        return logits.sigmoid() if self.binary else logits.softmax(dim=1)

    def to_mask(self, probs: torch.Tensor) -> torch.Tensor:
        """Class-index masks (B, H, W) from `forward`'s probabilities."""
        if self.binary:
            return (probs[:, 0] > self.hparams.threshold).long()
        return probs.argmax(dim=1)

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, self.train_metrics, "train")

    @override
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, self.val_metrics, "val")

    @override
    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, self.test_metrics, "test")

    def _shared_step(
        self, batch: dict[str, Any], metrics: MetricCollection, stage: str
    ) -> torch.Tensor:
        images, masks = batch["image"], batch["mask"]  # (B, C, H, W) float, (B, H, W) int64
        logits = self.net(images)
        loss = self.loss_fn(logits, masks)
        log_loss(self, stage, loss, len(images))
        with torch.no_grad():
            predicted = self.to_mask(logits.sigmoid() if self.binary else logits)
        metrics.update(predicted, masks)
        wanted = self.hparams.num_logged_images - sum(len(s[0]) for s in self._shown)
        if stage == "val" and wanted > 0 and not self.trainer.sanity_checking:
            self._shown.append((images[:wanted], masks[:wanted], predicted[:wanted]))
        return loss

    def _log_epoch_metrics(self, metrics: MetricCollection) -> None:
        """Log Dice and IoU (foreground mean, and per class when multi-class); computing syncs."""
        if not updated_anywhere(self, metrics.values()):
            return
        for key, per_class in metrics.compute().items():
            self.log(key, per_class[1:].mean(), prog_bar=metrics.prefix == "val/")
            if not self.binary:
                for name, value in zip(self.class_names[1:], per_class[1:], strict=True):
                    self.log(f"{key}_{name}", value)

    @override
    def on_train_epoch_start(self) -> None:
        self.train_metrics.reset()

    @override
    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics(self.train_metrics)

    @override
    def on_validation_epoch_start(self) -> None:
        # Reset at the start, not after compute: a reset inside `trainer.validate`'s inference
        # mode would leave inference tensors that a later `fit` cannot update in place.
        self.val_metrics.reset()
        self._shown = []

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics(self.val_metrics)
        if self._shown and self.trainer.is_global_zero:
            images, truth, predicted = (
                torch.cat(parts) for parts in zip(*self._shown, strict=True)
            )
            shown = self.denormalize(images)
            tiles = []
            for image, true_mask, mask in zip(shown, truth, predicted, strict=True):
                tiles += [image, self.overlay(image, true_mask), self.overlay(image, mask)]
            # One row per image: the image, the true mask, the prediction.
            log_image(
                self.trainer,
                "val/overlays",
                make_grid(tiles, nrow=3, padding=2),
                self.current_epoch,
            )
            # W&B: each image with prediction and ground truth as layers to toggle.
            labels = {i: name for i, name in enumerate(self.class_names)}
            layers = {"prediction": predicted, "ground_truth": truth}
            log_masks(
                self.trainer,
                "val/masks",
                shown,
                layers,
                {**labels, IGNORE_INDEX: "ignored"},
                self.global_step,
            )
        self._shown = []

    @override
    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    @override
    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics(self.test_metrics)

    def denormalize(self, images: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation: (B, C, H, W) uint8 for display."""
        mean = torch.tensor(self.hparams.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.hparams.std, device=images.device).view(1, -1, 1, 1)
        return ((images * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).cpu()

    def overlay(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The image (3, H, W) uint8 with each foreground class painted in its VOC colour at 30%.

        The course's blend, applied to labelled pixels only, so the background keeps its look.
        """
        mask = mask.cpu()
        classes = range(1, len(self.class_names))
        layers = torch.stack([mask == c for c in classes])  # (C - 1, H, W) bool
        colors = [tuple(int(v) for v in self.palette[c]) for c in classes]
        image = image.expand(3, -1, -1) if image.shape[0] == 1 else image
        return draw_segmentation_masks(image, layers, alpha=0.3, colors=colors)

    @override
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """One row per image: path, mask and overlay (PIL images, original size), class shares."""
        probs = self(batch["image"])
        rows = self._rows(probs, batch["original"], batch["name"])
        if "mask" in batch:  # a labelled split: also each image's Dice at the network's size
            for row, pred, truth in zip(rows, self.to_mask(probs), batch["mask"], strict=True):
                row["dice"] = _image_dice(pred, truth, len(self.class_names))
        return rows

    def _rows(
        self, probs: torch.Tensor, originals: Sequence[torch.Tensor], names: Sequence[str]
    ) -> list[dict[str, Any]]:
        from PIL import Image

        rows = []
        for prob, original, name in zip(probs, originals, names, strict=True):
            # Resize probabilities, not labels, to the original size: smooth edges, no blocks.
            prob = F.interpolate(prob[None].float(), size=original.shape[-2:], mode="bilinear")
            mask = self.to_mask(prob)[0].to(torch.uint8).cpu()
            mask_image = Image.fromarray(mask.numpy(), mode="P")
            mask_image.putpalette(self.palette.reshape(-1).tolist())
            overlay = self.overlay(original.cpu(), mask).permute(1, 2, 0).numpy()
            counts = torch.bincount(mask.flatten().long(), minlength=len(self.class_names))
            row: dict[str, Any] = {"path": name, "mask": mask_image}
            row["overlay"] = Image.fromarray(np.ascontiguousarray(overlay))
            shares = (counts / mask.numel()).tolist()
            row.update({f"share_{c}": s for c, s in zip(self.class_names, shares, strict=True)})
            rows.append(row)
        return rows

    @torch.inference_mode()
    def predict_images(self, paths: Sequence[str | Path]) -> list[dict[str, Any]]:
        """Segment image files with the preprocessing saved in the checkpoint (no datamodule)."""
        self.eval()
        rows = []
        for path in paths:  # one at a time: originals may differ in size
            original = load_image(path, self.hparams.in_channels)
            probs = self(self.preprocess(original)[None].to(self.device))
            rows += self._rows(probs, [original], [str(path)])
        return rows

    @override
    def configure_optimizers(self) -> Any:
        return configure_optimizers(self, self.optimizer, self.scheduler)


def _image_dice(predicted: torch.Tensor, truth: torch.Tensor, num_classes: int) -> float:
    """Foreground Dice of one image (mean over the foreground classes present in either mask)."""
    valid = truth != IGNORE_INDEX
    scores = []
    for c in range(1, num_classes):
        p, t = (predicted == c) & valid, (truth == c) & valid
        total = int(p.sum() + t.sum())
        if total:
            scores.append(2.0 * int((p & t).sum()) / total)
    return sum(scores) / len(scores) if scores else 1.0
