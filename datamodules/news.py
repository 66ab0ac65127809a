"""News classification data: a CSV/TSV/JSONL/Parquet table, Hugging Face `ag_news`, or a demo.

Single-label (one topic per text) or multi-label (`"sports|business"` or a JSON list). Texts
become subword ids with the model's fast tokenizer (a pretrained one, or for the demo a WordPiece
tokenizer trained on the training split) through `datasets.map(batched=True)`; the tokenised
splits are cached on disk, keyed by the data and the settings, so a second start skips it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from datamodules.common import check_val_split, make_loader, ranks
from datamodules.demo.headlines import TOPICS, make_headlines
from datamodules.encoded import (
    EncodedDataset,
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
    WORDPIECE_SPECIALS,
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
    hold_out,
    label_parser,
    read_hf,
    read_table,
    read_texts,
    train_tables,
)
from datamodules.tokens import LengthBucketSampler, pad_batch

CACHE_VERSION = 1  # bump when the readers, the tokenising, the split or the cache layout change


@dataclass
class Tokenised:
    """What setup needs, cached on disk as a whole."""

    tokenizer: PreTrainedTokenizerBase
    class_names: list[str]
    splits: dict[str, EncodedSplit]
    val_texts: TextSplit  # raw, for predicting the validation split
    description: str


class NewsDataModule(LightningDataModule):
    """Texts with one topic (or several), tokenised by the model's tokenizer, padded per batch.

    Training batches are dicts: "ids" (B, T) padded with the tokenizer's pad id to the longest
    text in the batch (T <= `max_length`), "lengths" (B,) and "label": (B,) class ids, or (B, C)
    multi-hot for multi-label data. Prediction batches hold raw "text", "id" and "label" (-1 when
    unknown): the task tokenises with the tokenizer in its checkpoint.

    Class names come from, in order: `label_names`; the dataset's own (a Hugging Face
    `ClassLabel`, or a `classes.txt` beside the table, one name per line, as AG News ships it:
    integer labels are then 1-based when 0 never occurs and the largest is the class count, as in
    AG News, else 0-based); or the training split's labels, sorted (numerically when they are
    integers). They are saved with the model.

    Several text columns (AG News: `[title, description]`) are joined with the tokenizer's
    separator token (`[SEP]` for BERT), not a space: BERT was pre-trained on segments separated
    by `[SEP]`, so the title stays a unit of its own instead of running into the description.

    Args:
        root: A CSV/TSV/JSONL/Parquet table, or a folder with `train.*` (and optionally `val.*`,
            `test.*`) tables; unset (and no `hf_dataset`) for synthetic demo headlines.
        hf_dataset: A Hugging Face dataset name or local copy, e.g. `fancyzhx/ag_news`.
        text_column: The text column, or a list of columns joined (see above).
        label_column: The label column: class names or integer ids.
        label_names: Class names in label-id order; default see above.
        multi_label: Each text has a set of labels: `"a|b"` (see `label_separator`) or a JSON
            list `["a", "b"]`.
        label_separator: Separator of multi-label label strings.
        pretrained: Hugging Face model name or `save_pretrained` folder whose tokenizer to use
            (`zoo` hands it to the task, which loads its weights); unset to train a WordPiece
            tokenizer on the training texts (demo, or data of your own without a model).
        tokenizer_vocab_size: Vocabulary size of a trained WordPiece tokenizer.
        max_length: Texts are cut to this many tokens, special tokens included.
        batch_size: Texts per batch.
        num_workers: DataLoader worker processes.
        val_split: Share of train held out (per class) for validation when there is no val split.
        seed: Seed of that split, of the bucketing and of the demo headlines.
        bucketing: Batch texts of similar length together (less padding, faster epochs).
        fixed_padding: Pad every batch to `max_length` (for comparison).
        predict_path: Texts to classify: a .txt file (one per line), a table with the text
            column(s), or a folder of .txt files; unset to predict the validation split.
        cache_dir: Where tokenised data is cached (default `~/.cache/lightning-task-zoo/news`).
        cache: Read and write that cache.
        demo_headlines: Training headlines in the demo (val and test get a quarter each).
        demo_second_clause: Share of demo headlines with a second clause of another topic.
    """

    def __init__(
        self,
        root: str | None = None,
        hf_dataset: str | None = None,
        text_column: str | list[str] = "text",
        label_column: str = "label",
        label_names: list[str] | None = None,
        multi_label: bool = False,
        label_separator: str = "|",
        pretrained: str | None = None,
        tokenizer_vocab_size: int = 8000,
        max_length: int = 128,
        batch_size: int = 32,
        num_workers: int = 0,
        val_split: float = 0.1,
        seed: int = 0,
        bucketing: bool = True,
        fixed_padding: bool = False,
        predict_path: str | None = None,
        cache_dir: str | None = None,
        cache: bool = True,
        demo_headlines: int = 4000,
        demo_second_clause: float = 0.2,
    ) -> None:
        super().__init__()
        if max_length < 3:
            raise ValueError(f"max_length must be >= 3 (two special tokens), got {max_length}")
        if root and hf_dataset:
            raise ValueError("Set either root or hf_dataset, not both.")
        if not label_separator:
            raise ValueError("label_separator must not be empty")
        self.root = Path(root).expanduser() if root else None
        self.hf_dataset = hf_dataset
        self.text_column = text_column
        self.label_column = label_column
        self.label_names = list(label_names) if label_names else None
        self.multi_label = multi_label
        self.label_separator = label_separator
        self.pretrained = pretrained
        self.tokenizer_vocab_size = tokenizer_vocab_size
        self.max_length = max_length
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_split = check_val_split(val_split)
        self.seed = seed
        self.bucketing = bucketing
        self.fixed_padding = fixed_padding
        self.predict_path = predict_path
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir("news")
        self.cache = cache
        self.demo_headlines = demo_headlines
        self.demo_second_clause = demo_second_clause
        self.datasets: dict[str, Dataset] = {}
        self.model_facts: dict[str, Any] = {}
        self.model_tokenizer: PreTrainedTokenizerBase | None = None

    def use_model_facts(self, facts: Mapping[str, Any]) -> None:
        """Read data the way a trained model expects (`zoo ... --ckpt_path` calls this).

        `facts` come from the checkpoint: its tokenizer, `max_length`, class names and whether
        it is multi-label. The model's weights come from the checkpoint too, so `pretrained` is
        not loaded. Predicting `predict_path` reads nothing else.
        """
        self.model_facts = dict(facts)
        self.max_length = facts.get("max_length", self.max_length)
        self.multi_label = facts.get("multi_label", self.multi_label)
        if facts.get("tokenizer"):
            self.model_tokenizer = tokenizer_from_artifact(facts["tokenizer"])
            self.pretrained = None

    # Facts `zoo` links into the task.
    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer: the checkpoint's, the pretrained model's, or one trained on train."""
        if self.model_tokenizer is not None:
            return self.model_tokenizer
        return self.tokenised.tokenizer

    @property
    def class_names(self) -> list[str]:
        """Class names in label-id order."""
        if "class_names" in self.model_facts:
            return list(self.model_facts["class_names"])
        return self.tokenised.class_names

    @functools.cached_property
    def tokenised(self) -> Tokenised:
        """Tokenised splits: from the cache when the data and settings are unchanged."""
        settings = {
            "version": CACHE_VERSION,
            "data": self._fingerprint(),
            "labels": [self.label_names, self.multi_label, self.label_separator],
            "tokenizer": tokenizer_key(
                self.model_tokenizer, self.pretrained, "wordpiece", self.tokenizer_vocab_size
            ),
            "max_length": self.max_length,
            "val_split": self.val_split,
            "seed": self.seed,
            "model_classes": self.model_facts.get("class_names"),
        }
        folder = cache_folder(self.cache_dir, settings)
        if self.cache and (folder / "meta.json").is_file():
            rank_zero_info(f"Tokenised data from the cache {folder}")
            return _load(folder, self.model_tokenizer)
        splits, names, description = self._read()
        tokenizer = self._given_tokenizer or trained_tokenizer(
            splits["train"].texts, self.tokenizer_vocab_size, "wordpiece"
        )
        encoded = {
            split: encode_texts(
                tokenizer,
                data.texts,
                _labels(data.labels, len(names), self.multi_label),
                self.max_length,
                f"Tokenising {split}",
            )
            for split, data in splits.items()
        }
        tokenised = Tokenised(tokenizer, names, encoded, splits["val"], description)
        if self.cache:
            _save(tokenised, folder)
            rank_zero_info(f"Cached the tokenised data in {folder}")
        return tokenised

    @functools.cached_property
    def _given_tokenizer(self) -> PreTrainedTokenizerBase | None:
        """The checkpoint's or the pretrained model's tokenizer, loaded once; None: train one."""
        return given_tokenizer(self.model_tokenizer, self.pretrained)

    @functools.cached_property
    def _joiner(self) -> str:
        """How several text columns are joined: " [SEP] " (the tokenizer's separator)."""
        if isinstance(self.text_column, str):
            return " "
        given = self._given_tokenizer
        sep = given.sep_token if given is not None else WORDPIECE_SPECIALS["sep_token"]
        return f" {sep} " if sep else " "

    def _fingerprint(self) -> list[Any]:
        """Changes whenever the data does (file sizes and times, or the demo's settings)."""
        columns = [self.text_column, self.label_column]
        if self.hf_dataset:
            return ["hf", self.hf_dataset, columns, folder_fingerprint(self.hf_dataset)]
        if self.root is None:
            return ["demo", self.demo_headlines, self.demo_second_clause, self.seed]
        files = list(self._tables().values())
        classes = self._classes_file()
        return ["files", columns, fingerprint_files(files + ([classes] if classes else []))]

    def _tables(self) -> dict[str, Path]:
        return train_tables(self.root, ".csv")

    def _classes_file(self) -> Path | None:
        folder = self.root if self.root.is_dir() else self.root.parent
        return folder / "classes.txt" if (folder / "classes.txt").is_file() else None

    def _read(self) -> tuple[dict[str, TextSplit], list[str], str]:
        """Raw splits with label ids, the class names, and a description of the source."""
        report = ReadReport()
        keep = _raw_multi_label(self.label_separator) if self.multi_label else _raw_label
        given = self.label_names
        if self.hf_dataset:
            raw = read_hf(
                self.hf_dataset, self.text_column, self.label_column, keep, report, self._joiner
            )
            description = f"Hugging Face dataset {self.hf_dataset}"
        elif self.root is None:
            raw = {}
            sizes = (self.demo_headlines, self.demo_headlines // 4, self.demo_headlines // 4)
            for offset, (split, count) in enumerate(
                zip(("train", "val", "test"), sizes, strict=True)
            ):
                texts, topics, mentioned = make_headlines(
                    max(count, 8), self.seed + offset, self.demo_second_clause
                )
                if self.multi_label:
                    labels: list[Any] = [tuple(TOPICS[t] for t in m) for m in mentioned]
                else:
                    labels = [TOPICS[t] for t in topics]
                raw[split] = TextSplit(
                    texts, labels, [f"demo/{split}/{i}" for i in range(len(texts))]
                )
            given = given or list(TOPICS)
            description = "demo: synthetic headlines from templates (not news), seeded"
        else:
            raw = {
                split: read_table(
                    path, self.text_column, self.label_column, keep, report, joiner=self._joiner
                )
                for split, path in self._tables().items()
            }
            classes = self._classes_file()
            if classes and not given:
                given = [line.strip() for line in classes.read_text().splitlines() if line.strip()]
                rank_zero_info(f"Class names from {classes}: {given}")
            description = f"table {self.root}"
        if not raw["train"].texts:
            raise ValueError(f"{description}: the training split has no texts.")
        names = self.model_facts.get("class_names") or given or report.label_names
        names = list(names) if names else _infer_names(raw["train"].labels, self.multi_label)
        one_based = _one_based(raw["train"].labels, names, self.multi_label)
        splits = {
            split: _parse_labels(data, names, self.multi_label, report, one_based)
            for split, data in raw.items()
        }
        report.warn(description)
        return hold_out(splits, self.val_split, self.seed), names, description

    def prepare_data(self) -> None:
        """Tokenise once (rank zero per node) and fill the cache that `setup` reads."""
        predicting_files = self.predict_path and self.trainer and self.trainer.predicting
        if self.cache and not predicting_files:
            _ = self.tokenised

    def setup(self, stage: str) -> None:
        """Datasets for `stage`; the data audit is printed once."""
        if stage == "predict" and self.predict_path:  # only these texts: no training data
            names, multi = self.class_names, self.multi_label
            keep = _raw_multi_label(self.label_separator) if multi else _raw_label
            path = Path(self.predict_path)
            raw = read_texts(path, self.text_column, self.label_column, keep, names, self._joiner)
            report = ReadReport()
            texts = _parse_labels(raw, names, multi, report, _one_based(raw.labels, names, multi))
            report.warn(str(path))
            self.datasets["predict"] = TextsDataset(texts)
            return
        tokenised = self.tokenised  # labels are read against the checkpoint's classes, if any
        if not self.datasets:
            tokenizer = tokenised.tokenizer
            origin = "the checkpoint's" if self.model_tokenizer else (self.pretrained or "trained")
            footer = f"tokenizer: {type(tokenizer).__name__}, {len(tokenizer)} tokens, {origin}"
            unk = tokenizer.unk_token_id
            print_audit(
                tokenised.description,
                tokenised.splits,
                tokenised.class_names,
                self.max_length,
                footer,
                unk,
            )
        for split, data in tokenised.splits.items():
            self.datasets[split] = EncodedDataset(data, self.max_length)
        if stage == "test" and "test" not in tokenised.splits:
            rank_zero_warn("No test split: testing on the validation split.")
        if stage == "predict":
            self.datasets["predict"] = TextsDataset(tokenised.val_texts)

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
        pad_id = self.tokenizer.pad_token_id or 0
        collate = functools.partial(pad_batch, pad_to=pad_to, pad_id=pad_id)
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


def _raw_label(value: Any, source: str) -> Any:
    return value if value == -1 else str(value).strip()


def _raw_multi_label(separator: str) -> Any:
    """Multi-label values as tuples of names: a JSON list, a list, or `separator`-joined."""

    def parse(value: Any, source: str) -> tuple[str, ...]:
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"{source}: label {value!r} is not a JSON list: {error}") from None
        parts = value if isinstance(value, list) else str(value or "").split(separator)
        return tuple(str(part).strip() for part in parts if str(part).strip())

    return parse


def _infer_names(labels: Sequence[Any], multi_label: bool) -> list[str]:
    """Class names of the training labels: sorted, numerically when all are integers."""
    values = {v for label in labels for v in label} if multi_label else set(labels)
    if all(v.lstrip("-").isdigit() for v in values):
        return sorted(values, key=int)
    return sorted(values)


def _values(labels: Sequence[Any], multi_label: bool) -> set[str]:
    return {str(v) for label in labels if label != -1 for v in (label if multi_label else [label])}


def _one_based(labels: Sequence[Any], names: Sequence[str], multi_label: bool) -> bool:
    """Whether integer labels for named classes are 1-based, as AG News's.

    They are when 0 never occurs and the largest is the class count; else 0-based.
    """
    numbers = [int(v) for v in _values(labels, multi_label) if v.isdigit()]
    if not numbers or any(n.isdigit() for n in names):
        return False
    if min(numbers) >= 1 and max(numbers) < len(names):
        rank_zero_warn(
            f"Integer labels {sorted(set(numbers))} for the classes {list(names)} are read as "
            "0-based ids (0 never occurs, but neither does the last class's 1-based id): if they "
            "are 1-based, as in AG News, set label_names or write the class names instead."
        )
    return min(numbers) >= 1 and max(numbers) == len(names)


def _parse_labels(
    data: TextSplit, names: Sequence[str], multi_label: bool, report: ReadReport, one_based: bool
) -> TextSplit:
    """Map raw labels (strings, or tuples of strings) to ids (or sorted tuples of ids).

    Unknown labels raise, naming the row and the known labels; -1 (no label) stays; an empty
    multi-label set is a counted skip.
    """
    aliases = {str(i + 1): i for i in range(len(names))} if one_based else {}
    parse = label_parser(names, aliases)
    out = TextSplit([], [], [])
    for text, label, source in zip(data.texts, data.labels, data.ids, strict=True):
        if label == -1:
            ids: Any = -1
        elif multi_label:
            if not label:
                report.no_label.append(source)
                continue
            ids = tuple(sorted({parse(v, source) for v in label}))
        else:
            ids = parse(label, source)
        out.texts.append(text)
        out.labels.append(ids)
        out.ids.append(source)
    return out


def _labels(labels: list[Any], num_classes: int, multi_label: bool) -> np.ndarray:
    """Class ids (N,), or a multi-hot (N, C) float32 array."""
    if not multi_label:
        return np.asarray(labels, np.int64)
    hot = np.zeros((len(labels), num_classes), np.float32)
    for row, ids in enumerate(labels):
        hot[row, list(ids)] = 1.0
    return hot


def _save(tokenised: Tokenised, folder: Path) -> None:
    val = tokenised.val_texts
    meta = {
        "class_names": tokenised.class_names,
        "description": tokenised.description,
        "val_texts": {"texts": val.texts, "labels": val.labels, "ids": val.ids},
    }
    save_cache(folder, tokenised.splits, tokenised.tokenizer, meta)


def _load(folder: Path, tokenizer: PreTrainedTokenizerBase | None) -> Tokenised:
    splits, tokenizer, meta = load_cache(folder, tokenizer)
    val = meta["val_texts"]
    val["labels"] = [tuple(x) if isinstance(x, list) else x for x in val["labels"]]
    return Tokenised(tokenizer, meta["class_names"], splits, TextSplit(**val), meta["description"])
