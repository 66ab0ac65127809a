"""Cat segmentation data: VOC-style folders, Oxford-IIIT Pet, or a procedural demo.

Masks are class-index images: 0 background, 1.. the classes, 255 ignored (VOC's object border).
Images and masks are read lazily; the data audit scans the masks once to say what it found.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from datamodules.common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    check_model_classes,
    check_val_split,
    make_loader,
)
from datamodules.images import Skipped, eval_transform, load_image, readable_images
from datamodules.masks import (
    MaskFormat,
    check_values,
    decide_format,
    read_mask,
    scan_pairs,
)
from datamodules.segmentation_folders import (
    SegmentationSource,
    SegmentationSplit,
    detect_layout,
    hold_out,
    oxford_pet_pairs,
    print_audit,
    voc_pairs,
)

CLASS_NAMES = ("background", "cat")


class CatSegmentationDataModule(LightningDataModule):
    """Images with class-index masks: a VOC-style folder, Oxford-IIIT Pet, or the demo.

    Batches are dicts: "image" (B, 3, S, S) normalised, "mask" (B, S, S) int64 class ids with
    255 ignored, "name" (file paths). Prediction batches add "original" (the uint8 images at
    their own size) and have "mask" only when predicting a labelled split.

    Args:
        root: Data folder; unset for the synthetic demo. A VOC-style folder (`JPEGImages/`,
            `SegmentationClassPNG/` or `SegmentationClass/`, optional
            `ImageSets/Segmentation/{train,val,test}.txt` and `class_names.txt`), e.g. the
            output of `zoo prepare labelme`; or a downloaded Oxford-IIIT Pet (the folder holding
            `oxford-iiit-pet/`).
        layout: "voc", "oxford_pet", or "auto" (tell from the folder).
        class_names: Class names by mask value, background first; default `class_names.txt` in
            `root`, else background and cat.
        pets: Oxford-IIIT Pet only: keep the cat breeds, the dog breeds, or all pets.
        image_size: Side of the square network input.
        batch_size: Samples per batch.
        num_workers: DataLoader worker processes.
        val_split: Share of train held out for validation when there is no val split.
        seed: Seed of that split and of the demo images.
        predict_path: Image file(s) or folder(s) to segment; unset to predict the val split.
        crop_scale: Area range of the random resized crop (training).
        demo_images: Training images in the demo (val and test get a quarter each).
    """

    mean, std = IMAGENET_MEAN, IMAGENET_STD
    num_channels = 3

    def __init__(
        self,
        root: str | None = None,
        layout: Literal["auto", "voc", "oxford_pet"] = "auto",
        class_names: list[str] | None = None,
        pets: Literal["cats", "dogs", "all"] = "cats",
        image_size: int = 256,
        batch_size: int = 16,
        num_workers: int = 0,
        val_split: float = 0.2,
        seed: int = 0,
        predict_path: str | list[str] | None = None,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        demo_images: int = 320,
    ) -> None:
        super().__init__()
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 (the UNet pools 4 times), got {image_size}")
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.root = Path(root).expanduser() if root else None
        self.layout = layout
        self._class_names = list(class_names) if class_names else None
        self.pets = pets
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_split = check_val_split(val_split)
        self.seed = seed
        self.predict_path = predict_path
        self.crop_scale = crop_scale
        self.demo_images = demo_images
        self.datasets: dict[str, Dataset] = {}
        self.model_facts: dict[str, Any] = {}

    def use_model_facts(self, facts: Mapping[str, Any]) -> None:
        """Read data the way a trained model expects (`zoo ... --ckpt_path` calls this).

        `facts` come from the checkpoint: class names, image size, normalisation. Masks must
        have the same classes; predicting `predict_path` reads nothing else.
        """
        self.model_facts = dict(facts)
        self.image_size = facts.get("image_size", self.image_size)
        self.mean = tuple(facts.get("mean", self.mean))
        self.std = tuple(facts.get("std", self.std))

    @property
    def class_names(self) -> list[str]:
        """Class names by mask value (background first); `zoo` links them into the task."""
        return list(self.model_facts.get("class_names") or self.source.class_names)

    @functools.cached_property
    def source(self) -> SegmentationSource:
        """The data, indexed and audited once (masks are scanned, nothing is kept in memory)."""
        if self.root is None:
            return self._read_demo()
        if not self.root.exists():
            raise FileNotFoundError(
                f"Data root {self.root} does not exist. Point --data.init_args.root at a "
                "VOC-style folder or Oxford-IIIT Pet, or leave it unset for demo data."
            )
        layout = detect_layout(self.root) if self.layout == "auto" else self.layout
        skipped = Skipped()
        if layout == "voc":
            pairs = voc_pairs(self.root, skipped)
            names = self._class_names or self._names_file() or list(CLASS_NAMES)
            description = f"VOC-style folder {self.root}"
        else:
            pairs = oxford_pet_pairs(self.root, self.pets)
            names = ["background", {"cats": "cat", "dogs": "dog", "all": "pet"}[self.pets]]
            description = f"Oxford-IIIT Pet ({self.pets}) under {self.root}"
        scans = {
            split: scan_pairs(items, skipped, f"{split} masks")
            for split, items in hold_out(pairs, self.val_split, self.seed).items()
        }
        skipped.report(str(self.root))
        if not any(scan.pairs for scan in scans.values()):
            raise ValueError(
                f"{self.root} has no readable image with a readable mask ({len(skipped)} file(s) "
                "skipped, see the warning above). Add images with masks, or replace the files "
                "the warning names."
            )
        modes = sum((scan.modes for scan in scans.values()), Counter())
        values = {int(v) for scan in scans.values() for vs in scan.values for v in vs}
        if layout == "oxford_pet":
            mask_format = MaskFormat("trimap", 2)
        else:
            mask_format = decide_format(modes, values, len(names))
        for scan in scans.values():
            check_values(scan, mask_format)
        splits = {split: SegmentationSplit.from_scan(scan) for split, scan in scans.items()}
        return SegmentationSource(names, splits, mask_format, description, skipped)

    def _names_file(self) -> list[str] | None:
        path = self.root / "class_names.txt"
        if not path.is_file():
            return None
        try:  # utf-8-sig: files saved by Windows editors often start with a BOM
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not UTF-8 text ({error}). Save it as UTF-8.") from error
        return [line.strip() for line in text.splitlines() if line.strip()]

    def _read_demo(self) -> SegmentationSource:
        from datamodules.demo.cats import make_cats

        splits = {}
        counts = (self.demo_images, self.demo_images // 4, self.demo_images // 4)
        for offset, (split, count) in enumerate(zip(("train", "val", "test"), counts, strict=True)):
            images, masks = make_cats(max(count, 1), self.image_size, self.seed + offset)
            names = [f"demo/{split}/{i:05d}" for i in range(len(images))]
            histogram = np.bincount(masks.ravel(), minlength=256)
            splits[split] = SegmentationSplit(
                names, images, masks, histogram, [(self.image_size,) * 2] * len(names)
            )
        description = "demo: synthetic cats drawn from shapes (not photos), seeded, exact masks"
        return SegmentationSource(list(CLASS_NAMES), splits, MaskFormat("index", 2), description)

    def setup(self, stage: str) -> None:
        """Build the datasets for `stage`; print the data audit once."""
        evaluate = eval_transform(self.image_size, self.mean, self.std)
        if stage == "predict" and self.predict_path:  # only these files: no training data
            self.datasets["predict"] = _ImageDataset(readable_images(self.predict_path), evaluate)
            return
        source = self.source
        if "class_names" in self.model_facts:
            check_model_classes(source.class_names, self.class_names, source.description)
        if not self.datasets:
            print_audit(source)
        train = train_transform(
            image_size=self.image_size, mean=self.mean, std=self.std, crop_scale=self.crop_scale
        )
        for split, data in source.splits.items():
            transform = train if split == "train" else evaluate
            self.datasets[split] = _SegmentationDataset(data, source.mask_format, transform, False)
        if stage == "test" and "test" not in source.splits:
            rank_zero_warn("No test split: testing on the validation split.")
        if stage == "predict":
            self.datasets["predict"] = _SegmentationDataset(
                source.splits["val"], source.mask_format, evaluate, with_original=True
            )

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset, size, workers = self.datasets[split], self.batch_size, self.num_workers
        return make_loader(dataset, size, workers, shuffle, collate, trainer=self.trainer)

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches (the test split, or validation when there is none)."""
        return self._loader("test" if "test" in self.datasets else "val")

    def predict_dataloader(self) -> DataLoader:
        """Batches of `predict_path` images, or of the validation split (with its masks)."""
        return self._loader("predict")


class _SegmentationDataset(Dataset):
    """Samples {"image", "mask", "name"} (+ "original", the uint8 image, for prediction)."""

    def __init__(
        self,
        split: SegmentationSplit,
        mask_format: MaskFormat,
        transform: Callable,
        with_original: bool,
    ) -> None:
        self.split = split
        self.mask_format = mask_format
        self.transform = transform
        self.with_original = with_original

    def __len__(self) -> int:
        return len(self.split.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from torchvision import tv_tensors

        image, mask = self._read(index)
        out_image, out_mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        sample = {
            "image": out_image.as_subclass(torch.Tensor),
            "mask": out_mask.as_subclass(torch.Tensor).long(),
            "name": self.split.names[index],
        }
        if self.with_original:
            sample["original"] = image
        return sample

    def _read(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = self.split.images, self.split.masks
        if isinstance(images, np.ndarray):
            return torch.from_numpy(images[index]).permute(2, 0, 1), torch.from_numpy(masks[index])
        image = load_image(images[index], 3)
        raw, _ = read_mask(masks[index])
        if raw.shape != image.shape[-2:]:  # the files changed since the audit
            raise ValueError(
                f"Mask {masks[index]} is {raw.shape[1]}x{raw.shape[0]} but image {images[index]} "
                f"is {image.shape[2]}x{image.shape[1]}: export the mask at the image's size."
            )
        return image, torch.from_numpy(self.mask_format.decode(raw, masks[index]))


class _ImageDataset(Dataset):
    """Unlabelled images to segment: {"image", "original", "name"}."""

    def __init__(self, paths: Sequence[Path], transform: Callable) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        original = load_image(self.paths[index], 3)
        return {
            "image": self.transform(original),
            "original": original,
            "name": str(self.paths[index]),
        }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images and masks; keep names and the original images (sizes differ) as lists."""
    batch = {key: [sample[key] for sample in samples] for key in samples[0]}
    for key in ("image", "mask"):
        if key in batch:
            batch[key] = torch.stack(batch[key])
    return batch


def train_transform(
    *, image_size: int, mean: Sequence[float], std: Sequence[float], crop_scale: Sequence[float]
) -> Callable:
    """Joint image + mask augmentation: random resized crop and flip, then colour jitter.

    Masks are resized with nearest neighbour; jitter, scaling and normalising touch the image only.
    """
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=tuple(crop_scale), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.02),
            v2.ToDtype(torch.float32, scale=True),  # images only; masks keep their class ids
            v2.Normalize(list(mean), list(std)),
        ]
    )
