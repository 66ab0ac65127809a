"""Fuzzed text readers: CSV/TSV/JSONL tables, text files, aclImdb folders, FER2013 CSVs.

Property: a reader either returns data and counts every item it skipped (items in == items out
+ counted skips; nothing dropped silently), or raises one of the zoo's own errors with a
message naming the file. Never an exception from deep inside `csv`, `json`, `datasets` or
numpy. Inputs: missing and extra fields, quotes, commas, tabs, line breaks inside fields, NUL
bytes, non-UTF-8 bytes, a byte-order mark, CRLF line ends, huge fields, U+2028, unknown
labels, wrong types, and raw byte mutations of well-formed files.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamodules.face_expression import FER2013_CLASSES, FaceExpressionDataModule
from datamodules.text_table import (
    ReadReport,
    TextSplit,
    label_parser,
    read_table,
    read_text_folders,
    read_texts,
)
from tasks.cli import USER_ERRORS, raised_on_purpose

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every CI run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CLASSES = ["neg", "pos"]
# Text with what breaks readers: separators, quotes, line breaks, NUL, U+2028, non-ASCII.
NASTY = st.sampled_from([",", ";", "\t", '"', "'", "\n", "\r", "\r\n", "\x00", "\u2028", "é", " "])
TEXT = st.lists(st.one_of(st.text(max_size=8), NASTY), max_size=6).map("".join)
HUGE = st.integers(130_000, 200_000).map(lambda n: "x" * n)  # above csv's default field limit
LABEL = st.sampled_from(["neg", "pos", "0", "1", " Pos ", "NEG"])
UNKNOWN_LABEL = st.sampled_from(["", "2", "maybe", "None"])


def _read_or_our_error(path: Path, read: Callable[[], Any]) -> Any | None:
    """`read()`, or None when it raised one of our errors naming `path`; anything else fails."""
    try:
        return read()
    except USER_ERRORS as caught:
        error = caught
    assert raised_on_purpose(error), f"not our error: {error!r}"
    assert path.name in str(error), f"the message does not name the file: {error}"
    return None


def _check_texts(data: TextSplit) -> None:
    assert len(data.texts) == len(data.labels) == len(data.ids)
    assert all(text.strip() for text in data.texts)
    assert all(label in (-1, 0, 1) for label in data.labels)


def _encode(text: str, bom: bool, crlf: bool, bad_byte: bool) -> bytes:
    """The file's bytes, with an optional BOM, CRLF line ends and one byte that is not UTF-8."""
    data = text.replace("\r\n", "\n").replace("\n", "\r\n") if crlf else text
    raw = data.encode()
    if bad_byte:
        raw = raw[: len(raw) // 2] + b"\xff" + raw[len(raw) // 2 :]
    return (b"\xef\xbb\xbf" if bom else b"") + raw


@st.composite
def csv_rows(draw: st.DrawFn) -> tuple[list[list[str]], int]:
    """Rows of (text, label), some with a missing or an extra field; how many labels are bad."""
    rows, unknown = [], 0
    for _ in range(draw(st.integers(1, 8))):
        text = draw(st.one_of(TEXT, HUGE) if draw(st.integers(0, 9)) == 0 else TEXT)
        label = draw(st.one_of(LABEL, UNKNOWN_LABEL) if draw(st.booleans()) else LABEL)
        shape = draw(st.sampled_from(["ok", "ok", "ok", "extra", "short"]))
        row = {"ok": [text, label], "extra": [text, label, "extra"], "short": [text]}[shape]
        # a short row's label is missing (None); the extra field's row is skipped first
        unknown += shape == "short" or (shape == "ok" and label.strip().lower() not in LABELS)
        rows.append(row)
    return rows, unknown


LABELS = {"neg", "pos", "0", "1"}


@given(
    csv_rows(),
    st.sampled_from([".csv", ".tsv"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
@FUZZ
def test_csv_and_tsv_tables(rows_bad, suffix: str, bom: bool, crlf: bool, bad_byte: bool) -> None:
    rows, unknown = rows_bad
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter="\t" if suffix == ".tsv" else ",")
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"train{suffix}"
        path.write_bytes(_encode(buffer.getvalue(), bom, crlf, bad_byte))
        report = ReadReport()
        data = _read_or_our_error(
            path, lambda: read_table(path, "text", "label", label_parser(CLASSES), report)
        )
    if data is None:  # an unknown label, or the bad byte broke a label or the quoting
        assert unknown or bad_byte or crlf
        return
    _check_texts(data)
    assert len(data.texts) + len(report.empty) + len(report.extra_fields) == len(rows)
    if not bad_byte:
        assert not report.replaced
        kept = [r[0].strip() for r in rows if len(r) == 2 and r[0].strip()]  # texts are stripped
        assert [t.replace("\r\n", "\n") for t in data.texts] == [
            t.replace("\r\n", "\n") for t in kept
        ]


@given(st.binary(min_size=1, max_size=6), st.integers(0, 10_000), st.booleans())
@FUZZ
def test_mutated_csv_bytes(junk: bytes, where: int, tsv: bool) -> None:
    """Any bytes spliced into a well-formed table: data or our error, never a crash."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter="\t" if tsv else ",")
    writer.writerows([["text", "label"], ['a good film, "really"', "pos"], ["bad", "neg"]])
    raw = buffer.getvalue().encode()
    where %= len(raw) + 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("train.tsv" if tsv else "train.csv")
        path.write_bytes(raw[:where] + junk + raw[where:])
        report = ReadReport()
        data = _read_or_our_error(
            path, lambda: read_table(path, "text", "label", label_parser(CLASSES), report)
        )
    if data is not None:
        _check_texts(data)


@given(
    st.lists(
        st.tuples(st.sampled_from(["good", 'a "quoted" word', "x, y", "z"]), LABEL),
        min_size=2,
        max_size=6,
    ),
    st.integers(0, 5),
)
@FUZZ
def test_a_stray_quote_is_an_error_not_merged_rows(rows: list[tuple[str, str]], which: int) -> None:
    """A quote opening a row's text that nothing closes must not swallow the rows after it."""
    lines = ["text,label"]
    for text, label in rows:
        quoted = '"' + text.replace('"', '""') + '"' if '"' in text or "," in text else text
        lines.append(f"{quoted},{label}")
    which = 1 + which % len(rows)
    lines[which] = '"' + lines[which]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.csv"
        path.write_text("\n".join(lines) + "\n")
        report = ReadReport()
        data = _read_or_our_error(
            path, lambda: read_table(path, "text", "label", label_parser(CLASSES), report)
        )
    if data is not None:
        assert len(data.texts) + len(report.empty) + len(report.extra_fields) == len(rows)


JSON_VALUE = st.one_of(TEXT, st.integers(-3, 3), st.none(), st.lists(st.integers(), max_size=2))


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["text", "label", "other"]), JSON_VALUE, max_size=3),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["", "truncate", "array", "bad_byte", "bom", "crlf", "blank"]),
)
@settings(FUZZ, max_examples=50)
def test_jsonl_tables(records: list[dict[str, Any]], damage: str) -> None:
    lines = [json.dumps(record) for record in records]
    if damage == "truncate":
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    elif damage == "array":
        lines.append("[1, 2]")
    elif damage == "blank":
        lines.insert(len(lines) // 2, "")
    text = "\n".join(lines) + "\n"
    raw = _encode(text, damage == "bom", damage == "crlf", damage == "bad_byte")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.jsonl"
        path.write_bytes(raw)
        report = ReadReport()
        data = _read_or_our_error(
            path, lambda: read_table(path, "text", "label", label_parser(CLASSES), report)
        )
    if data is None:
        return
    _check_texts(data)
    assert damage not in ("truncate", "array", "bad_byte")  # those must be reported
    assert len(data.texts) + len(report.empty) == len(records)


@given(st.lists(TEXT, max_size=8), st.booleans(), st.booleans(), st.booleans())
@FUZZ
def test_text_file_one_text_per_line(texts: list[str], bom: bool, crlf: bool, bad: bool) -> None:
    lines = [re.sub(r"[\r\n]", " ", text) for text in texts]  # one text per line
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reviews.txt"
        path.write_bytes(_encode("".join(f"{line}\n" for line in lines), bom, crlf, bad))
        data = _read_or_our_error(path, lambda: read_texts(path, "text", "label", int, CLASSES))
    if data is None:
        assert not any(line.strip() for line in lines) or bad  # "holds no texts"
        return
    _check_texts(data)
    assert len(data.texts) <= max(len(lines), 1)  # the bad byte alone is a line
    if not bad:  # the same texts, in order; the empty ones counted in the warning
        assert data.texts == [line for line in lines if line.strip()]


FILE_NAME = st.sampled_from(["a.txt", "b.TXT", "c.html", "notes", ".DS_Store", "d.txt"])


@given(st.lists(st.tuples(st.sampled_from(CLASSES), FILE_NAME, st.binary(max_size=40)), max_size=8))
@FUZZ
def test_aclimdb_class_folders(files: list[tuple[str, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name in CLASSES:
            (root / "train" / name).mkdir(parents=True)
        written = {}
        for label, name, content in files:
            path = root / "train" / label / name
            path.write_bytes(content)
            written[path] = content
        report = ReadReport()
        read = _read_or_our_error(root, lambda: read_text_folders(root, CLASSES, report))
    assert read is not None
    data = read["train"]
    _check_texts(data)
    hidden = sum(path.name.startswith(".") for path in written)
    counted = len(data.texts) + len(report.empty) + len(report.not_text)
    assert counted + hidden == len(written)  # hidden files (.DS_Store) are not data


PIXELS = 48 * 48


@st.composite
def fer_rows(draw: st.DrawFn) -> tuple[list[list[str]], int]:
    """FER2013 rows, some broken; how many are good."""
    rows, good = [], 0
    for _ in range(draw(st.integers(1, 6))):
        emotion = draw(st.sampled_from(["0", "3", "6", "7", "-1", "x", "", "99999999999999999999"]))
        size = draw(st.sampled_from([PIXELS, PIXELS, PIXELS - 1, 3, 0]))
        values = draw(st.sampled_from(["ok", "ok", "256", "-1", "1.5", "a"]))
        pixels = ["7"] * size
        if size and values != "ok":
            pixels[draw(st.integers(0, size - 1))] = values
        usage = draw(st.sampled_from(["Training", "Training", "PublicTest", "PrivateTest", "x"]))
        extra = draw(st.integers(0, 9)) == 0
        rows.append([emotion, " ".join(pixels), usage] + (["extra"] if extra else []))
        good += (
            emotion in ("0", "3", "6")
            and size == PIXELS
            and values == "ok"
            and usage != "x"
            and not extra
        )
    return rows, good


@given(fer_rows(), st.booleans(), st.booleans(), st.booleans())
@settings(FUZZ, max_examples=80)
def test_fer2013_csv(rows_good, bom: bool, crlf: bool, bad_byte: bool) -> None:
    rows, good = rows_good
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows([["emotion", "pixels", "Usage"], *rows])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fer2013.csv"
        path.write_bytes(_encode(buffer.getvalue(), bom, crlf, bad_byte))
        datamodule = FaceExpressionDataModule(root=str(path))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            source = _read_or_our_error(path, lambda: datamodule._read_fer2013(path))
    skipped = [int(m[1]) for w in caught if (m := re.search(r"Skipped (\d+) FER", str(w.message)))]
    if source is None:  # no usable training row, or the bad byte broke the quoting
        return
    kept = sum(len(split.labels) for split in source.splits.values())
    assert kept + sum(skipped) == len(rows)
    assert kept == good or bad_byte  # the bad byte may land in a number
    for split in source.splits.values():
        assert split.images.dtype == np.uint8
        assert split.images.shape[1:] == (48, 48, 1)
        assert all(0 <= label < len(FER2013_CLASSES) for label in split.labels)
