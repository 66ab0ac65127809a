"""The base of the image-classification datamodules (face expression, logo)."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from datamodules.common import (
    check_model_classes,
    check_val_split,
    labels_from_folders,
    make_loader,
    print_audit,
    stratified_split,
)
from datamodules.images import (
    ImageFileDataset,
    TensorImageDataset,
    class_folders,
    eval_transform,
    index_image_folder,
    readable_images,
)


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
    `(images, labels, names)`; labels are -1 for unlabelled prediction inputs. A subclass's
    docstring documents only its own arguments: `--help` takes the others from here.

    Args:
        root: Data location; None uses the synthetic demo source.
        batch_size: Images per batch.
        num_workers: DataLoader worker processes.
        val_split: Fraction of each class of train held out when the data has no val split.
        seed: Seed for the split and the demo generator.
        predict_path: Image file(s) or folder to predict on; default the validation split. A
            folder of class sub-folders (e.g. `val/`) gives the true labels too.
        image_size: Side of the square model input.
        demo_per_class: Demo training images per class (val and test get a quarter each).
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
        self.val_split = check_val_split(val_split)
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
        """Class-per-folder images: `root/train/<class>/*`, optional `root/val/`, `root/test/`.

        Without `train/`, `val/` or `test/`, `root/<class>/*` itself is the training split
        (torchvision `ImageFolder`'s layout, as Flickr Logos and many downloads ship).
        """
        folders = {split: self.root / split for split in ("train", "val", "test")}
        if not any(folder.is_dir() for folder in folders.values()):
            folders["train"] = self.root
        names = class_folders(folders["train"])
        if len(names) < 2:
            raise ValueError(
                f"{folders['train']} has only the class folder {names}: a classifier needs at "
                f"least two classes, e.g. train/logo/ and train/others/."
            )
        splits, gray = {}, False
        for split, folder in folders.items():
            if split != "train" and not folder.is_dir():
                continue
            index = index_image_folder(folder, names)
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
        dataset = self.datasets[split]
        return make_loader(
            dataset, self.batch_size, self.num_workers, shuffle, trainer=self.trainer
        )

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
