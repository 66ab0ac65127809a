"""One writer for every task's predictions: `<run dir>/predictions.csv` or `.jsonl`, plus files."""

from __future__ import annotations

import csv
import heapq
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from callbacks.media import run_dir


class PredictionWriter(BasePredictionWriter):
    """Write the rows `predict_step` returns to `<run dir>/predictions.csv`, batch by batch.

    A `filename` ending in `.jsonl` writes one JSON object per row instead (long texts such as
    summaries read better there, and rows may differ in keys).

    A task's `predict_step` returns a list of dicts, one per sample, with the same keys. Values
    that are PIL images (masks, overlays) are saved as PNGs under `<run dir>/predictions/` and the
    row stores their relative path. Under several processes each rank writes its rows, tagged
    with their dataset index, to a part file; at the end rank zero merges the parts into the one
    file in dataset order, every input exactly once, and deletes them. Works the same from
    `zoo predict` and from `Trainer.predict`.

    Args:
        output_dir: Folder for the outputs; default the run directory of the trainer.
        filename: Name of the CSV file.
    """

    def __init__(self, output_dir: str | None = None, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="batch")
        if not filename.endswith((".csv", ".jsonl")):
            raise ValueError(f"filename must end with .csv or .jsonl, got {filename!r}")
        self.output_dir = output_dir
        self.filename = filename
        self.path: Path | None = None
        self._handle: IO[str] | None = None
        self._writer: csv.DictWriter | None = None
        self._rows = 0
        self._files: set[str] = set()  # names written this run, so equal stems never overwrite
        self._shared = False  # several processes write: part files, merged at the end

    @override
    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Every rank runs this hook: rank zero's run folder is broadcast to all.
        folder = Path(self.output_dir or trainer.strategy.broadcast(run_dir(trainer)))
        self.path = folder / self.filename
        self._shared = trainer.world_size > 1
        folder.mkdir(parents=True, exist_ok=True)
        path = _part(self.path, trainer.global_rank) if self._shared else self.path
        self._handle = path.open("w", newline="")
        self._writer, self._rows, self._files = None, 0, set()

    @override
    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if self._handle is None:  # predict loop started before our hook, e.g. a re-run
            self.on_predict_start(trainer, pl_module)
        rows = [self._save_files(row) for row in prediction]
        if not rows:
            return
        if self._shared:  # the dataset index orders and de-duplicates the merged file
            indices = batch_indices or range(self._rows, self._rows + len(rows))
            rows = [{INDEX: i, **row} for i, row in zip(indices, rows, strict=True)]
        if self.filename.endswith(".jsonl"):
            self._handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            self._rows += len(rows)
            return
        if self._writer is None:
            self._writer = csv.DictWriter(self._handle, fieldnames=list(rows[0]))
            self._writer.writeheader()
        self._writer.writerows(rows)
        self._rows += len(rows)

    def _save_files(self, row: dict[str, Any]) -> dict[str, Any]:
        """Replace PIL images in a row by the relative path of the PNG they are saved to."""
        out = {}
        for key, value in row.items():
            if hasattr(value, "save") and hasattr(value, "mode"):  # a PIL image
                stem = Path(str(row.get("path", f"sample{self._rows}"))).stem
                name, n = f"{stem}_{key}.png", 1
                while name in self._files or not self._claim(name):  # a/cat.jpg and b/cat.jpg
                    name, n = f"{stem}-{n}_{key}.png", n + 1
                self._files.add(name)
                relative = Path("predictions") / name
                (self.path.parent / relative).parent.mkdir(parents=True, exist_ok=True)
                value.save(self.path.parent / relative)
                value = relative.as_posix()
            elif isinstance(value, float):
                value = round(value, 6)
            out[key] = value
        return out

    def _claim(self, name: str) -> bool:
        """Under several processes, create the file first so no other rank takes its name."""
        if not self._shared:
            return True
        path = self.path.parent / "predictions" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    @override
    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        if self._shared:
            trainer.strategy.barrier()  # every part is complete before rank zero reads it
            if trainer.is_global_zero:
                parts = [_part(self.path, rank) for rank in range(trainer.world_size)]
                self._rows = _merge(parts, self.path)
        noun = "prediction" if self._rows == 1 else "predictions"
        rank_zero_info(f"Wrote {self._rows} {noun} to {self.path}")


INDEX = "_index"  # the dataset index of a row in a rank's part file


def _part(path: Path, rank: int) -> Path:
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def _read(part: Path) -> Iterator[dict[str, Any]]:
    with part.open(newline="") as handle:
        if part.suffix == ".jsonl":
            yield from map(json.loads, handle)
        else:
            yield from csv.DictReader(handle)


def _merge(parts: list[Path], path: Path) -> int:
    """Merge the ranks' part files into `path` by dataset index, each index once; delete them.

    Each part is in index order (the distributed sampler deals indices out in order), so a
    streaming merge keeps memory flat however many rows there are.
    """
    rows = heapq.merge(*map(_read, parts), key=lambda row: int(row[INDEX]))
    seen: set[int] = set()
    with path.open("w", newline="") as handle:
        writer = None
        for row in rows:
            index = int(row.pop(INDEX))
            if index in seen:  # a sampler that pads with repeats
                continue
            seen.add(index)
            if path.suffix == ".jsonl":
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                continue
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
    for part in parts:
        part.unlink()
    return len(seen)
