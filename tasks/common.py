"""What the tasks share: optimizer wiring, classification metrics, the classifier base."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torchmetrics import ClasswiseWrapper, MeanMetric, Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
    MultilabelConfusionMatrix,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelPrecision,
    MultilabelRecall,
)
from typing_extensions import override

from callbacks.media import log_confusion, log_image, log_table
from datamodules.images import eval_transform, load_image

# Checkpoint key for a task's big artifacts (vocabulary, tokenizer, model config): outside
# `hyper_parameters`, which LightningCLI re-validates on `--ckpt_path`, but in the checkpoint.
ARTIFACTS = "artifacts"


def configure_optimizers(
    module: LightningModule,
    optimizer: OptimizerCallable,
    scheduler: LRSchedulerCallable | None,
    monitor: str = "val/loss",
    params: Iterable[Any] | None = None,
) -> Any:
    """Build the injected optimizer and, if given, its scheduler.

    `params` are parameters or param groups; default the module's trainable parameters. A group's
    `lr_scale` multiplies the optimizer's LR for that group (e.g. 0.1 for a pretrained backbone).
    Epoch-based schedulers step once per epoch; `ReduceLROnPlateau` watches `monitor`.
    """
    if params is None:
        params = [p for p in module.parameters() if p.requires_grad]
    opt = optimizer(params)
    for group in opt.param_groups:
        group["lr"] *= group.get("lr_scale", 1.0)
    if scheduler is None:
        return opt
    sched = scheduler(opt)
    config: dict[str, Any] = {"scheduler": sched, "interval": "epoch"}
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        config["monitor"] = monitor
    return {"optimizer": opt, "lr_scheduler": config}


def classification_metrics(
    class_names: Sequence[str], multi_label: bool = False, threshold: float = 0.5
) -> MetricCollection:
    """Headline metrics and per-class precision and recall (`precision_<class>`, ...).

    Single-label: accuracy and macro F1. Multi-label (a label is predicted when its sigmoid
    probability reaches `threshold`): macro F1, micro F1 and exact match (all labels right).
    Clone it per stage with `prefix="val/"` etc.
    """
    n, labels = len(class_names), list(class_names)
    if multi_label:
        metrics = {
            "f1": MultilabelF1Score(n, threshold, average="macro"),
            "f1_micro": MultilabelF1Score(n, threshold, average="micro"),
            "exact_match": MultilabelExactMatch(n, threshold),
            "precision": MultilabelPrecision(n, threshold, average=None),
            "recall": MultilabelRecall(n, threshold, average=None),
        }
    else:
        metrics = {
            "acc": MulticlassAccuracy(n, average="micro"),
            "f1": MulticlassF1Score(n, average="macro"),
            "precision": MulticlassPrecision(n, average=None),
            "recall": MulticlassRecall(n, average=None),
        }
    for name in ("precision", "recall"):
        metrics[name] = ClasswiseWrapper(metrics[name], labels, prefix=f"{name}_")
    return MetricCollection(metrics, compute_groups=False)  # ClasswiseWrapper shares no state


def log_confusion_matrix(
    module: LightningModule,
    matrix: MulticlassConfusionMatrix | MultilabelConfusionMatrix,
    class_names: Sequence[str],
    key: str,
) -> None:
    """Compute (on every rank: it syncs), plot and log the confusion matrix.

    Reset it at epoch start, not here: a reset inside `trainer.validate`'s inference mode would
    leave inference tensors that a later `fit` cannot update in place.
    """
    if module.trainer.sanity_checking:
        return
    values = matrix.compute()
    if not module.trainer.is_global_zero:
        return
    fig, _ = matrix.plot(values, labels=list(class_names))
    fig.set_size_inches(1.0 + 0.7 * len(class_names), 0.8 + 0.7 * len(class_names))
    log_image(module.trainer, key, fig, step=module.current_epoch)
    if isinstance(matrix, MulticlassConfusionMatrix):  # W&B's interactive panel beside the image
        log_confusion(module.trainer, f"{key}_interactive", values, class_names, module.global_step)


def log_loss(module: LightningModule, stage: str, loss: torch.Tensor, batch_size: int) -> None:
    """Log `<stage>/loss`: per step and epoch in training, per epoch otherwise.

    Per-step values are logged without a cross-rank sync (a collective every step is slow).
    Validation and test losses are a torchmetrics `MeanMetric` weighted by batch size, so under
    DDP the epoch value is the mean over every sample, however unevenly the ranks' shares split
    (Lightning's `sync_dist` would average the ranks' means).
    """
    if stage == "train":
        module.log("train/loss", loss, prog_bar=True, on_epoch=True, batch_size=batch_size)
        return
    name = f"{stage}_loss_mean"
    if not hasattr(module, name):  # made on first use, so every task gets it from here
        with torch.inference_mode(False):
            setattr(module, name, MeanMetric().to(module.device))
    mean = getattr(module, name)
    if mean.mean_value.is_inference() and not torch.is_inference_mode_enabled():
        mean.reset()  # last reset inside an earlier `trainer.validate`: its tensors are frozen
    mean.update(loss.detach(), weight=batch_size)
    module.log(f"{stage}/loss", mean, prog_bar=True, on_epoch=True, metric_attribute=name)


def updated_anywhere(module: LightningModule, metrics: Iterable[Metric]) -> bool:
    """Whether any rank updated `metrics` this epoch, so every rank must compute (it syncs).

    Under DDP a rank can see no batch (fewer validation samples than ranks) while the others
    do; if it skipped `compute`, the others would wait for it forever.
    """
    updated = any(metric.update_called for metric in metrics)
    if module.trainer.world_size == 1:
        return updated
    flag = torch.tensor(float(updated), device=module.device)
    return bool(module.trainer.strategy.reduce(flag, reduce_op="sum") > 0)


def log_epoch_metrics(module: LightningModule, metrics: MetricCollection) -> None:
    """Compute (it syncs across ranks) and log an epoch's classification metrics.

    Accuracy and F1 go to the progress bar for validation. Reset happens at the next epoch's
    start (see `log_confusion_matrix`).
    """
    if updated_anywhere(module, metrics.values()):
        values = metrics.compute()  # already global: no sync_dist needed
        heads = ("/acc", "/f1", "/exact_match")
        headline = {k: values.pop(k) for k in list(values) if k.endswith(heads)}
        module.log_dict(headline, prog_bar=metrics.prefix == "val/")
        module.log_dict(values)


def class_weight(
    weights: Sequence[float] | str | None, counts: Sequence[int] | None, num_classes: int
) -> torch.Tensor | None:
    """Cross-entropy class weights: given, "balanced" (inverse frequency of `counts`), or None."""
    if weights is None:
        return None
    if weights == "balanced":
        if not counts or len(counts) != num_classes or min(counts) == 0:
            raise ValueError(
                "class_weights='balanced' needs class_counts with a positive count per class "
                f"(got {counts}); `zoo` links them from the data, in Python pass them."
            )
        counts_t = torch.tensor(counts, dtype=torch.float32)
        return counts_t.sum() / (num_classes * counts_t)
    if len(weights) != num_classes:
        raise ValueError(f"class_weights has {len(weights)} values for {num_classes} classes")
    return torch.tensor(weights, dtype=torch.float32)


class ClassificationTask(LightningModule):
    """A classifier around a network `net`: every classifier of the zoo uses it.

    Single-label: cross-entropy; logs `<stage>/loss`, `<stage>/acc`, `<stage>/f1` (macro),
    per-class precision and recall, and the confusion matrix image at validation and test end.
    Multi-label (`multi_label=True`): BCE with logits on multi-hot labels; `f1` (macro),
    `f1_micro`, `exact_match` and per-class precision/recall at `threshold`, and one 2x2
    confusion matrix per class. Each validation epoch also logs `val/worst_samples`, a table of
    the `worst_samples` validation samples with the highest loss (image or text, true and
    predicted class, the predicted class's probability, the loss), gathered from every rank.
    Image batches are `(images, labels, names)`; text batches are
    dicts with "ids" and "lengths" (a text task overrides `_logits_and_labels`, `forward` and
    `encode`). `predict_step`, `predict_images` and `predict_texts` return one row per sample:
    path or id, predicted class(es), true class(es) when known, one probability per class.
    Subclasses build their network, pass it here and call `save_hyperparameters()`, so the
    checkpoint alone rebuilds the task, its class names and its preprocessing.

    Args:
        net: The network, returning logits.
        class_names: Class names in label order (linked from the datamodule by `zoo`).
        in_channels: Images: 1 for grayscale, 3 for RGB input (linked); None for text.
        image_size: Images: input side (linked); None for text.
        mean: Images: per-channel normalisation mean (linked; one value serves every channel).
        std: Images: per-channel normalisation std (linked).
        class_counts: Training examples per class (linked); used by `class_weights="balanced"`.
        class_weights: Cross-entropy weights per class, or "balanced" (inverse frequency).
        label_smoothing: Cross-entropy label smoothing.
        optimizer: Optimizer factory, chosen in YAML.
        scheduler: Optional LR scheduler factory (stepped per epoch).
        multi_label: Each sample has a set of labels (sigmoid per class) instead of one.
        threshold: Multi-label: a class is predicted when its probability reaches this.
        label_separator: Multi-label: how predicted label sets are joined in prediction rows.
    """

    worst_samples: int = 8  # rows of the `val/worst_samples` table; 0 turns it off

    def __init__(
        self,
        net: nn.Module,
        class_names: Sequence[str],
        in_channels: int | None,
        image_size: int | None,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        class_counts: Sequence[int] | None,
        class_weights: Sequence[float] | Literal["balanced"] | None,
        label_smoothing: float,
        optimizer: OptimizerCallable,
        scheduler: LRSchedulerCallable | None,
        multi_label: bool = False,
        threshold: float = 0.5,
        label_separator: str = "|",
    ) -> None:
        super().__init__()
        self.class_names = list(class_names)
        num_classes = len(self.class_names)
        if num_classes < 2:
            raise ValueError(f"Need at least 2 classes, got class_names={self.class_names}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.net = net
        self.multi_label = multi_label
        self.threshold = threshold
        self.label_separator = label_separator
        if multi_label:
            self.loss_fn: nn.Module = nn.BCEWithLogitsLoss()
            self.val_confusion = MultilabelConfusionMatrix(num_classes, threshold)
            self.test_confusion = MultilabelConfusionMatrix(num_classes, threshold)
        else:
            weight = class_weight(class_weights, class_counts, num_classes)
            self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
            self.val_confusion = MulticlassConfusionMatrix(num_classes)
            self.test_confusion = MulticlassConfusionMatrix(num_classes)
        metrics = classification_metrics(self.class_names, multi_label, threshold)
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.preprocess = eval_transform(image_size, mean, std) if image_size else None
        self.in_channels = in_channels
        self.normalization = (mean, std)
        self._worst: list[tuple[float, Any, str, str, float]] = []

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, num_classes) for preprocessed images (B, C, H, W)."""
        return self.probabilities(self.net(images))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over classes, or (multi-label) a sigmoid per class."""
        return logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)

    @override
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, self.train_metrics, "train")

    @override
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, self.val_metrics, "val", self.val_confusion)

    @override
    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, self.test_metrics, "test", self.test_confusion)

    def _shared_step(
        self,
        batch: Any,
        metrics: MetricCollection,
        stage: str,
        confusion: MulticlassConfusionMatrix | MultilabelConfusionMatrix | None = None,
    ) -> torch.Tensor:
        logits, labels = self._logits_and_labels(batch)
        loss = self.loss_fn(logits, labels)
        log_loss(self, stage, loss, len(labels))
        target = labels.long() if self.multi_label else labels  # multi-hot floats for the loss
        metrics.update(logits, target)
        if confusion is not None:
            confusion.update(logits, target)
        if stage == "val" and self.worst_samples and not self.trainer.sanity_checking:
            self._keep_worst(batch, logits.detach(), labels)
        return loss

    def _keep_worst(self, batch: Any, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep this rank's `worst_samples` highest-loss samples of the epoch so far."""
        if self.multi_label:
            losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1)
        else:
            losses = F.cross_entropy(logits.float(), labels, reduction="none")
        floor = self._worst[-1][0] if len(self._worst) >= self.worst_samples else -1.0
        top = losses.topk(min(self.worst_samples, len(losses)))
        # One transfer to the host per batch, not one per candidate.
        candidates = top.indices.tolist()
        rows = self.probabilities(logits[top.indices].float()).tolist()
        wanted = labels[top.indices].tolist()
        for i, loss, p, label in zip(candidates, top.values.tolist(), rows, wanted, strict=True):
            if loss <= floor:
                break
            if self.multi_label:
                true = self._names(c for c, v in enumerate(label) if v)
                picked = [c for c, v in enumerate(p) if v >= self.threshold]
                predicted, probability = self._names(picked), max(p)
            else:
                top_class = max(range(len(p)), key=p.__getitem__)
                true, predicted = self.class_names[label], self.class_names[top_class]
                probability = p[top_class]
            self._worst.append((loss, self._sample(batch, i), true, predicted, probability))
        self._worst = sorted(self._worst, key=lambda row: -row[0])[: self.worst_samples]

    def _sample(self, batch: Any, i: int) -> Any:
        """Sample `i` of a batch as a person sees it: an image in [0, 1], or the text."""
        if isinstance(batch, dict):
            return self.decode(batch["ids"][i, : batch["lengths"][i]].tolist())
        image = batch[0][i].detach().float().cpu()  # (C, H, W), normalised
        mean, std = self.normalization
        if mean is not None and std is not None:  # one value may serve every channel
            image = image * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
        return image.clamp(0, 1)

    def decode(self, ids: Sequence[int]) -> str:
        """Text tasks: the text of token ids (what the model saw)."""
        raise TypeError(f"{type(self).__name__} does not classify texts.")

    def _log_worst(self) -> None:
        """Log the epoch's highest-loss validation samples from every rank (rank zero writes)."""
        if self.trainer.sanity_checking:  # nothing was kept; every rank skips alike
            return
        rows = self._worst
        if self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        rows = sorted(rows, key=lambda row: -row[0])[: self.worst_samples]
        if rows:
            columns = ["input", "true", "predicted", "probability", "loss"]
            table = [
                [sample, true, pred, round(p, 4), round(loss, 4)]
                for loss, sample, true, pred, p in rows
            ]
            log_table(self.trainer, "val/worst_samples", columns, table)

    def _logits_and_labels(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, classes) and labels (B,) of an image batch `(images, labels, names)`."""
        images, labels, _ = batch
        return self.net(images), labels

    @override
    def on_train_epoch_start(self) -> None:
        self.train_metrics.reset()

    @override
    def on_train_epoch_end(self) -> None:
        log_epoch_metrics(self, self.train_metrics)

    @override
    def on_validation_epoch_start(self) -> None:
        # Reset here, not after compute: a reset inside `trainer.validate`'s inference mode
        # would leave inference tensors that a later `fit` cannot update in place.
        self.val_metrics.reset()
        self.val_confusion.reset()
        self._worst = []

    @override
    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()
        self.test_confusion.reset()

    @override
    def on_validation_epoch_end(self) -> None:
        log_epoch_metrics(self, self.val_metrics)
        log_confusion_matrix(self, self.val_confusion, self.class_names, "val/confusion_matrix")
        self._log_worst()

    @override
    def on_test_epoch_end(self) -> None:
        log_epoch_metrics(self, self.test_metrics)
        log_confusion_matrix(self, self.test_confusion, self.class_names, "test/confusion_matrix")

    @override
    def predict_step(self, batch: Any, batch_idx: int) -> list[dict[str, Any]]:
        """One row per sample: path or id, predicted class(es), true class(es), probabilities.

        Text batches (dicts of raw "text", "id", "label") are tokenised by the task itself.
        """
        if isinstance(batch, dict):
            return self._text_rows(batch["text"], batch["id"], batch["label"])
        images, labels, names = batch
        return self._rows(self(images), names, labels.tolist())

    def _names(self, ids: Sequence[int]) -> str:
        return self.label_separator.join(self.class_names[i] for i in ids)

    def _rows(
        self, probs: torch.Tensor, names: Sequence[str], labels: Sequence[Any], key: str = "path"
    ) -> list[dict[str, Any]]:
        """One row per sample: `key` (its path or id), predicted, true, one probability a class.

        Labels are class ids, or (multi-label) sequences of ids; -1 when unknown.
        """
        rows = []
        for name, label, p in zip(names, labels, probs.tolist(), strict=True):
            if self.multi_label:
                predicted = self._names(i for i, v in enumerate(p) if v >= self.threshold)
            else:
                predicted = self.class_names[max(range(len(p)), key=p.__getitem__)]
            row: dict[str, Any] = {key: name, "predicted": predicted}
            if isinstance(label, int) and label >= 0:
                row["true"] = self.class_names[label]
            elif not isinstance(label, int):  # a multi-label set
                row["true"] = self._names(label)
            row.update({f"prob_{c}": v for c, v in zip(self.class_names, p, strict=True)})
            rows.append(row)
        return rows

    @torch.inference_mode()
    def predict_images(self, paths: Sequence[str | Path]) -> list[dict[str, Any]]:
        """Predict image files with the preprocessing saved in the checkpoint (no datamodule)."""
        if self.preprocess is None:
            raise TypeError(f"{type(self).__name__} does not classify images.")
        batch = torch.stack([self.preprocess(load_image(p, self.in_channels)) for p in paths])
        self.eval()
        probs = self(batch.to(self.device))
        return self._rows(probs, [str(p) for p in paths], [-1] * len(paths))

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Text tasks: tokenise and pad raw texts into "ids" (B, T) and "lengths" (B,)."""
        raise TypeError(f"{type(self).__name__} does not classify texts.")

    def _text_rows(
        self, texts: Sequence[str], ids: Sequence[str], labels: Sequence[Any]
    ) -> list[dict[str, Any]]:
        batch = self.encode(texts)
        probs = self(batch["ids"].to(self.device), batch["lengths"].to(self.device))
        rows = self._rows(probs, ids, labels, key="id")
        for row, text in zip(rows, texts, strict=True):
            row["text"] = text
        return rows

    @torch.inference_mode()
    def predict_texts(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Classify raw texts with the tokenizer saved in the checkpoint (no datamodule)."""
        self.eval()
        return self._text_rows(list(texts), [str(i) for i in range(len(texts))], [-1] * len(texts))

    @override
    def configure_optimizers(self) -> Any:
        return configure_optimizers(self, self.optimizer, self.scheduler)
