"""Segmentation sources on disk: VOC-style folders and Oxford-IIIT Pet, their splits and audit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lightning.pytorch.utilities import rank_zero_only

from datamodules.common import size_summary, split_indices
from datamodules.images import Skipped, is_image_file
from datamodules.masks import IGNORE_INDEX, MaskFormat, MaskScan

MASK_FOLDERS = ("SegmentationClassPNG", "SegmentationClass")  # labelme2voc's, then VOC's own


def hold_out(
    pairs: dict[str, list[tuple[Path, Path]]], val_split: float, seed: int
) -> dict[str, list[tuple[Path, Path]]]:
    """Without a val split, hold out `val_split` of train, seeded."""
    if "val" not in pairs:
        train, val = split_indices(len(pairs["train"]), val_split, seed)
        pairs["val"] = [pairs["train"][i] for i in val]
        pairs["train"] = [pairs["train"][i] for i in train]
    return pairs


def voc_pairs(root: Path, skipped: Skipped) -> dict[str, list[tuple[Path, Path]]]:
    """(image, mask) pairs per split of `root/JPEGImages` + `root/SegmentationClassPNG`.

    Split by `root/ImageSets/Segmentation/{train,val,test}.txt` when present.
    """
    images_dir = root / "JPEGImages"
    masks_dir = next((root / name for name in MASK_FOLDERS if (root / name).is_dir()), None)
    if not images_dir.is_dir() or masks_dir is None:
        raise FileNotFoundError(
            f"{root} is not a VOC-style folder: expected {root}/JPEGImages/ and "
            f"{root}/SegmentationClassPNG/ (a mask PNG per image, same file stem)."
        )
    files = sorted(p for p in images_dir.iterdir() if p.is_file())
    skipped.not_image += [path for path in files if not is_image_file(path)]
    why = "images and masks are paired by file stem"
    images = by_stem((path for path in files if is_image_file(path)), why)
    masks = by_stem(sorted(p for p in masks_dir.iterdir() if p.is_file() and is_image_file(p)), why)
    lists = root / "ImageSets" / "Segmentation"
    if (lists / "train.txt").is_file():
        stems = {
            split: _read_list(lists / f"{split}.txt")
            for split in ("train", "val", "test")
            if (lists / f"{split}.txt").is_file()
        }
        unknown = [(split, s) for split, names in stems.items() for s in names if s not in images]
        if unknown:
            split, stem = unknown[0]
            raise FileNotFoundError(
                f"{lists / (split + '.txt')} lists {stem!r} (and {len(unknown) - 1} more), which "
                f"has no image in {images_dir}. Fix the list or add the image."
            )
    else:
        stems = {"train": sorted(images)}
    missing = [images[s] for names in stems.values() for s in names if s not in masks]
    if missing:
        raise FileNotFoundError(
            f"No mask for {len(missing)} image(s), e.g. {missing[0]}: expected "
            f"{masks_dir / (missing[0].stem + '.png')}. Add the masks, remove those images, or "
            f"list the images to use in {lists}/train.txt (and val.txt)."
        )
    return {split: [(images[s], masks[s]) for s in names] for split, names in stems.items()}


def by_stem(paths: Iterable[Path], why: str) -> dict[str, Path]:
    """Files by stem; two files with one stem are an error, `why` says why stems must differ."""
    found: dict[str, Path] = {}
    for path in paths:
        if path.stem in found:
            raise ValueError(
                f"{found[path.stem]} and {path} share the name {path.stem!r}; {why}, so rename "
                "or remove one of them."
            )
        found[path.stem] = path
    return found


def _read_list(path: Path) -> list[str]:
    """The stems listed in an `ImageSets/Segmentation/<split>.txt` file."""
    try:  # utf-8-sig: lists saved by Windows editors often start with a BOM
        return path.read_text(encoding="utf-8-sig").split()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error}). Save it as UTF-8.") from error


PETS = {"cats": 0, "dogs": 1}  # the SPECIES column of Oxford-IIIT Pet's lists, minus one


def oxford_pet_pairs(root: Path, pets: str) -> dict[str, list[tuple[Path, Path]]]:
    """(image, trimap) pairs of Oxford-IIIT Pet (trainval -> train, test), filtered by species."""
    from torchvision.datasets import OxfordIIITPet

    parent = root if (root / "oxford-iiit-pet").is_dir() else root.parent
    pairs = {}
    for split, name in (("train", "trainval"), ("test", "test")):
        try:
            data = OxfordIIITPet(parent, split=name, target_types="segmentation", download=False)
        except (RuntimeError, FileNotFoundError) as error:
            if split == "test" and isinstance(error, FileNotFoundError):
                continue  # no test list: train and val only
            raise FileNotFoundError(
                f"No Oxford-IIIT Pet under {root}: expected oxford-iiit-pet/images/*.jpg and "
                "oxford-iiit-pet/annotations/ (trimaps/, trainval.txt, test.txt). Download it "
                "once, e.g. torchvision.datasets.OxfordIIITPet(root, download=True)."
            ) from error
        # torchvision keeps the file lists and species (0 cat, 1 dog) in private fields.
        keep = [i for i, s in enumerate(data._bin_labels) if pets == "all" or s == PETS[pets]]
        pairs[split] = [(data._images[i], data._segs[i]) for i in keep]
    return pairs


def detect_layout(root: Path) -> str:
    """The layout of `root`, "voc" or "oxford_pet"; fails saying what it expected to find."""
    if (root / "JPEGImages").is_dir():
        return "voc"
    if (root / "oxford-iiit-pet").is_dir() or (root / "annotations" / "trimaps").is_dir():
        return "oxford_pet"
    if next(root.glob("*.json"), None) or next(root.glob("*/*.json"), None):
        raise ValueError(
            f"{root} holds labelme JSON files: convert them first with `zoo prepare labelme "
            f"{root} OUT --labels labels.txt`, then set root to OUT."
        )
    raise FileNotFoundError(
        f"Cannot tell the layout of {root}. Expected a VOC-style folder (JPEGImages/, "
        "SegmentationClassPNG/, optional ImageSets/Segmentation/{train,val}.txt) or Oxford-IIIT "
        "Pet (oxford-iiit-pet/images/, oxford-iiit-pet/annotations/trimaps/)."
    )


@rank_zero_only
def print_audit(source: SegmentationSource) -> None:
    """Images and pixel shares per class and split, and how the masks were read."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Data audit: {source.description}", title_justify="left")
    table.add_column("split")
    table.add_column("images", justify="right")
    for name in source.class_names:
        table.add_column(f"{name} px", justify="right")
    table.add_column("ignored px", justify="right")
    lut = source.mask_format.lut
    for split, data in source.splits.items():
        ids = np.bincount(lut.clip(min=0), weights=data.histogram, minlength=256)
        total = max(ids.sum(), 1)
        shares = [f"{ids[c] / total:.1%}" for c in range(len(source.class_names))]
        table.add_row(split, str(len(data.names)), *shares, f"{ids[IGNORE_INDEX] / total:.1%}")
    console = Console()
    console.print(table)
    console.print(f"masks: {source.mask_format.describe()}")
    sizes = [size for data in source.splits.values() for size in data.sizes]
    if sizes:
        console.print(size_summary(sizes))
    if len(source.skipped):
        console.print(f"skipped {len(source.skipped)} file(s) (see the warnings above)")


@dataclass
class SegmentationSplit:
    """One split: image and mask files read lazily, or arrays in memory (the demo)."""

    names: list[str]
    images: list[Path] | np.ndarray  # paths, or (N, H, W, 3) uint8
    masks: list[Path] | np.ndarray  # paths, or (N, H, W) uint8 class ids
    histogram: np.ndarray  # raw mask values (256,) over the split, for the audit
    sizes: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def from_scan(cls, scan: MaskScan) -> SegmentationSplit:
        """A file-backed split from what the audit kept."""
        images = [image for image, _ in scan.pairs]
        masks = [mask for _, mask in scan.pairs]
        return cls([str(p) for p in images], images, masks, scan.histogram, scan.sizes)


@dataclass
class SegmentationSource:
    """What reading a segmentation source yields: classes, splits, how masks decode."""

    class_names: list[str]
    splits: dict[str, SegmentationSplit]
    mask_format: MaskFormat
    description: str
    skipped: Skipped = field(default_factory=Skipped)
