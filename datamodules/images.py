"""Reading images from disk, shared by the image datamodules and tasks.

Class-per-folder indexing with counted skips, decoding to tensors, the eval preprocessing, and
the datasets over images in memory or in files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import Dataset

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

    def admit(self, path: Path) -> tuple[tuple[int, int], str] | None:
        """`image_info` of an image file; a non-image or unreadable file is counted, None.

        Raises:
            ValueError: The image is larger than PIL will decode.
        """
        if not is_image_file(path):
            self.not_image.append(path)
            return None
        info = image_info(path)
        if info is None:
            self.unreadable.append(path)
        return info

    def report(self, where: str) -> None:
        """Warn once with counts and the first few paths of each kind."""
        for reason, paths in (("non-image", self.not_image), ("unreadable", self.unreadable)):
            if paths:
                shown = ", ".join(str(p) for p in paths[:5]) + (" ..." if len(paths) > 5 else "")
                rank_zero_warn(f"Skipped {len(paths)} {reason} file(s) in {where}: {shown}")


def image_info(path: Path) -> tuple[tuple[int, int], str] | None:
    """(width, height) and PIL mode of an image from its header, or None when it is unreadable.

    Raises:
        ValueError: The image is larger than PIL will decode (a possible decompression bomb).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            image.verify()
    except Image.DecompressionBombError as error:
        raise ValueError(
            f"{path}: {error} Downscale or tile the image, or remove it from the data."
        ) from error
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
            info = index.skipped.admit(path)
            if info is None:
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
    except (OSError, Image.DecompressionBombError) as error:
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
        files += [path for path in candidates if skipped.admit(path)]
    skipped.report(f"predict_path {predict_path}")
    if not files:
        raise ValueError(
            f"predict_path {predict_path} holds no readable image {IMAGE_EXTENSIONS} "
            f"({len(skipped)} file(s) skipped)."
        )
    return files
