"""Reading labelled texts: CSV/TSV/JSONL/Parquet tables, text files, Hugging Face datasets.

One reader for every text application, with its checks in one place: a missing column (named,
with the columns there are), an unknown label (named, with its row and the known labels), empty
texts and CSV rows longer than the header (skipped, counted, reported), undecodable bytes
(replaced, counted). CSV/TSV go through the `csv` module, which can name the offending line;
JSONL, Parquet and hub datasets through `datasets`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset

from datamodules.common import labels_from_folders, stratified_split

# (raw label, where it was read) -> class id (or the raw value, for readers that infer classes)
LabelParser = Callable[[Any, str], Any]
TextColumns = str | Sequence[str]  # one column, or several joined (AG News: title, description)
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


@dataclass
class TextSplit:
    """Raw texts and labels of one split, and where each came from (file or row)."""

    texts: list[str]
    labels: list[Any]  # class ids (multi-label: lists of ids); -1 when unknown
    ids: list[str]


@dataclass
class ReadReport:
    """Counted problems: nothing is dropped silently."""

    empty: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # non-UTF-8 bytes decoded with U+FFFD
    extra_fields: list[str] = field(default_factory=list)  # CSV rows longer than the header
    not_text: list[str] = field(default_factory=list)  # files in text folders that aren't .txt
    no_label: list[str] = field(default_factory=list)  # empty label set or empty summary
    label_names: list[str] | None = None  # class names the source gives (a ClassLabel feature)

    def warn(self, where: str) -> None:
        """One warning per kind, with counts and the first few sources."""
        for what, items in (
            ("empty text(s) skipped", self.empty),
            ("text(s) had non-UTF-8 bytes, decoded with replacement characters", self.replaced),
            (
                "CSV row(s) with more fields than the header skipped (an unquoted comma? quote "
                "the text, or give a .txt file with one text per line)",
                self.extra_fields,
            ),
            ("file(s) without a .txt extension skipped", self.not_text),
            ("row(s) with no label (or an empty summary) skipped", self.no_label),
        ):
            if items:
                shown = ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
                rank_zero_warn(f"{len(items)} {what} in {where}: {shown}")


def label_parser(class_names: Sequence[str], aliases: Mapping[str, int] = {}) -> LabelParser:  # noqa: B006 - read only
    """Labels given as class names, integer ids or `aliases`, in any case and spacing."""
    known = {str(name).strip().lower(): i for i, name in enumerate(class_names)}
    known.update({str(i): i for i in range(len(class_names))})
    known.update({key.lower(): value for key, value in aliases.items()})

    def parse(value: Any, source: str) -> int:
        key = str(value).strip().lower()
        if key not in known:
            raise ValueError(
                f"{source}: unknown label {value!r}. Known labels: {sorted(known)} (or point "
                "label_column at the right column)."
            )
        return known[key]

    return parse


def decode(data: bytes, source: str, report: ReadReport) -> str:
    """UTF-8 text, without the byte-order mark Excel writes; bad bytes become U+FFFD, counted."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.replaced.append(source)
        return data.decode("utf-8-sig", errors="replace")


def split_lines(text: str) -> list[str]:
    """Lines as `wc -l` counts them (LF or CRLF).

    Not `str.splitlines`, which also splits at U+2028, form feeds and other separators that
    scraped text contains.
    """
    lines = text.split("\n")
    if lines[-1] == "":  # the file ends with a newline
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def add_text(split: TextSplit, text: str, label: int, source: str, report: ReadReport) -> None:
    """Append a text, or count it as empty."""
    if text.strip():
        split.texts.append(text)
        split.labels.append(label)
        split.ids.append(source)
    else:
        report.empty.append(source)


def text_files(
    folder: Path, report: ReadReport | None = None, recursive: bool = False
) -> list[Path]:
    """The `.txt` files of `folder` (any case: `.TXT` too), sorted; others counted in `report`."""
    files, others = [], []
    for path in sorted(folder.rglob("*") if recursive else folder.iterdir()):
        if path.is_file():
            (files if path.suffix.lower() == ".txt" else others).append(path)
    if report is not None:
        report.not_text += [str(p) for p in others if not p.name.startswith(".")]
    return files


def read_text_folders(
    root: Path,
    class_names: Sequence[str],
    report: ReadReport,
    splits: Sequence[str] = ("train", "test"),
) -> dict[str, TextSplit]:
    """Class folders of `.txt` files, `root/<split>/<class>/*.txt`, as aclImdb ships them.

    The train split is required and every class needs its folder in each split present; other
    folders (aclImdb's `unsup/`) are ignored.
    """
    read = {}
    for split in splits:
        if not (root / split).is_dir():
            if split == "train":
                folders = "/, ".join(f"train/{name}" for name in class_names)
                raise FileNotFoundError(f"{root} has no train/ folder: expected {folders}/.")
            continue
        data = TextSplit([], [], [])
        for label, name in enumerate(class_names):
            folder = root / split / name
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"Missing {folder}: texts of class {name!r} go in {split}/{name}/."
                )
            for path in text_files(folder, report):
                text = decode(path.read_bytes(), str(path), report)
                add_text(data, text, label, str(path), report)
        read[split] = data
    return read


def table_files(root: Path) -> dict[str, Path]:
    """`root` itself if it is a table, else its `train`/`val`/`test` tables (any suffix)."""
    if root.is_file():
        return {"train": root}
    files = {}
    for split in ("train", "val", "test"):
        found = [root / f"{split}{suffix}" for suffix in TABLE_SUFFIXES]
        found = [path for path in found if path.is_file()]
        if found:
            files[split] = found[0]
    return files


def train_tables(root: Path, suffix: str) -> dict[str, Path]:
    """`table_files(root)`, which must include a train table; the errors suggest `train<suffix>`.

    Raises:
        FileNotFoundError: `root` does not exist, or holds no train table.
    """
    if not root.exists():
        raise FileNotFoundError(
            f"Data root {root} does not exist. Point --data.init_args.root at a CSV/TSV/JSONL/"
            f"Parquet file or a folder with train{suffix}, set hf_dataset, or leave both unset "
            "for demo data."
        )
    files = table_files(root)
    if "train" not in files:
        others = ", ".join(s for s in (".csv", ".tsv", ".jsonl", ".parquet") if s != suffix)
        raise FileNotFoundError(
            f"{root} holds no train table: expected train{suffix} (or {others}) in it, or pass "
            "the table file itself as root."
        )
    return files


def read_labelled_texts(
    root: Path,
    text_column: TextColumns,
    label_column: str,
    parse_label: LabelParser,
    class_names: Sequence[str],
    report: ReadReport,
) -> tuple[dict[str, TextSplit], str]:
    """Splits and a description of labelled texts under `root`, in either on-disk layout.

    Class folders of `.txt` files (`root/train/<class>/`, aclImdb's layout), or tables: `root`
    itself, or its `train`/`val`/`test` tables (CSV/TSV/JSONL/Parquet).
    """
    if (root / "train").is_dir():
        return read_text_folders(root, class_names, report), f"class folders under {root}"
    if files := table_files(root):
        read = {
            split: read_table(path, text_column, label_column, parse_label, report)
            for split, path in files.items()
        }
        return read, f"table {root}"
    raise FileNotFoundError(
        f"Cannot tell the layout of {root}: expected class folders of .txt files "
        f"(train/<class>/*.txt for classes {list(class_names)}), a CSV/TSV/JSONL/Parquet file, "
        "or a folder with train.csv (or .tsv, .jsonl, .parquet)."
    )


def labelled_text_files(root: Path, class_names: Sequence[str]) -> list[Path]:
    """The files `read_labelled_texts` reads under `root`, e.g. for a cache fingerprint."""
    if (root / "train").is_dir():  # not other folders (aclImdb's unsup/: 50k files)
        folders = [root / split / name for split in ("train", "test") for name in class_names]
        return [path for folder in folders if folder.is_dir() for path in text_files(folder)]
    return list(table_files(root).values())


def hold_out(splits: dict[str, TextSplit], val_split: float, seed: int) -> dict[str, TextSplit]:
    """Without a val split, hold out `val_split` of each class of train with the seed."""
    if "val" in splits:
        return splits
    train = splits["train"]
    kept, held = stratified_split(train.labels, val_split, seed)

    def pick(indices: list[int]) -> TextSplit:
        return TextSplit(
            [train.texts[i] for i in indices],
            [train.labels[i] for i in indices],
            [train.ids[i] for i in indices],
        )

    return {**splits, "train": pick(kept), "val": pick(held)}


def _columns(text_column: TextColumns) -> list[str]:
    return [text_column] if isinstance(text_column, str) else list(text_column)


def _join(row: Mapping[str, Any], text_columns: Sequence[str], joiner: str) -> str:
    """The row's text: its text columns' non-empty values joined by `joiner`."""
    parts = (str(row[c]).strip() for c in text_columns if row[c] is not None)
    return joiner.join(part for part in parts if part)


def _check_columns(where: Any, columns: Sequence[str], required: Sequence[str]) -> None:
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(
            f"{where} has no column(s) {missing}; its columns are {list(columns)}. Set "
            "--data.init_args.text_column / --data.init_args.label_column."
        )


def _csv_rows(path: Path, report: ReadReport) -> tuple[list[str], Iterable[tuple[str, dict]]]:
    """Header and (source, row) pairs of a CSV/TSV; rows longer than the header are counted.

    Strict parsing: a stray or unclosed quote is an error naming the line, where the lenient
    default would swallow every following row into one field.
    """
    csv.field_size_limit(2**31 - 1)  # long documents: the default stops at 128 KiB per field
    reader = csv.DictReader(
        io.StringIO(decode(path.read_bytes(), str(path), report), newline=""),
        delimiter="\t" if path.suffix.lower() == ".tsv" else ",",
        strict=True,
    )

    def malformed(error: csv.Error) -> ValueError:
        return ValueError(
            f"{path}:{reader.line_num}: malformed CSV ({error}). A text with a quote, comma, tab "
            "or line break must be quoted, with inner quotes doubled (as spreadsheet programs "
            "and `csv.writer` write it)."
        )

    try:
        columns = list(reader.fieldnames or [])
    except csv.Error as error:
        raise malformed(error) from error

    def rows() -> Iterable[tuple[str, dict]]:
        try:
            for row in reader:
                source = f"{path}:{reader.line_num}"
                if None in row:  # DictReader keeps fields beyond the header under the key None
                    report.extra_fields.append(source)
                    continue
                yield source, row
        except csv.Error as error:
            raise malformed(error) from error

    return columns, rows()


def _dataset_rows(path: Path) -> tuple[list[str], Iterable[tuple[str, dict]]]:
    """Header and (source, row) pairs of a JSONL/Parquet file, read by `datasets`."""
    import datasets
    from datasets.exceptions import DatasetGenerationError

    builder = "parquet" if path.suffix.lower() == ".parquet" else "json"
    try:
        table = datasets.load_dataset(builder, data_files=str(path), split="train")
    except (DatasetGenerationError, UnicodeDecodeError, ValueError) as error:  # ValueError: no rows
        if builder == "json":
            raise ValueError(f"{path}: {_json_problem(path)}") from error
        raise ValueError(f"{path} is not a readable Parquet file: {error}") from error
    return table.column_names, ((f"{path}[{i}]", row) for i, row in enumerate(table))


def _json_problem(path: Path) -> str:
    """What is wrong with a JSON/JSONL file `datasets` could not read: the first bad line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return f"line {line} is not UTF-8 ({error.reason}). Save the file as UTF-8."
    fix = 'Each line of a JSONL file must be one JSON object: {"text": ..., "label": ...}.'
    if path.suffix.lower() == ".json":
        try:
            json.loads(text)
            return f"its records do not form a table (one object per record). {fix}"
        except json.JSONDecodeError:
            pass  # JSON lines named .json
    fields = set()
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            return f"line {number} is not valid JSON ({error.msg}, column {error.colno}). {fix}"
        if not isinstance(record, dict):
            return f"line {number} is a JSON {type(record).__name__}, not an object. {fix}"
        fields.update(record)
    if not fields:
        return f"it holds no records with fields. {fix}"
    return f"its records have clashing types (a list in one, text in another). {fix}"


def read_table(
    path: Path,
    text_column: TextColumns,
    label_column: str,
    parse_label: LabelParser,
    report: ReadReport,
    labelled: bool = True,
    joiner: str = " ",
) -> TextSplit:
    """A CSV/TSV/JSONL/Parquet table with text and label columns (names configurable).

    Several text columns are joined by `joiner`. With `labelled=False` the label column is
    optional: without it every label is -1.
    """
    text_columns = _columns(text_column)
    if path.suffix.lower() in (".csv", ".tsv"):
        columns, rows = _csv_rows(path, report)
    else:
        columns, rows = _dataset_rows(path)
    _check_columns(path, columns, [*text_columns, label_column] if labelled else text_columns)
    has_labels = label_column in columns
    data = TextSplit([], [], [])
    for source, row in rows:
        label = parse_label(row[label_column], source) if has_labels else -1
        add_text(data, _join(row, text_columns, joiner), label, source, report)
    return data


def read_hf(
    name: str,
    text_column: TextColumns,
    label_column: str,
    parse_label: LabelParser,
    report: ReadReport,
    joiner: str = " ",
    config: str | None = None,
) -> dict[str, TextSplit]:
    """A Hugging Face dataset (hub name or local copy): train, and validation/test if present.

    `config` names the dataset's configuration (`cnn_dailymail` has "3.0.0"). A `ClassLabel`
    label feature's names go to `report.label_names`.
    """
    text_columns = _columns(text_column)
    import datasets

    try:
        loaded = datasets.load_dataset(name, config)
    except (ConnectionError, FileNotFoundError, ValueError) as error:
        raise FileNotFoundError(
            f"Could not load the Hugging Face dataset {name!r}: {error}. Offline, it must be in "
            "the datasets cache (HF_HOME) or a local folder in the hub's layout."
        ) from error
    splits = {}
    for split in ("train", "validation", "test"):
        if split not in loaded:
            continue
        part = loaded[split]
        _check_columns(f"{name} [{split}]", part.column_names, [*text_columns, label_column])
        names = getattr(part.features[label_column], "names", None)
        if names and report.label_names is None:
            report.label_names = list(names)
        data = TextSplit([], [], [])
        for i, row in enumerate(part.select_columns([*text_columns, label_column])):
            source = f"{name}[{split}][{i}]"
            label = parse_label(row[label_column], source)
            add_text(data, _join(row, text_columns, joiner), label, source, report)
        splits["val" if split == "validation" else split] = data
    if "train" not in splits:
        raise ValueError(f"{name} has no train split (splits: {list(loaded)}).")
    return splits


def read_texts(
    path: Path,
    text_column: TextColumns,
    label_column: str,
    parse_label: LabelParser,
    class_names: Sequence[str],
    joiner: str = " ",
) -> TextSplit:
    """Texts to predict: a table, a text file with one text per line, or a folder of .txt files.

    A table keeps its labels when it has `label_column`; a folder of class sub-folders (e.g. an
    aclImdb `test/` with `neg/` and `pos/`) gives them by folder. Empty texts are counted.
    """
    report = ReadReport()
    if path.is_dir():
        files = text_files(path, report, recursive=True)
        if not files:
            raise FileNotFoundError(f"predict_path {path} holds no .txt files.")
        data = TextSplit([], [], [])
        labels = labels_from_folders(files, path, class_names)
        for file, label in zip(files, labels, strict=True):
            add_text(data, decode(file.read_bytes(), str(file), report), label, str(file), report)
    elif path.suffix.lower() in TABLE_SUFFIXES:
        data = read_table(
            path, text_column, label_column, parse_label, report, labelled=False, joiner=joiner
        )
    elif path.is_file():
        data = TextSplit([], [], [])
        lines = split_lines(decode(path.read_bytes(), str(path), report))
        for number, line in enumerate(lines, start=1):
            add_text(data, line, -1, f"{path}:{number}", report)
    else:
        raise FileNotFoundError(f"predict_path {path} does not exist.")
    report.warn(str(path))
    if not data.texts:
        raise ValueError(f"predict_path {path} holds no texts.")
    return data


class TextsDataset(Dataset):
    """Raw texts to predict, with their ids and labels (-1 when unknown); the task tokenises."""

    def __init__(self, data: TextSplit) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data.texts)

    def __getitem__(self, index: int) -> dict[str, Any]:
        data = self.data
        return {"text": data.texts[index], "id": data.ids[index], "label": data.labels[index]}


def collate_texts(samples: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """A batch of `TextsDataset` samples: lists under "text", "id" and "label"."""
    return {key: [s[key] for s in samples] for key in samples[0]}
