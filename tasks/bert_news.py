"""News classification: any Hugging Face encoder (BERT, ...) fine-tuned, single- or multi-label.

Cross-entropy (single-label) or BCE with logits (multi-label); metrics, confusion matrices and
prediction rows are the shared `ClassificationTask`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from typing_extensions import override

from datamodules.demo.headlines import TOPICS
from datamodules.subwords import train_tokenizer
from datamodules.tokens import pad_batch
from tasks.common import ClassificationTask, configure_optimizers
from tasks.hf import export, from_pretrained, load_artifacts, parameter_groups, save_artifacts


class BertNewsTask(ClassificationTask):
    """Fine-tune `AutoModelForSequenceClassification` on labelled texts.

    With `pretrained` (a hub name such as `bert-base-multilingual-cased`, the course's, or a
    `save_pretrained` folder) its weights are loaded and a new head of `len(class_names)` outputs
    is added; without, a small BERT is built from scratch (the demo) with the sizes below. The
    model config and tokenizer travel in the checkpoint (as artifacts, not hyperparameters), so
    `load_from_checkpoint(path)` needs neither the data nor the network; `save_pretrained(dir)`
    (or `zoo export CKPT DIR`) writes a folder for `transformers.pipeline`.

    Args:
        pretrained: Hub name or local folder of the model to fine-tune (linked from the
            datamodule, which loads its tokenizer); None to build a small BERT from scratch.
        tokenizer: The fast tokenizer (linked from the datamodule). None only when a checkpoint
            is loaded next: it brings its own.
        class_names: Class names in label order (linked).
        multi_label: Each text has a set of labels (linked).
        threshold: Multi-label decision threshold; can be changed for `zoo predict`.
        max_length: Texts are cut to this many tokens (linked); at most the model's positions.
        hidden_size: From scratch: hidden size (a multiple of `num_heads`).
        num_layers: From scratch: transformer layers.
        num_heads: From scratch: attention heads.
        dropout: From scratch: hidden and attention dropout.
        label_smoothing: Single-label cross-entropy label smoothing.
        layer_lr_decay: Layer-wise LR decay (e.g. 0.9): lower layers learn slower; None for off.
        gradient_checkpointing: Recompute activations in the backward pass (less memory, one
            more forward pass of compute); for long texts or big models.
        optimizer: Optimizer factory, chosen in YAML (AdamW; its `weight_decay` applies to all
            but biases and normalisation weights).
        scheduler: Optional LR scheduler factory (per epoch); `LRSchedule` gives per-step
            warmup and decay.
    """

    def __init__(
        self,
        pretrained: str | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        class_names: Sequence[str] = TOPICS,
        multi_label: bool = False,
        threshold: float = 0.5,
        max_length: int = 128,
        hidden_size: int = 128,
        num_layers: int = 2,
        num_heads: int = 2,
        dropout: float = 0.1,
        label_smoothing: float = 0.0,
        layer_lr_decay: float | None = None,
        gradient_checkpointing: bool = False,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        if tokenizer is None:  # a placeholder until `on_load_checkpoint` installs the saved one
            tokenizer = train_tokenizer(["a"], 16)
        labels = {
            "num_labels": len(class_names),
            "id2label": dict(enumerate(class_names)),
            "label2id": {name: i for i, name in enumerate(class_names)},
            "problem_type": (
                "multi_label_classification" if multi_label else "single_label_classification"
            ),
        }
        if pretrained:
            net = from_pretrained(
                AutoModelForSequenceClassification,
                pretrained,
                ignore_mismatched_sizes=True,  # a new head when the saved one has other classes
                **labels,
            )
        else:
            config = BertConfig(
                vocab_size=len(tokenizer),
                hidden_size=hidden_size,
                num_hidden_layers=num_layers,
                num_attention_heads=num_heads,
                intermediate_size=4 * hidden_size,
                hidden_dropout_prob=dropout,
                attention_probs_dropout_prob=dropout,
                max_position_embeddings=max_length,
                pad_token_id=tokenizer.pad_token_id or 0,
                **labels,
            )
            net = AutoModelForSequenceClassification.from_config(config)
        no_images = (None, None, None, None, None, None)
        super().__init__(
            net,
            class_names,
            *no_images,
            label_smoothing,
            optimizer,
            scheduler,
            multi_label=multi_label,
            threshold=threshold,
        )
        self.save_hyperparameters(ignore=["tokenizer", "optimizer", "scheduler"])
        self.tokenizer = tokenizer
        self._check_length(max_length)
        if gradient_checkpointing:
            self.net.gradient_checkpointing_enable()

    def _check_length(self, max_length: int) -> None:
        limit = getattr(self.net.config, "max_position_embeddings", None)
        if limit is not None and max_length > limit:
            raise ValueError(
                f"max_length {max_length} exceeds the {limit} positions of the model "
                f"({self.hparams.pretrained or 'from scratch'}). Set --data.init_args.max_length "
                f"{limit} or less."
            )

    @override
    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, classes) for padded ids (B, T) and their lengths (B,)."""
        return self.probabilities(self._logits(ids, lengths))

    def _logits(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        mask = (positions[None, :] < lengths[:, None].to(ids.device)).long()  # (B, T)
        return self.net(input_ids=ids, attention_mask=mask).logits  # (B, classes)

    @override
    def _logits_and_labels(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._logits(batch["ids"], batch["lengths"]), batch["label"]

    @override
    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise, cut to `max_length` and pad raw texts with this model's tokenizer."""
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.hparams.max_length)
        samples = [(torch.tensor(ids), -1) for ids in encoded["input_ids"]]
        return pad_batch(samples, pad_id=self.tokenizer.pad_token_id or 0)

    @override
    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids, as the model saw it (cut to `max_length`)."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def classify(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Classify raw texts: one row each (id, predicted label(s), probabilities, text)."""
        return self.predict_texts(texts)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a Hugging Face folder: model, config (with label names), tokenizer.

        `transformers.pipeline("text-classification", model=folder)` loads it.
        """
        return export(self.net, self.tokenizer, folder, self.hparams.max_length)

    @override
    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.net, self.hparams.layer_lr_decay)
        return configure_optimizers(self, self.optimizer, self.scheduler, params=groups)

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        save_artifacts(checkpoint, self, self.net, self.tokenizer, self.hparams.pretrained)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The task was built from its hyperparameters alone: install the saved tokenizer and a
        # model of the saved config (random weights: the checkpoint's replace them next).
        config, self.tokenizer = load_artifacts(checkpoint)
        net: PreTrainedModel = AutoModelForSequenceClassification.from_config(config)
        if self.hparams.gradient_checkpointing:
            net.gradient_checkpointing_enable()
        self.net = net.to(self.device).train(self.training)
