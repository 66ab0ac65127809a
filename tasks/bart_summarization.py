"""Summarization: BART (any Hugging Face seq2seq model) fine-tuned; beam search; ROUGE.

Teacher-forced cross-entropy (optionally label-smoothed) on every batch; generation with one
`GenerationConfig`, shared by validation, test, `predict` and `summarize()`; ROUGE-1/2/L/Lsum.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanMetric
from transformers import (
    AutoModelForSeq2SeqLM,
    BartConfig,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from typing_extensions import override

from callbacks.media import log_table
from datamodules.subwords import train_tokenizer
from datamodules.tokens import LABEL_PAD, pad_batch
from tasks.common import ARTIFACTS, configure_optimizers, log_loss, updated_anywhere
from tasks.hf import export, from_pretrained, load_artifacts, parameter_groups, save_artifacts
from tasks.rouge import ROUGE_KEYS, pair_scores, rouge_metric


class BartSummarizationTask(LightningModule):
    """Fine-tune `AutoModelForSeq2SeqLM` (BART) to write a summary of a document.

    With `pretrained` (`facebook/bart-base`, `facebook/bart-large-cnn` as in the course, or a
    `save_pretrained` folder) its weights are loaded; without, a small BART is built from scratch
    (the demo). Generation settings live in one `GenerationConfig` (`self.generation_config`,
    also the model's own, so an export carries it), used by every path that generates. The model
    config and tokenizer travel in the checkpoint, so `load_from_checkpoint(path)` needs neither
    the data nor the network; `save_pretrained(dir)` (or `zoo export CKPT DIR`) writes a folder
    for `AutoModelForSeq2SeqLM.from_pretrained(dir).generate(...)`.

    Logs `<stage>/loss` (teacher-forced, every batch) and, from generating on the first
    `generate_val_batches` batches, `val/rouge1`, `val/rouge2`, `val/rougeL`, `val/rougeLsum`
    (F-measures) and `val/gen_len` (mean generated tokens); a table of examples each epoch.

    Args:
        pretrained: Hub name or local folder of the model to fine-tune (linked from the
            datamodule, which loads its tokenizer); None for a small BART from scratch.
        tokenizer: The fast tokenizer (linked). None only when a checkpoint is loaded next.
        max_source_length: Documents are cut to this many tokens (linked).
        max_target_length: Summaries are cut to this many tokens (linked); the default
            `max_new_tokens`.
        d_model: From scratch: model width.
        num_layers: From scratch: encoder and decoder layers each.
        num_heads: From scratch: attention heads.
        dropout: From scratch: dropout.
        label_smoothing: Label smoothing of the cross-entropy.
        num_beams: Beam search width.
        max_new_tokens: Longest summary generated; None: `max_target_length`.
        min_new_tokens: Shortest summary generated.
        length_penalty: Beam score exponent on length (> 1 favours longer summaries).
        no_repeat_ngram_size: No n-gram of this size twice in a summary (0: off).
        early_stopping: Stop beam search when `num_beams` finished candidates exist.
        generate_val_batches: Validation/test batches that generate (for ROUGE); the loss uses
            all. None: all.
        log_examples: (document, reference, generated) rows in each epoch's example table.
        optimizer: Optimizer factory, chosen in YAML (AdamW; no decay on biases and norms).
        scheduler: Optional LR scheduler factory (per epoch); `LRSchedule` gives per-step
            warmup and decay.
    """

    prediction_file = "summaries.jsonl"

    def __init__(
        self,
        pretrained: str | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        max_source_length: int = 1024,
        max_target_length: int = 128,
        d_model: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        dropout: float = 0.1,
        label_smoothing: float = 0.0,
        num_beams: int = 4,
        max_new_tokens: int | None = None,
        min_new_tokens: int = 0,
        length_penalty: float = 1.0,
        no_repeat_ngram_size: int = 3,
        early_stopping: bool = True,
        generate_val_batches: int | None = 4,
        log_examples: int = 4,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer", "optimizer", "scheduler"])
        if tokenizer is None:  # a placeholder until `on_load_checkpoint` installs the saved one
            tokenizer = train_tokenizer(["a"], 300, "byte_bpe")
        self.tokenizer = tokenizer
        if pretrained:
            self.net = from_pretrained(AutoModelForSeq2SeqLM, pretrained)
        else:
            self.net = AutoModelForSeq2SeqLM.from_config(self._scratch_config())
        limit = getattr(self.net.config, "max_position_embeddings", None)
        if limit is not None and max(max_source_length, max_target_length) > limit:
            raise ValueError(
                f"max_source_length {max_source_length} / max_target_length {max_target_length} "
                f"exceed the {limit} positions of the model ({pretrained or 'from scratch'}). Set "
                f"--data.init_args.max_source_length {limit} or less."
            )
        self._set_generation_config()
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.val_rouge, self.test_rouge = rouge_metric(), rouge_metric()
        self.val_gen_len, self.test_gen_len = MeanMetric(), MeanMetric()
        self._examples: list[list[str]] = []

    def _scratch_config(self) -> BartConfig:
        hp, tokenizer = self.hparams, self.tokenizer
        return BartConfig(
            vocab_size=len(tokenizer),
            d_model=hp.d_model,
            encoder_layers=hp.num_layers,
            decoder_layers=hp.num_layers,
            encoder_attention_heads=hp.num_heads,
            decoder_attention_heads=hp.num_heads,
            encoder_ffn_dim=4 * hp.d_model,
            decoder_ffn_dim=4 * hp.d_model,
            dropout=hp.dropout,
            max_position_embeddings=max(hp.max_source_length, hp.max_target_length),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,  # BART starts decoding from </s>
            forced_eos_token_id=tokenizer.eos_token_id,
        )

    def _set_generation_config(self) -> None:
        """The one `GenerationConfig`: the model's token ids plus this task's settings."""
        hp = self.hparams
        config: GenerationConfig = copy.deepcopy(self.net.generation_config)
        config.update(
            num_beams=hp.num_beams,
            max_new_tokens=hp.max_new_tokens or hp.max_target_length,
            min_new_tokens=hp.min_new_tokens,
            length_penalty=hp.length_penalty,
            no_repeat_ngram_size=hp.no_repeat_ngram_size,
            early_stopping=hp.early_stopping,
            max_length=None,  # max_new_tokens decides
            min_length=None,
        )
        config.validate()
        self.generation_config = config
        self.net.generation_config = config  # what an export saves (generation_config.json)

    @override
    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Generated token ids (B, T') for padded document ids (B, S) and their lengths (B,)."""
        return self.generate(ids, lengths)

    def generate(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Beam search with `self.generation_config`: the only place the zoo generates."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        mask = (positions[None, :] < lengths[:, None].to(ids.device)).long()  # (B, S)
        return self.net.generate(
            input_ids=ids, attention_mask=mask, generation_config=self.generation_config
        )

    @override
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, batch_idx, "train")

    @override
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, batch_idx, "val")

    @override
    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, batch_idx, "test")

    def _shared_step(self, batch: dict[str, torch.Tensor], batch_idx: int, stage: str) -> Any:
        ids, lengths, labels = batch["ids"], batch["lengths"], batch["labels"]
        positions = torch.arange(ids.shape[1], device=ids.device)
        mask = (positions[None, :] < lengths[:, None]).long()
        # Passing labels lets the model build its decoder inputs (its own shift right).
        logits = self.net(input_ids=ids, attention_mask=mask, labels=labels).logits  # (B, T, V)
        loss = nn.functional.cross_entropy(
            logits.flatten(0, 1),
            labels.flatten(),
            ignore_index=LABEL_PAD,
            label_smoothing=self.hparams.label_smoothing,
        )
        log_loss(self, stage, loss, len(ids))
        limit = self.hparams.generate_val_batches
        if stage != "train" and (limit is None or batch_idx < limit):
            self._score(ids, lengths, labels, stage)
        return loss

    def _score(
        self, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, stage: str
    ) -> None:
        generated = self.generate(ids, lengths)
        summaries = self._decode(generated)
        pad = self.tokenizer.pad_token_id
        references = self._decode(labels.masked_fill(labels == LABEL_PAD, pad))
        rouge = self.val_rouge if stage == "val" else self.test_rouge
        gen_len = self.val_gen_len if stage == "val" else self.test_gen_len
        rouge.update(summaries, references)
        gen_len.update((generated != self.tokenizer.pad_token_id).sum(dim=1).float() - 1)
        missing = self.hparams.log_examples - len(self._examples)
        if missing > 0:
            documents = self._decode(ids)
            for row in list(zip(documents, references, summaries, strict=True))[:missing]:
                self._examples.append([*row, *pair_scores(row[2], row[1]).values()])

    def _decode(self, ids: torch.Tensor) -> list[str]:
        # Byte-level BPE decodes a leading space ("Ġ"): strip, as HF's summarization scripts do.
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    @override
    def on_validation_epoch_start(self) -> None:
        self.val_rouge.reset()
        self.val_gen_len.reset()
        self._examples = []

    @override
    def on_test_epoch_start(self) -> None:
        self.test_rouge.reset()
        self.test_gen_len.reset()
        self._examples = []

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_generation("val", self.val_rouge, self.val_gen_len)

    @override
    def on_test_epoch_end(self) -> None:
        self._log_generation("test", self.test_rouge, self.test_gen_len)

    def _log_generation(self, stage: str, rouge: Any, gen_len: MeanMetric) -> None:
        if not updated_anywhere(self, [gen_len]):  # generate_val_batches = 0
            return
        scores = rouge.compute()  # synced across ranks by torchmetrics
        values = {f"{stage}/{key}": scores[f"{key}_fmeasure"] for key in ROUGE_KEYS}
        values[f"{stage}/gen_len"] = gen_len.compute()
        self.log(f"{stage}/rouge1", values.pop(f"{stage}/rouge1"), prog_bar=True)
        self.log_dict(values)
        if self._examples and not self.trainer.sanity_checking:
            columns = ["document", "reference", "generated", *ROUGE_KEYS]
            key = f"{stage}/examples_epoch{self.current_epoch:03d}"
            log_table(self.trainer, key, columns, self._examples)

    @override
    def predict_step(self, batch: dict[str, list[Any]], batch_idx: int) -> list[dict[str, Any]]:
        """One row per document: id, summary, and the reference and its ROUGE when known."""
        summaries = self.summarize(batch["text"], batch_size=len(batch["text"]))
        rows = []
        for key, summary, reference in zip(batch["id"], summaries, batch["label"], strict=True):
            row: dict[str, Any] = {"id": key, "summary": summary}
            if isinstance(reference, str):
                row["reference"] = reference
                row.update(pair_scores(summary, reference))
            rows.append(row)
        return rows

    @torch.inference_mode()
    def summarize(self, documents: Sequence[str], batch_size: int = 16) -> list[str]:
        """Summaries of raw documents, batched (no datamodule).

        Uses the tokenizer and generation settings saved in the checkpoint.
        """
        self.eval()
        summaries: list[str] = []
        for start in range(0, len(documents), batch_size):
            batch = self.encode(documents[start : start + batch_size])
            summaries += self._decode(self.generate(batch["ids"].to(self.device), batch["lengths"]))
        return summaries

    def encode(self, documents: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise, cut to `max_source_length` and pad raw documents."""
        encoded = self.tokenizer(
            list(documents), truncation=True, max_length=self.hparams.max_source_length
        )
        samples = [(torch.tensor(ids), -1) for ids in encoded["input_ids"]]
        return pad_batch(samples, pad_id=self.tokenizer.pad_token_id)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a Hugging Face folder: model, config, generation config, tokenizer."""
        return export(self.net, self.tokenizer, folder, self.hparams.max_source_length)

    @override
    def configure_optimizers(self) -> Any:
        groups = parameter_groups(self.net)
        return configure_optimizers(self, self.optimizer, self.scheduler, params=groups)

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        save_artifacts(checkpoint, self, self.net, self.tokenizer, self.hparams.pretrained)
        checkpoint[ARTIFACTS]["generation_config"] = self.generation_config.to_dict()

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Built from the hyperparameters alone: install the saved tokenizer and a model of the
        # saved config (random weights: the checkpoint's replace them next).
        config, self.tokenizer = load_artifacts(checkpoint)
        net: PreTrainedModel = AutoModelForSeq2SeqLM.from_config(config)
        self.net = net.to(self.device).train(self.training)
        self._set_generation_config()
