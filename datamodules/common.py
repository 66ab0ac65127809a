"""Data helpers every datamodule shares: loaders, seeded splits, class checks, the audit table."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.data import DataLoader, Dataset

from datamodules.samplers import ShuffleSampler

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def check_model_classes(
    data_classes: Sequence[str], model_classes: Sequence[str], where: str
) -> None:
    """Fail unless the data's classes are the checkpoint's, in the same order (label ids).

    Raises:
        ValueError: Naming both lists.
    """
    if list(data_classes) != list(model_classes):
        raise ValueError(
            f"The checkpoint's model knows the classes {list(model_classes)}, but {where} has "
            f"{list(data_classes)}. Evaluate it on data with the same classes (same names, same "
            "order), or train a new model on this data."
        )


def ranks(trainer: Trainer | None) -> tuple[int, int]:
    """(world size, global rank) of `trainer`; (1, 0) without one (a datamodule used alone)."""
    return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    train: bool = False,
    collate_fn: Callable | None = None,
    sampler: ShuffleSampler | None = None,
    trainer: Trainer | None = None,
) -> DataLoader:
    """The zoo's DataLoader; workers persist across epochs.

    Training draws its order from a `ShuffleSampler` (or the given one, e.g. length buckets)
    seeded with the run's seed, drops a last partial batch, and resumes mid-epoch
    (`ResumableLoader`). Evaluation under several processes gives each rank its own slice of
    the samples, each sample exactly once: Lightning's default `DistributedSampler` would pad
    the last slice with repeats, which count twice in metrics.
    """
    world = ranks(trainer)
    if train:
        # `seed_everything` (the config's `seed_everything`) exports the run's seed
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = sampler or ShuffleSampler(len(dataset), seed, *world)
        return ResumableLoader(
            dataset,
            trainer,
            seed,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            collate_fn=collate_fn,
            drop_last=len(sampler) > batch_size,
        )
    if sampler is None and world[0] > 1:
        sampler = UnrepeatedDistributedSampler(dataset, *world, shuffle=False)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        collate_fn=collate_fn,
    )


class ResumableLoader(DataLoader):
    """A training DataLoader that a run resumed mid-epoch continues where it stopped.

    Lightning keeps `state_dict()` in every checkpoint and hands it back to `load_state_dict`
    when it resumes mid-epoch: how many samples this epoch's finished batches took, so the
    sampler skips them (same epoch, same order: `ShuffleSampler`). The trainer says where
    training stands. Its own `generator` seeds worker processes, so making an iterator draws
    nothing from the global generators, which `LastCheckpoint` restores for exact resumes.
    """

    def __init__(self, dataset: Dataset, trainer: Trainer | None, seed: int, **kwargs: Any) -> None:
        super().__init__(dataset, generator=torch.Generator().manual_seed(seed), **kwargs)
        self.trainer = trainer

    def __iter__(self) -> Iterator:
        # Before the iterator: workers take indices at once. Lightning may have swapped the
        # sampler for a SequentialSampler (`overfit_batches`), which has no epochs.
        if self.trainer is not None and isinstance(self.sampler, ShuffleSampler):
            self.sampler.set_epoch(self.trainer.current_epoch)
        return super().__iter__()

    def state_dict(self) -> dict[str, Any]:
        """The samples taken by this epoch's finished batches."""
        done = 0
        if self.trainer is not None:
            done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"samples_done": done * self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Start the next pass after the samples already trained on."""
        if isinstance(self.sampler, ShuffleSampler):
            self.sampler.resume_at(state["samples_done"])


def check_val_split(val_split: float) -> float:
    """`val_split` if it is a share strictly between 0 and 1; datamodules check it at once."""
    if not 0.0 < val_split < 1.0:
        raise ValueError(
            f"val_split must be in (0, 1), got {val_split}: it is the share of the training data "
            "held out for validation when the data has no validation split (e.g. 0.2)."
        )
    return val_split


def split_indices(n: int, val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) index split with a seeded generator (unlabelled data)."""
    check_val_split(val_split)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * val_split))
    return sorted(order[n_val:]), sorted(order[:n_val])


def stratified_split(
    labels: Sequence[int], val_split: float, seed: int
) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) index split that holds out `val_split` of every class.

    Every class with two or more examples keeps at least one in each split, so small datasets
    still validate every class; a class seen once stays in train.
    """
    check_val_split(val_split)
    generator = torch.Generator().manual_seed(seed)
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_class.setdefault(label, []).append(index)
    train, val = [], []
    for label in sorted(by_class):
        members = by_class[label]
        order = torch.randperm(len(members), generator=generator).tolist()
        n_val = min(max(1, round(len(members) * val_split)), len(members) - 1)
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    return sorted(train), sorted(val)


def labels_from_folders(
    files: Sequence[Path], predict_path: str | Path | Sequence[str | Path], classes: Sequence[str]
) -> list[int]:
    """Labels of files to predict when they sit in class folders: `predict_path/<class>/...`.

    Only for one folder whose every file is inside a sub-folder named after a known class (a
    validation tree); otherwise every label is -1 (unknown).
    """
    unknown = [-1] * len(files)
    if not isinstance(predict_path, (str, Path)) or not Path(predict_path).is_dir():
        return unknown
    index = {name: i for i, name in enumerate(classes)}
    labels = []
    for path in files:
        parts = path.relative_to(predict_path).parts
        if len(parts) < 2 or parts[0] not in index:
            return unknown
        labels.append(index[parts[0]])
    return labels


def print_audit(
    title: str,
    class_names: Sequence[str],
    split_labels: dict[str, Sequence[int]],
    image_sizes: Sequence[tuple[int, int]] = (),
    notes: Sequence[str] = (),
) -> None:
    """Print what was found (class counts per split, image sizes) and fail on empty data.

    Raises:
        ValueError: A split is empty, or the training split lacks a class.
    """
    for split, labels in split_labels.items():
        if len(labels) == 0:
            raise ValueError(f"{title}: the {split} split is empty. Check `root` and `val_split`.")
    train = Counter(split_labels.get("train", []))
    missing = [
        name for i, name in enumerate(class_names) if "train" in split_labels and not train[i]
    ]
    if missing:
        raise ValueError(f"{title}: no training examples for class(es) {missing}. Add some.")
    lines = list(notes)
    if image_sizes:
        lines.append(size_summary(image_sizes))
    _print_table(title, class_names, split_labels, lines)


def size_summary(sizes: Sequence[tuple[int, int]]) -> str:
    """One audit line: the range of image sizes and the most common one."""
    ((common, times),) = Counter(sizes).most_common(1)
    widths, heights = zip(*sizes, strict=True)
    return (
        f"image sizes (w x h): {min(widths)}-{max(widths)} x {min(heights)}-{max(heights)}, "
        f"most common {common[0]}x{common[1]} ({times} image{'' if times == 1 else 's'})"
    )


@rank_zero_only
def _print_table(
    title: str,
    class_names: Sequence[str],
    split_labels: dict[str, Sequence[int]],
    lines: Sequence[str],
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Data audit: {title}", title_justify="left")
    table.add_column("class")
    counts = {split: Counter(labels) for split, labels in split_labels.items()}
    for split, labels in split_labels.items():
        table.add_column(f"{split} ({len(labels)})", justify="right")
    for i, name in enumerate(class_names):
        table.add_row(name, *(str(counts[split][i]) for split in split_labels))
    console = Console()
    console.print(table)
    for line in lines:
        console.print(line)
