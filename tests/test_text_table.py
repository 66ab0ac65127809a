"""The shared text-table reader: every format, and every bad input named or counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datamodules.text_table import ReadReport, label_parser, read_table, train_tables

PARSE = label_parser(["world", "sports"], {"sport": 1})


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".parquet":
        import datasets

        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        sep = "\t" if path.suffix == ".tsv" else ","
        lines = [sep.join(rows[0])] + [sep.join(str(v) for v in r.values()) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_format_reads_the_same(tmp_path: Path, suffix: str) -> None:
    rows = [{"text": "Goal!", "label": "Sports"}, {"text": "  ", "label": "world"}]
    rows += [{"text": "Summit", "label": "0"}, {"text": "Match", "label": "sport"}]
    report = ReadReport()
    data = read_table(_write(tmp_path / f"t{suffix}", rows), "text", "label", PARSE, report)
    assert (data.texts, data.labels) == (["Goal!", "Summit", "Match"], [1, 0, 1])
    assert len(report.empty) == 1


def test_unknown_label_and_missing_column_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [{"text": "a", "label": "politics"}])
    with pytest.raises(ValueError, match=r"t\.jsonl\[0\]: unknown label 'politics'.*'sports'"):
        read_table(path, "text", "label", PARSE, ReadReport())
    with pytest.raises(ValueError, match=r"no column\(s\) \['body'\]; its columns are"):
        read_table(path, "body", "label", PARSE, ReadReport())


def test_train_tables_finds_the_splits_and_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist.*train\.jsonl"):
        train_tables(tmp_path / "nowhere", ".jsonl")
    (tmp_path / "val.csv").write_text("text,label\na,b\n")
    with pytest.raises(FileNotFoundError, match=r"no train table: expected train\.csv \(or \.tsv"):
        train_tables(tmp_path, ".csv")
    (tmp_path / "train.jsonl").write_text('{"text": "a", "label": "b"}\n')
    assert train_tables(tmp_path, ".csv") == {
        "train": tmp_path / "train.jsonl",
        "val": tmp_path / "val.csv",
    }
