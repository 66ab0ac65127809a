"""Summarization data: JSONL/CSV/Parquet tables, Hugging Face `cnn_dailymail`/`xsum`, or a demo.

Documents and summaries become subword ids with the model's fast tokenizer (a pretrained one, or
for the demo a byte-level BPE tokenizer trained on the training texts) through
`datasets.map(batched=True)`, cut to `max_source_length` / `max_target_length` (both counted in
the audit), and cached on disk, so a second start skips tokenising.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from datamodules.common import check_val_split, make_loader, ranks, split_indices
from datamodules.demo.articles import make_articles
from datamodules.encoded import (
    EncodedSplit,
    cache_folder,
    default_cache_dir,
    encode_texts,
    fingerprint_files,
    folder_fingerprint,
    load_cache,
    print_audit,
    save_cache,
)
from datamodules.subwords import (
    given_tokenizer,
    tokenizer_from_artifact,
    tokenizer_key,
    trained_tokenizer,
)
from datamodules.text_table import (
    ReadReport,
    TextsDataset,
    TextSplit,
    collate_texts,
    read_hf,
    read_table,
    read_texts,
    train_tables,
)
from datamodules.tokens import LABEL_PAD, LengthBucketSampler, pad_batch

CACHE_VERSION = 1  # bump when the readers, the tokenising, the split or the cache layout change


@dataclass
class Tokenised:
    """What setup needs, cached on disk as a whole: per split, documents and summaries."""

    tokenizer: PreTrainedTokenizerBase
    sources: dict[str, EncodedSplit]
    targets: dict[str, EncodedSplit]
    description: str


class _PairDataset(Dataset):
    """(document ids, summary ids) pairs, both already cut by the tokenizer."""

    def __init__(self, sources: EncodedSplit, targets: EncodedSplit) -> None:
        self.sources, self.targets = sources, targets

    def __len__(self) -> int:
        return len(self.sources.offsets) - 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pieces = []
        for split in (self.sources, self.targets):
            start, end = split.offsets[index], split.offsets[index + 1]
            pieces.append(torch.from_numpy(split.ids[start:end].astype(np.int64)))
        return pieces[0], pieces[1]


def collate_pairs(
    samples: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int, pad_to: int | None = None
) -> dict[str, torch.Tensor]:
    """Pad a batch of (document, summary) pairs.

    Documents are padded with `pad_id` ("ids" (B, S), "lengths" (B,)), summaries with -100
    ("labels" (B, T)): the loss skips padding; the model shifts the labels itself.
    """
    sources = pad_batch([(source, 0) for source, _ in samples], pad_to, pad_id)
    targets = pad_batch([(target, 0) for _, target in samples], None, LABEL_PAD)
    return {"ids": sources["ids"], "lengths": sources["lengths"], "labels": targets["ids"]}


class SummarizationDataModule(LightningDataModule):
    """(document, summary) pairs tokenised by the model's tokenizer, padded per batch.

    Training batches are dicts: "ids" (B, S) documents padded with the pad id, "lengths" (B,),
    "labels" (B, T) summaries padded with -100. Prediction batches hold raw "text" (documents),
    "id" and "label" (the reference summary, or -1): the task tokenises with its tokenizer.

    Args:
        root: A JSONL/CSV/TSV/Parquet table, or a folder with `train.*` (and optionally `val.*`,
            `test.*`); unset (and no `hf_dataset`) for synthetic demo articles.
        hf_dataset: A Hugging Face dataset name or local copy: `EdinburghNLP/xsum`,
            `abisee/cnn_dailymail` (with `hf_config: 3.0.0`).
        hf_config: The Hugging Face dataset's configuration, if it has several.
        document_column: The document column (`article` for CNN/DailyMail).
        summary_column: The reference summary column (`highlights` for CNN/DailyMail).
        pretrained: Hugging Face model name or `save_pretrained` folder whose tokenizer to use
            (`zoo` hands it to the task, which loads its weights); unset to train a byte-level
            BPE tokenizer on the training texts.
        tokenizer_vocab_size: Vocabulary size of a trained tokenizer.
        max_source_length: Documents are cut to this many tokens (counted in the audit); the
            course's 1024, BART's position limit.
        max_target_length: Summaries are cut to this many tokens (counted in the audit).
        batch_size: Pairs per batch.
        num_workers: DataLoader worker processes.
        val_split: Share of train held out for validation when there is no val split.
        seed: Seed of that split, of the bucketing and of the demo articles.
        bucketing: Batch documents of similar length together (less padding).
        predict_path: Documents to summarise: a .txt file (one per line), a table with the
            document column (and the summary column, for ROUGE), or a folder of .txt files;
            unset to summarise the validation split.
        cache_dir: Where tokenised data is cached (default `~/.cache/lightning-task-zoo/summ`).
        cache: Read and write that cache.
        demo_articles: Training articles in the demo (val and test get a quarter each).
    """

    def __init__(
        self,
        root: str | None = None,
        hf_dataset: str | None = None,
        hf_config: str | None = None,
        document_column: str = "document",
        summary_column: str = "summary",
        pretrained: str | None = None,
        tokenizer_vocab_size: int = 8000,
        max_source_length: int = 1024,
        max_target_length: int = 128,
        batch_size: int = 16,
        num_workers: int = 0,
        val_split: float = 0.05,
        seed: int = 0,
        bucketing: bool = True,
        predict_path: str | None = None,
        cache_dir: str | None = None,
        cache: bool = True,
        demo_articles: int = 3000,
    ) -> None:
        super().__init__()
        if min(max_source_length, max_target_length) < 3:
            raise ValueError("max_source_length and max_target_length must be >= 3")
        if root and hf_dataset:
            raise ValueError("Set either root or hf_dataset, not both.")
        self.root = Path(root).expanduser() if root else None
        self.hf_dataset = hf_dataset
        self.hf_config = hf_config
        self.document_column = document_column
        self.summary_column = summary_column
        self.pretrained = pretrained
        self.tokenizer_vocab_size = tokenizer_vocab_size
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_split = check_val_split(val_split)
        self.seed = seed
        self.bucketing = bucketing
        self.predict_path = predict_path
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir("summ")
        self.cache = cache
        self.demo_articles = demo_articles
        self.datasets: dict[str, Dataset] = {}
        self.model_tokenizer: PreTrainedTokenizerBase | None = None

    def use_model_facts(self, facts: Mapping[str, Any]) -> None:
        """Read data the way a trained model expects (`zoo ... --ckpt_path` calls this).

        `facts` come from the checkpoint: its tokenizer and both lengths. The weights come from
        the checkpoint too, so `pretrained` is not loaded. Predicting `predict_path` reads
        nothing else.
        """
        self.max_source_length = facts.get("max_source_length", self.max_source_length)
        self.max_target_length = facts.get("max_target_length", self.max_target_length)
        if facts.get("tokenizer"):
            self.model_tokenizer = tokenizer_from_artifact(facts["tokenizer"])
            self.pretrained = None

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer: the checkpoint's, the pretrained model's, or one trained on train."""
        if self.model_tokenizer is not None:
            return self.model_tokenizer
        return self.tokenised.tokenizer

    @functools.cached_property
    def tokenised(self) -> Tokenised:
        """Tokenised splits: from the cache when the data and settings are unchanged."""
        settings = {
            "version": CACHE_VERSION,
            "data": self._fingerprint(),
            "tokenizer": tokenizer_key(
                self.model_tokenizer, self.pretrained, "byte_bpe", self.tokenizer_vocab_size
            ),
            "lengths": [self.max_source_length, self.max_target_length],
            "val_split": self.val_split,
            "seed": self.seed,
        }
        folder = cache_folder(self.cache_dir, settings)
        if self.cache and (folder / "meta.json").is_file():
            rank_zero_info(f"Tokenised data from the cache {folder}")
            encoded, tokenizer, meta = load_cache(folder, self.model_tokenizer)
            return _unpack(encoded, tokenizer, meta["description"])
        splits, description = self._read()
        tokenizer = self._given_tokenizer or trained_tokenizer(
            splits["train"].texts + splits["train"].labels, self.tokenizer_vocab_size, "byte_bpe"
        )
        encoded = {}
        for split, data in splits.items():
            zeros = np.zeros(len(data.texts), np.int64)
            for side, texts, length in (
                ("source", data.texts, self.max_source_length),
                ("target", data.labels, self.max_target_length),
            ):
                name = f"{split}.{side}"
                encoded[name] = encode_texts(tokenizer, texts, zeros, length, f"Tokenising {name}")
        if self.cache:
            save_cache(folder, encoded, tokenizer, {"description": description})
            rank_zero_info(f"Cached the tokenised data in {folder}")
        return _unpack(encoded, tokenizer, description)

    @functools.cached_property
    def _given_tokenizer(self) -> PreTrainedTokenizerBase | None:
        """The checkpoint's or the pretrained model's tokenizer, loaded once; None: train one."""
        return given_tokenizer(self.model_tokenizer, self.pretrained)

    def _fingerprint(self) -> list[Any]:
        """Changes whenever the data does (file sizes and times, or the demo's settings)."""
        columns = [self.document_column, self.summary_column]
        if self.hf_dataset:
            local = folder_fingerprint(self.hf_dataset)
            return ["hf", self.hf_dataset, self.hf_config, columns, local]
        if self.root is None:
            return ["demo", self.demo_articles, self.seed]
        return ["files", columns, fingerprint_files(self._tables().values())]

    def _tables(self) -> dict[str, Path]:
        return train_tables(self.root, ".jsonl")

    def _read(self) -> tuple[dict[str, TextSplit], str]:
        """Splits of (document, summary) as `TextSplit(texts, labels=summaries, ids)`."""
        report = ReadReport()
        columns = (self.document_column, self.summary_column, _keep_summary)
        if self.hf_dataset:
            raw = read_hf(self.hf_dataset, *columns, report, config=self.hf_config)
            description = f"Hugging Face dataset {self.hf_dataset}"
        elif self.root is None:
            raw = {}
            sizes = (self.demo_articles, self.demo_articles // 4, self.demo_articles // 4)
            for offset, (split, count) in enumerate(
                zip(("train", "val", "test"), sizes, strict=True)
            ):
                documents, summaries = make_articles(max(count, 4), self.seed + offset)
                ids = [f"demo/{split}/{i}" for i in range(len(documents))]
                raw[split] = TextSplit(documents, summaries, ids)
            description = "demo: synthetic articles from templates (not news), seeded"
        else:
            raw = {
                split: read_table(path, *columns, report) for split, path in self._tables().items()
            }
            description = f"table {self.root}"
        splits = {split: _drop_empty_summaries(data, report) for split, data in raw.items()}
        report.warn(description)
        if not splits["train"].texts:
            raise ValueError(f"{description}: the training split has no document with a summary.")
        if "val" not in splits:
            kept, held = split_indices(len(splits["train"].texts), self.val_split, self.seed)
            train = splits["train"]
            splits.update({"train": _pick(train, kept), "val": _pick(train, held)})
        return splits, description

    def prepare_data(self) -> None:
        """Tokenise once (rank zero per node) and fill the cache that `setup` reads."""
        predicting_files = self.predict_path and self.trainer and self.trainer.predicting
        if self.cache and not predicting_files:
            _ = self.tokenised

    def setup(self, stage: str) -> None:
        """Datasets for `stage`; the data audit is printed once."""
        if stage == "predict" and self.predict_path:  # only these documents: no training data
            path = Path(self.predict_path)
            texts = read_texts(path, self.document_column, self.summary_column, _keep_summary, [])
            report = ReadReport()
            self.datasets["predict"] = TextsDataset(_drop_empty_summaries(texts, report, True))
            return
        tokenised = self.tokenised
        if not self.datasets:
            tokenizer = tokenised.tokenizer
            origin = "the checkpoint's" if self.model_tokenizer else (self.pretrained or "trained")
            footer = f"tokenizer: {type(tokenizer).__name__}, {len(tokenizer)} tokens, {origin}"
            for side, splits, length in (
                ("documents", tokenised.sources, self.max_source_length),
                ("summaries", tokenised.targets, self.max_target_length),
            ):
                title = f"{tokenised.description}, {side}"
                print_audit(title, splits, [], length, footer if side == "summaries" else "", None)
        for split in tokenised.sources:
            self.datasets[split] = _PairDataset(tokenised.sources[split], tokenised.targets[split])
        if stage == "test" and "test" not in tokenised.sources:
            rank_zero_warn("No test split: testing on the validation split.")
        if stage == "predict":
            self.datasets["predict"] = TextsDataset(self._raw_split("val"))

    def _raw_split(self, split: str) -> TextSplit:
        """A tokenised split decoded back to text (what the model sees, after truncation)."""

        def decode(side: EncodedSplit) -> list[str]:
            bounds = zip(side.offsets[:-1], side.offsets[1:], strict=True)
            return [
                self.tokenizer.decode(side.ids[a:b], skip_special_tokens=True) for a, b in bounds
            ]

        documents = decode(self.tokenised.sources[split])
        summaries = decode(self.tokenised.targets[split])
        return TextSplit(documents, summaries, [f"{split}/{i}" for i in range(len(documents))])

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        # Only what `setup` built: Lightning's `__str__` calls every loader method.
        dataset = self.datasets[split]
        sampler, world = None, ranks(self.trainer)
        if train and self.bucketing:
            lengths = np.diff(dataset.sources.offsets)
            sampler = LengthBucketSampler(
                lengths, self.batch_size, seed=self.seed, num_replicas=world[0], rank=world[1]
            )
        pad_id = self.tokenizer.pad_token_id or 0
        collate = functools.partial(collate_pairs, pad_id=pad_id)
        return make_loader(
            dataset, self.batch_size, self.num_workers, train, collate, sampler, self.trainer
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches, length-bucketed unless `bucketing` is off."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches (the test split, or validation when there is none)."""
        return self._loader("test" if "test" in self.datasets else "val")

    def predict_dataloader(self) -> DataLoader:
        """Batches of raw documents (and references, when known)."""
        return DataLoader(
            self.datasets["predict"], batch_size=self.batch_size, collate_fn=collate_texts
        )


def _keep_summary(value: Any, source: str) -> Any:
    return value if value == -1 else str(value or "").strip()


def _drop_empty_summaries(
    data: TextSplit, report: ReadReport, predicting: bool = False
) -> TextSplit:
    """Skip and count pairs with an empty reference summary.

    When predicting, such a document is kept, without a reference (-1).
    """
    kept = TextSplit([], [], [])
    for text, summary, source in zip(data.texts, data.labels, data.ids, strict=True):
        if predicting and (summary == -1 or not summary):
            summary = -1
        elif summary == -1 or not summary:
            report.no_label.append(source)
            continue
        kept.texts.append(text)
        kept.labels.append(summary)
        kept.ids.append(source)
    return kept


def _pick(data: TextSplit, indices: list[int]) -> TextSplit:
    return TextSplit(
        [data.texts[i] for i in indices],
        [data.labels[i] for i in indices],
        [data.ids[i] for i in indices],
    )


def _unpack(encoded: dict[str, EncodedSplit], tokenizer: Any, description: str) -> Tokenised:
    sources = {k.split(".")[0]: v for k, v in encoded.items() if k.endswith(".source")}
    targets = {k.split(".")[0]: v for k, v in encoded.items() if k.endswith(".target")}
    order = [s for s in ("train", "val", "test") if s in sources]
    return Tokenised(
        tokenizer,
        {s: sources[s] for s in order},
        {s: targets[s] for s in order},
        description,
    )
