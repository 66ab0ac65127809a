"""IMDB sentiment data: aclImdb folders, a CSV/JSONL/Parquet table, Hugging Face `imdb`, or a demo.

Reviews become tokens by torchtext's `basic_english` rules and ids through a vocabulary built on
the training split (`datamodules.tokens`). Encoded splits are cached on disk, keyed by the data
and the vocabulary settings, so a second run starts without tokenising.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from datamodules.common import check_model_classes, check_val_split, make_loader, ranks
from datamodules.demo.reviews import make_reviews
from datamodules.encoded import (
    Encoded,
    EncodedDataset,
    EncodedSplit,
    cache_folder,
    default_cache_dir,
    fingerprint_files,
    print_audit,
    vocab_digest,
)
from datamodules.text_table import (
    ReadReport,
    TextsDataset,
    TextSplit,
    collate_texts,
    hold_out,
    label_parser,
    labelled_text_files,
    read_hf,
    read_labelled_texts,
    read_texts,
)
from datamodules.tokens import LengthBucketSampler, Vocab, basic_english, pad_batch

CLASS_NAMES = ("neg", "pos")
parse_label = label_parser(CLASS_NAMES, {"negative": 0, "positive": 1})
CACHE_VERSION = 2  # bump when the tokenizer, the readers, the split or the cache layout change


class ImdbDataModule(LightningDataModule):
    """Reviews labelled neg/pos, tokenised with `basic_english`, padded per batch.

    Training batches are dicts: "ids" (B, T) int64 padded with 0 to the longest review in the
    batch (T <= `max_length`), "lengths" (B,), "label" (B,). Prediction batches hold raw "text",
    "id" and "label" (-1 when unknown): the task tokenises with the vocabulary in its checkpoint.

    Args:
        root: aclImdb folder (`train/{neg,pos}/*.txt`, `test/...`), a CSV file, or a folder with
            `train.csv` (and optionally `val.csv`, `test.csv`); unset (and no `hf_dataset`) for
            synthetic demo reviews.
        hf_dataset: A Hugging Face dataset name or local copy, e.g. `stanfordnlp/imdb`.
        text_column: CSV / Hugging Face column holding the review.
        label_column: Column holding the label: pos/neg, positive/negative or 1/0.
        max_length: Reviews are cut to this many tokens (the course used 256).
        min_freq: Tokens seen fewer times in the training split map to `<unk>`.
        max_vocab: At most this many vocabulary entries, specials included (None: all).
        batch_size: Reviews per batch.
        num_workers: DataLoader worker processes.
        val_split: Share of train held out for validation when there is no val split.
        seed: Seed of that split, of the bucketing and of the demo reviews.
        bucketing: Batch reviews of similar length together (less padding, faster epochs).
        fixed_padding: Pad every batch to `max_length`, as the course did (for comparison).
        predict_path: Reviews to classify: a .txt file (one per line), a .csv (`text_column`),
            or a folder of .txt files; unset to predict the validation split.
        cache_dir: Where tokenised data is cached (default `~/.cache/lightning-task-zoo/imdb`).
        cache: Read and write that cache.
        demo_reviews: Training reviews in the demo (val and test get a quarter each).
        demo_mean_words: Mean length of demo reviews in words.
    """

    def __init__(
        self,
        root: str | None = None,
        hf_dataset: str | None = None,
        text_column: str = "text",
        label_column: str = "label",
        max_length: int = 256,
        min_freq: int = 1,
        max_vocab: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        val_split: float = 0.05,
        seed: int = 0,
        bucketing: bool = True,
        fixed_padding: bool = False,
        predict_path: str | None = None,
        cache_dir: str | None = None,
        cache: bool = True,
        demo_reviews: int = 4000,
        demo_mean_words: float = 60.0,
    ) -> None:
        super().__init__()
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if root and hf_dataset:
            raise ValueError("Set either root or hf_dataset, not both.")
        self.root = Path(root).expanduser() if root else None
        self.hf_dataset = hf_dataset
        self.text_column = text_column
        self.label_column = label_column
        self.max_length = max_length
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_split = check_val_split(val_split)
        self.seed = seed
        self.bucketing = bucketing
        self.fixed_padding = fixed_padding
        self.predict_path = predict_path
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir("imdb")
        self.cache = cache
        self.demo_reviews = demo_reviews
        self.demo_mean_words = demo_mean_words
        self.class_names = list(CLASS_NAMES)
        self.datasets: dict[str, Dataset] = {}
        self.model_facts: dict[str, Any] = {}
        self.model_vocab: Vocab | None = None

    def use_model_facts(self, facts: Mapping[str, Any]) -> None:
        """Read data the way a trained model expects (`zoo ... --ckpt_path` calls this).

        `facts` come from the checkpoint: its vocabulary (reviews are encoded with it, not with
        one built on this data), `max_length` and class names. Predicting `predict_path` reads
        nothing else.
        """
        self.model_facts = dict(facts)
        self.max_length = facts.get("max_length", self.max_length)
        self.model_vocab = Vocab(list(facts["vocab"])) if facts.get("vocab") else None

    @property
    def vocab(self) -> Vocab:
        """The vocabulary; `zoo` links it into the task, which saves it in its checkpoints.

        A `Vocab` object, not a token list: the CLI passes it on as is, where it would check
        a 100k-token list item by item.
        """
        if self.model_vocab is not None:
            return self.model_vocab
        return self.encoded.vocab

    @functools.cached_property
    def encoded(self) -> Encoded:
        """Tokenised, encoded splits: from the cache when the data and settings are unchanged."""
        settings = {
            "version": CACHE_VERSION,
            "data": self._fingerprint(),
            "min_freq": self.min_freq,
            "max_vocab": self.max_vocab,
            "val_split": self.val_split,
            "seed": self.seed,
            "model_vocab": vocab_digest(self.model_vocab),
        }
        folder = cache_folder(self.cache_dir, settings)
        if self.cache and (folder / "meta.json").is_file():
            rank_zero_info(f"Tokenised data from the cache {folder}")
            return Encoded.load(folder)
        encoded = self._build()
        if self.cache:
            encoded.save(folder)
            rank_zero_info(f"Cached the tokenised data in {folder}")
        return encoded

    def _fingerprint(self) -> list[Any]:
        """Changes whenever the data does (file sizes and times, or the demo's settings)."""
        if self.hf_dataset:  # a hub name is a fixed snapshot in the HF cache; a folder may change
            local = Path(self.hf_dataset)
            files = [p for p in local.rglob("*") if p.is_file()] if local.is_dir() else []
            return [
                "hf",
                self.hf_dataset,
                self.text_column,
                self.label_column,
                fingerprint_files(files),
            ]
        if self.root is None:
            return ["demo", self.demo_reviews, self.demo_mean_words, self.seed]
        if not self.root.exists():
            raise FileNotFoundError(
                f"Data root {self.root} does not exist. Point --data.init_args.root at an aclImdb "
                "folder or a CSV, set hf_dataset, or leave both unset for demo data."
            )
        files = labelled_text_files(self.root, CLASS_NAMES)
        return [
            "files",
            str(self.root),
            self.text_column,
            self.label_column,
            fingerprint_files(files),
        ]

    def _read(self) -> tuple[dict[str, TextSplit], str]:
        report = ReadReport()
        if self.hf_dataset:
            splits = read_hf(
                self.hf_dataset, self.text_column, self.label_column, parse_label, report
            )
            description = f"Hugging Face dataset {self.hf_dataset}"
        elif self.root is None:
            splits = {}
            sizes = (self.demo_reviews, self.demo_reviews // 4, self.demo_reviews // 4)
            for offset, (split, count) in enumerate(
                zip(("train", "val", "test"), sizes, strict=True)
            ):
                texts, labels = make_reviews(
                    max(count, 2), self.seed + offset, self.demo_mean_words
                )
                splits[split] = TextSplit(
                    texts, labels, [f"demo/{split}/{i}" for i in range(len(texts))]
                )
            description = "demo: synthetic reviews from templates (not IMDB), seeded"
        else:
            splits, description = read_labelled_texts(
                self.root, self.text_column, self.label_column, parse_label, CLASS_NAMES, report
            )
        report.warn(description)
        if not splits["train"].texts:
            raise ValueError(f"{description}: the training split has no reviews.")
        return hold_out(splits, self.val_split, self.seed), description

    def _build(self) -> Encoded:
        from rich.progress import track

        splits, description = self._read()
        tokens = {}
        quiet = rank_zero_only.rank != 0
        for split, data in splits.items():
            tokens[split] = [
                basic_english(text)
                for text in track(data.texts, f"Tokenising {split}", disable=quiet, transient=True)
            ]
        if self.model_vocab is not None:  # a checkpoint's: its ids are what the model learned
            vocab = self.model_vocab
        else:
            vocab = Vocab.build(tokens["train"], self.min_freq, self.max_vocab)
        encoded = {
            split: EncodedSplit.encode(vocab, tokens[split], splits[split].labels)
            for split in splits
        }
        return Encoded(vocab, encoded, splits["val"], description)

    def prepare_data(self) -> None:
        """Tokenise once (rank zero per node) and fill the cache that `setup` reads."""
        predicting_files = self.predict_path and self.trainer and self.trainer.predicting
        if self.cache and not predicting_files:
            _ = self.encoded

    def setup(self, stage: str) -> None:
        """Datasets for `stage`; the data audit is printed once."""
        if stage == "predict" and self.predict_path:  # only these texts: no training data
            texts = read_texts(
                Path(self.predict_path),
                self.text_column,
                self.label_column,
                parse_label,
                CLASS_NAMES,
            )
            self.datasets["predict"] = TextsDataset(texts)
            return
        if "class_names" in self.model_facts:
            check_model_classes(self.class_names, self.model_facts["class_names"], "IMDB data")
        encoded = self.encoded
        if not self.datasets:
            origin = "built on train" if self.model_vocab is None else "the checkpoint's"
            vocabulary = f"vocabulary: {len(encoded.vocab)} tokens (with <pad>, <unk>), {origin}"
            print_audit(
                encoded.description, encoded.splits, CLASS_NAMES, self.max_length, vocabulary
            )
        for split, data in encoded.splits.items():
            self.datasets[split] = EncodedDataset(data, self.max_length)
        if stage == "test" and "test" not in encoded.splits:
            rank_zero_warn("No test split: testing on the validation split.")
        if stage == "predict":
            val = encoded.val_texts
            self.datasets["predict"] = TextsDataset(val)

    def _loader(self, split: str, train: bool = False) -> DataLoader:
        # Only what `setup` built: Lightning's `__str__` calls every loader method.
        dataset = self.datasets[split]
        pad_to = self.max_length if self.fixed_padding else None
        sampler, world = None, ranks(self.trainer)
        if train and self.bucketing and not self.fixed_padding:
            lengths = dataset.split.lengths(self.max_length)
            sampler = LengthBucketSampler(
                lengths, self.batch_size, seed=self.seed, num_replicas=world[0], rank=world[1]
            )
        collate = functools.partial(pad_batch, pad_to=pad_to)
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
        """Batches of raw texts."""
        return DataLoader(
            self.datasets["predict"], batch_size=self.batch_size, collate_fn=collate_texts
        )
