"""Data helpers shared by the image datamodules: scanning, auditing, loading, transforms."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.utils.data import DataLoader, Dataset, Sampler

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def is_image_file(path: Path) -> bool:
    """Whether the file name has an image extension (case-insensitive)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class Skipped:
    """Files left out of a dataset, by reason, so nothing is dropped silently."""

    not_image: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.not_image) + len(self.unreadable)

    def report(self, where: str) -> None:
        """Warn once with counts and the first few paths of each kind."""
        for reason, paths in (("non-image", self.not_image), ("unreadable", self.unreadable)):
            if paths:
                shown = ", ".join(str(p) for p in paths[:5]) + (" ..." if len(paths) > 5 else "")
                rank_zero_warn(f"Skipped {len(paths)} {reason} file(s) in {where}: {shown}")


def image_info(path: Path) -> tuple[tuple[int, int], str] | None:
    """(width, height) and PIL mode of an image from its header, or None when it is unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None
    return size, mode


@dataclass
class ImageFolderIndex:
    """The images of one class-per-folder split: paths, labels, and header facts for the audit."""

    paths: list[Path]
    labels: list[int]
    sizes: list[tuple[int, int]]
    modes: list[str]
    skipped: Skipped


def class_folders(split_dir: Path) -> list[str]:
    """Sorted class folder names of `split_dir` (`split_dir/<class>/*`), with fix-it errors."""
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"Data folder {split_dir} does not exist. Expected class-per-folder images: "
            f"{split_dir}/<class name>/<image files>. Check `root` (--data.init_args.root)."
        )
    names = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise ValueError(
            f"{split_dir} has no class folders. Put each class's images in its own sub-folder, "
            f"e.g. {split_dir}/smile/img001.jpg."
        )
    return names


def index_image_folder(split_dir: Path, class_names: Sequence[str]) -> ImageFolderIndex:
    """Index `split_dir/<class>/*` for `class_names`; skip unreadable and non-image files.

    Raises:
        ValueError: A class folder is missing or has no readable image, or the split holds a
            folder that is not one of `class_names`.
    """
    unknown = sorted(set(class_folders(split_dir)) - set(class_names))
    if unknown:
        raise ValueError(
            f"{split_dir} has class folder(s) {unknown} that the training split does not have "
            f"({list(class_names)}). Rename or remove them so every split uses the same classes."
        )
    index = ImageFolderIndex([], [], [], [], Skipped())
    for label, name in enumerate(class_names):
        folder = split_dir / name
        found = 0
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        for path in files:
            if not is_image_file(path):
                index.skipped.not_image.append(path)
                continue
            info = image_info(path)
            if info is None:
                index.skipped.unreadable.append(path)
                continue
            index.paths.append(path)
            index.labels.append(label)
            index.sizes.append(info[0])
            index.modes.append(info[1])
            found += 1
        if found == 0 and folder.is_dir():
            raise ValueError(
                f"Class folder {folder} has no readable images. Add images to it or remove the "
                f"folder (every class needs examples in every split)."
            )
    index.skipped.report(str(split_dir))
    return index


def load_image(path: Path | str, channels: int) -> torch.Tensor:
    """Decode an image file to a uint8 tensor (C, H, W) with 1 (grayscale) or 3 (RGB) channels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    except OSError as error:
        raise OSError(
            f"Cannot decode image {path}: {error}. Remove or replace the file."
        ) from error
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Resize to a square, scale to float and normalise: the preprocessing of val/test/predict."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.Resize((image_size, image_size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


class TensorImageDataset(Dataset):
    """Images given as a uint8 array (N, H, W, C) in memory, with labels and display names."""

    def __init__(
        self, images: np.ndarray, labels: Sequence[int], names: Sequence[str], transform: Callable
    ) -> None:
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2)  # (N, C, H, W), a view
        self.labels = list(labels)
        self.names = list(names)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        return self.transform(self.images[index]), self.labels[index], self.names[index]


class ImageFileDataset(Dataset):
    """Image files read lazily; label -1 when unknown (prediction)."""

    def __init__(
        self, paths: Sequence[Path], labels: Sequence[int], channels: int, transform: Callable
    ) -> None:
        self.paths = list(paths)
        self.labels = list(labels)
        self.channels = channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        image = load_image(self.paths[index], self.channels)
        return self.transform(image), self.labels[index], str(self.paths[index])


def readable_images(predict_path: str | Path | Sequence[str | Path]) -> list[Path]:
    """Expand `predict_path` (files, folders searched recursively) to readable image files.

    Non-image and unreadable files are skipped with one warning that counts and names them.

    Raises:
        FileNotFoundError: A given path does not exist.
        ValueError: Nothing readable is left.
    """
    items = [predict_path] if isinstance(predict_path, (str, Path)) else list(predict_path)
    files: list[Path] = []
    skipped = Skipped()
    for item in map(Path, items):
        if item.is_dir():
            candidates = sorted(p for p in item.rglob("*") if p.is_file())
        elif item.is_file():
            candidates = [item]
        else:
            raise FileNotFoundError(f"predict_path {item} does not exist.")
        for path in candidates:
            if not is_image_file(path):
                skipped.not_image.append(path)
            elif image_info(path) is None:
                skipped.unreadable.append(path)
            else:
                files.append(path)
    skipped.report(f"predict_path {predict_path}")
    if not files:
        raise ValueError(
            f"predict_path {predict_path} holds no readable image {IMAGE_EXTENSIONS} "
            f"({len(skipped)} file(s) skipped)."
        )
    return files


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


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    train: bool = False,
    collate_fn: Callable | None = None,
    sampler: Sampler | None = None,
) -> DataLoader:
    """The zoo's DataLoader; workers persist across epochs.

    Training shuffles (unless a `sampler` orders the samples) and drops a last partial batch.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        collate_fn=collate_fn,
        drop_last=train and len(dataset) > batch_size,
    )


def split_indices(n: int, val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, val) index split with a seeded generator (unlabelled data)."""
    if not 0.0 < val_split < 1.0:
        raise ValueError(f"val_split must be in (0, 1), got {val_split}")
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
    if not 0.0 < val_split < 1.0:
        raise ValueError(f"val_split must be in (0, 1), got {val_split}")
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


@dataclass
class Split:
    """One split, either in memory (demo, FER2013) or as image files read lazily."""

    labels: list[int]
    names: list[str]
    images: np.ndarray | None = None  # (N, H, W, C) uint8
    paths: list[Path] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)

    def dataset(self, channels: int, transform: Callable) -> Dataset:
        """The split as a Dataset of (image, label, name)."""
        if self.images is not None:
            return TensorImageDataset(self.images, self.labels, self.names, transform)
        return ImageFileDataset(self.paths, self.labels, channels, transform)

    def subset(self, indices: list[int]) -> Split:
        """The samples at `indices`."""
        return Split(
            labels=[self.labels[i] for i in indices],
            names=[self.names[i] for i in indices],
            images=None if self.images is None else self.images[indices],
            paths=[self.paths[i] for i in indices] if self.paths else [],
            sizes=[self.sizes[i] for i in indices] if self.sizes else [],
        )


@dataclass
class ImageSource:
    """What reading a data source yields."""

    class_names: list[str]
    splits: dict[str, Split]
    channels: int  # 1 grayscale, 3 RGB
    description: str


GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


class ImageClassificationDataModule(LightningDataModule):
    """Shared by the image classifiers: class-per-folder reading, splits, audit, loaders.

    A subclass sets `mean`/`std`, implements `read_demo` (its seeded synthetic source), and may
    extend `read_root` (other formats) and `train_transform` (its augmentations). Batches are
    `(images, labels, names)`; labels are -1 for unlabelled prediction inputs.
    """

    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __init__(
        self,
        root: str | None,
        batch_size: int,
        num_workers: int,
        val_split: float,
        seed: int,
        predict_path: str | list[str] | None,
        image_size: int,
        demo_per_class: int,
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser() if root else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_split = val_split
        self.seed = seed
        self.predict_path = predict_path
        self.image_size = image_size
        self.demo_per_class = demo_per_class
        self.datasets: dict[str, Dataset] = {}
        self.model_facts: dict[str, Any] = {}

    def use_model_facts(self, facts: Mapping[str, Any]) -> None:
        """Read data the way a trained model expects (`zoo ... --ckpt_path` calls this).

        `facts` come from the checkpoint: class names, channels, image size, normalisation.
        Images are preprocessed with them, labelled data must have the same classes, and
        predicting `predict_path` reads nothing else.
        """
        self.model_facts = dict(facts)
        self.image_size = facts.get("image_size", self.image_size)
        self.mean = tuple(facts.get("mean", self.mean))
        self.std = tuple(facts.get("std", self.std))

    # Facts the model needs; `zoo` links them into the task's arguments.
    @property
    def class_names(self) -> list[str]:
        """Class names, in label order."""
        return list(self.model_facts.get("class_names") or self.source.class_names)

    @property
    def num_channels(self) -> int:
        """1 for grayscale input, 3 for RGB."""
        return self.model_facts.get("num_channels") or self.source.channels

    @property
    def class_counts(self) -> list[int]:
        """Training images per class (for class weighting)."""
        if self.model_facts.get("class_counts"):
            return list(self.model_facts["class_counts"])
        counts = Counter(self.source.splits["train"].labels)
        return [counts[i] for i in range(len(self.class_names))]

    @functools.cached_property
    def source(self) -> ImageSource:
        """The data, read once: the demo without `root`, else `read_root()`."""
        if self.root is None:
            return self.read_demo()
        if not self.root.exists():
            raise FileNotFoundError(
                f"Data root {self.root} does not exist. Point --data.init_args.root at your "
                f"data (e.g. a folder with train/<class>/ images) or leave it unset for demo data."
            )
        return self.read_root()

    def read_demo(self) -> ImageSource:
        """The built-in synthetic source."""
        raise NotImplementedError(f"{type(self).__name__} has no demo source")

    def demo_source(
        self,
        make: Callable[[int, int, int], tuple[np.ndarray, np.ndarray]],
        class_names: Sequence[str],
        description: str,
    ) -> ImageSource:
        """A demo from `make(num_per_class, size, seed)`: train, and a quarter each for val/test.

        Each split has its own seed (seed, seed + 1, seed + 2), so no image is in two splits.
        """
        splits = {}
        counts = (self.demo_per_class, self.demo_per_class // 4, self.demo_per_class // 4)
        for offset, (split, count) in enumerate(zip(("train", "val", "test"), counts, strict=True)):
            images, labels = make(max(count, 1), self.image_size, self.seed + offset)
            names = [f"demo/{split}/{i:05d}" for i in range(len(labels))]
            splits[split] = Split(labels.tolist(), names, images=images)
        return ImageSource(list(class_names), splits, images.shape[-1], description)

    def read_root(self) -> ImageSource:
        """Class-per-folder images: `root/train/<class>/*`, optional `root/val/`, `root/test/`."""
        names = class_folders(self.root / "train")
        if len(names) < 2:
            raise ValueError(
                f"{self.root / 'train'} has only the class folder {names}: a classifier needs at "
                f"least two classes, e.g. train/logo/ and train/others/."
            )
        splits, gray = {}, False
        for split in ("train", "val", "test"):
            if split != "train" and not (self.root / split).is_dir():
                continue
            index = index_image_folder(self.root / split, names)
            splits[split] = Split(
                index.labels, [str(p) for p in index.paths], paths=index.paths, sizes=index.sizes
            )
            if split == "train":
                gray = all(mode in GRAY_MODES for mode in index.modes)
        return ImageSource(
            names, self.hold_out_val(splits), 1 if gray else 3, f"image folders under {self.root}"
        )

    def hold_out_val(self, splits: dict[str, Split]) -> dict[str, Split]:
        """Without a val split, hold out `val_split` of each class of train with the seed."""
        if "val" not in splits:
            train, val = stratified_split(splits["train"].labels, self.val_split, self.seed)
            splits["val"] = splits["train"].subset(val)
            splits["train"] = splits["train"].subset(train)
        return splits

    def eval_transform(self) -> Callable:
        """Resize (the whole image, no crop), scale, normalise."""
        return eval_transform(self.image_size, self.mean, self.std)

    def train_transform(self) -> Callable:
        """Augmentation; the default is the eval transform."""
        return self.eval_transform()

    def setup(self, stage: str) -> None:
        """Build datasets for `stage` and print the data audit (once per process)."""
        if stage == "predict" and self.predict_path:  # only these files: no training data
            files = readable_images(self.predict_path)
            labels = labels_from_folders(files, self.predict_path, self.class_names)
            self.datasets["predict"] = ImageFileDataset(
                files, labels, self.num_channels, self.eval_transform()
            )
            return
        source = self.source
        if "class_names" in self.model_facts:
            check_model_classes(source.class_names, self.class_names, source.description)
        if not self.datasets:
            print_audit(
                source.description,
                source.class_names,
                {split: s.labels for split, s in source.splits.items()},
                [size for s in source.splits.values() for size in s.sizes],
                notes=[f"input: {self.num_channels} channel(s), resized to {self.image_size}"],
            )
        for split, data in source.splits.items():
            transform = self.train_transform() if split == "train" else self.eval_transform()
            self.datasets[split] = data.dataset(self.num_channels, transform)
        if stage == "test" and "test" not in source.splits:
            rank_zero_warn("No test split: testing on the validation split.")
        if stage == "predict":
            self.datasets["predict"] = self.datasets["val"]

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return make_loader(self.datasets[split], self.batch_size, self.num_workers, shuffle)

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches of (images, labels, names)."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches (the test split, or validation when there is none)."""
        return self._loader("test" if "test" in self.datasets else "val")

    def predict_dataloader(self) -> DataLoader:
        """Batches of `predict_path` images (label -1) or of the validation split."""
        return self._loader("predict")
