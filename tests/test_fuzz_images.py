"""Property-based fuzzing of the image, mask and labelme readers with files built by hypothesis.

Fuzzed: `image_info`, `Skipped.admit`, `load_image`, `index_image_folder`, `readable_images`,
`read_mask`, `scan_pairs` with `decide_format`/`check_values`, `voc_pairs`, the cat segmentation
source, `read_label_file`, `shapes_to_mask` and `convert_labelme`, over real files: valid images
in many modes and formats, truncated, garbled, empty, random or mislabelled files, masks of the
wrong size or with values outside the label set, and broken labelme JSON and labels files.

The property, for each reader: it returns data and counts every skipped item (items in = items
returned + counted skips; nothing dropped silently), or it raises one of the zoo's own errors
(a `raise` in our code, a ValueError/OSError/KeyError/TypeError) whose message names the file.
An exception from deep inside PIL, numpy, json or base64 fails the test. What a reader returns is
checked for sanity: sizes, dtypes, channel counts, label ranges.
"""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from datamodules.cat_segmentation import CatSegmentationDataModule
from datamodules.images import (
    Skipped,
    image_info,
    index_image_folder,
    load_image,
    readable_images,
)
from datamodules.masks import (
    IGNORE_INDEX,
    check_values,
    decide_format,
    read_mask,
    scan_pairs,
    voc_colormap,
)
from datamodules.prepare.labelme import (
    _MIN_POINTS,
    BACKGROUND,
    IGNORE_LABEL,
    convert_labelme,
    read_label_file,
    shapes_to_mask,
)
from datamodules.segmentation_folders import MASK_FOLDERS, voc_pairs
from tasks.cli import raised_on_purpose

ZOO_ERRORS = (ValueError, OSError, KeyError, TypeError)  # what `zoo` prints as `zoo: error:`
SOMETIMES = st.sampled_from((False,) * 4 + (True,))  # True in about 1 draw of 5
RARELY = st.sampled_from((False,) * 30 + (True,))  # about 1 in 25


def fuzz(max_examples: int) -> settings:
    """Deterministic hypothesis settings: the same examples on every run, no example database."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def assert_ours(error: BaseException, names: Sequence[str | Path]) -> None:
    """`error` is one the zoo raises on purpose, and its message names one of `names`."""
    assert isinstance(error, ZOO_ERRORS), repr(error)
    assert raised_on_purpose(error), f"not raised on purpose: {error!r}"
    text = str(error)
    event(f"raised {type(error).__name__}: {re.sub(r'[^ ]*zoo-fuzz-[^ ]*', '<path>', text)[:60]}")
    assert any(Path(name).name in text for name in names), f"{text!r} names none of {names}"


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh temporary folder per hypothesis example (a pytest tmp_path is per test)."""
    with tempfile.TemporaryDirectory(prefix="zoo-fuzz-") as folder:
        yield Path(folder)


@contextmanager
def quiet() -> Iterator[list[warnings.WarningMessage]]:
    """Record warnings (skips are reported as warnings) instead of printing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def skips_warned(caught: list[warnings.WarningMessage]) -> int:
    """Files counted by the `Skipped {n} ... file(s)` warnings."""
    texts = [str(w.message) for w in caught]
    return sum(int(text.split()[1]) for text in texts if text.startswith("Skipped "))


# --- building files ---------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str) -> bytes:
    """The bytes of `image` saved in format `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def pixels(width: int, height: int) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 pattern."""
    rows, cols = np.mgrid[:height, :width]
    return np.stack([rows * 37, cols * 59, (rows + cols) * 11], axis=-1).astype(np.uint8)


VALID_KINDS = (
    "png", "jpeg", "bmp", "gif", "tiff", "grey_jpeg", "cmyk_jpeg", "png_16bit", "palette_png",
    "1bit_png", "la_png", "rgba_png", "png_named_jpg",
)  # fmt: skip
BROKEN_KINDS = ("truncated", "garbled", "empty", "random", "text_named_png", "not_image")
KINDS = VALID_KINDS * 3 + BROKEN_KINDS * 2 + ("huge",)  # mostly images, so data comes back


def valid_image(kind: str, width: int, height: int) -> tuple[str, bytes]:
    """(suffix, bytes) of a readable image of `kind` and size."""
    rgb = Image.fromarray(pixels(width, height))
    grey = pixels(width, height)[..., 0]
    made = {
        "png": (".png", rgb, "PNG"),
        "jpeg": (".jpg", rgb, "JPEG"),
        "bmp": (".bmp", rgb, "BMP"),
        "gif": (".gif", rgb, "GIF"),
        "tiff": (".tif", rgb, "TIFF"),
        "grey_jpeg": (".jpeg", rgb.convert("L"), "JPEG"),
        "cmyk_jpeg": (".JPG", rgb.convert("CMYK"), "JPEG"),
        "png_16bit": (".png", Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),  # I;16
        "palette_png": (".png", rgb.quantize(8), "PNG"),
        "1bit_png": (".png", rgb.convert("1"), "PNG"),
        "la_png": (".png", rgb.convert("LA"), "PNG"),
        "rgba_png": (".PNG", rgb.convert("RGBA"), "PNG"),
        "png_named_jpg": (".jpg", rgb, "PNG"),
    }
    suffix, image, fmt = made[kind]
    return suffix, encode(image, fmt)


def huge_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims `width` x `height`: a decompression bomb to PIL."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


class FileSpec(NamedTuple):
    """A file to write: suffix, bytes, and what a reader should make of it."""

    suffix: str
    data: bytes
    expect: str  # "valid" | "maybe" (broken, may still decode) | "unreadable" | "not_image"
    size: tuple[int, int]  # (width, height) it was made at


@st.composite
def image_files(draw: st.DrawFn) -> FileSpec:
    """Valid images in many modes, and broken, empty, random and mislabelled files."""
    kind = draw(st.sampled_from(KINDS))
    size = (draw(st.integers(1, 20)), draw(st.integers(1, 20)))
    if kind in VALID_KINDS:
        return FileSpec(*valid_image(kind, *size), "valid", size)
    if kind in ("truncated", "garbled"):
        suffix, data = valid_image(draw(st.sampled_from(("png", "jpeg", "bmp", "gif"))), *size)
        at = draw(st.integers(0, len(data) - 1))
        if kind == "truncated":
            return FileSpec(suffix, data[:at], "maybe", size)
        noise = draw(st.binary(min_size=1, max_size=16))
        return FileSpec(suffix, data[:at] + noise + data[at + len(noise) :], "maybe", size)
    if kind == "empty":
        return FileSpec(draw(st.sampled_from((".png", ".jpg"))), b"", "unreadable", size)
    if kind == "random":
        return FileSpec(".jpg", draw(st.binary(max_size=64)), "maybe", size)
    if kind == "text_named_png":
        return FileSpec(".png", b"not an image\n", "unreadable", size)
    if kind == "huge":
        return FileSpec(".png", huge_png(30_000, 30_000), "maybe", (30_000, 30_000))
    return FileSpec(draw(st.sampled_from((".txt", ".json", ""))), b"notes\n", "not_image", size)


def write(path: Path, spec: FileSpec) -> Path:
    """Write `spec` at `path` + its suffix."""
    path = path.with_name(path.name + spec.suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(spec.data)
    return path


# --- image readers ----------------------------------------------------------------------------


@fuzz(60)
@given(spec=image_files(), channels=st.sampled_from((1, 3)))
@example(spec=FileSpec(".png", huge_png(30_000, 30_000), "maybe", (30_000, 30_000)), channels=3)
def test_image_info_and_load_image_return_sane_data_or_name_the_file(
    spec: FileSpec, channels: int
) -> None:
    with scratch() as root:
        path = write(root / "image", spec)
        try:
            info = image_info(path)
        except ZOO_ERRORS as error:
            assert_ours(error, [path])
            assert spec.expect == "maybe"
            return
        if spec.expect == "valid":
            assert info is not None
            assert info[0] == spec.size
        if spec.expect == "unreadable":
            assert info is None
        try:
            image = load_image(path, channels)
        except ZOO_ERRORS as error:
            assert_ours(error, [path])
            assert spec.expect != "valid"
            return
        event("returned")
        assert image.dtype == torch.uint8
        assert image.shape[0] == channels
        if info is not None:  # None, yet decodes: a stricter header check, and counted as a skip
            assert tuple(image.shape[1:]) == info[0][::-1]


@fuzz(40)
@given(
    folders=st.lists(
        st.lists(st.tuples(image_files(), st.booleans()), min_size=1, max_size=4),
        min_size=1,
        max_size=3,
    ),
    extra_class=st.booleans(),
)
def test_index_image_folder_counts_every_file(
    folders: list[list[tuple[FileSpec, bool]]], extra_class: bool
) -> None:
    with scratch() as root:
        split = root / "train"
        written: dict[Path, tuple[FileSpec, int]] = {}
        names = [f"class{c}" for c in range(len(folders))]
        for label, (name, files) in enumerate(zip(names, folders, strict=True)):
            (split / name).mkdir(parents=True)
            for i, (spec, nested) in enumerate(files):
                path = write(split / name / ("sub" if nested else "") / f"f{i}", spec)
                written[path] = (spec, label)
        class_names = [*names, "zzz_no_folder"] if extra_class else names
        try:
            with quiet():
                index = index_image_folder(split, class_names)
        except ZOO_ERRORS as error:
            assert_ours(error, [*written, *(split / name for name in names)])
            return
        event("returned")
        assert len(index.paths) + len(index.skipped) == len(written)
        assert set(index.paths) | set(index.skipped.not_image + index.skipped.unreadable) == set(
            written
        )
        assert len(index.labels) == len(index.sizes) == len(index.modes) == len(index.paths)
        for path, label, size in zip(index.paths, index.labels, index.sizes, strict=True):
            spec, expected_label = written[path]
            assert label == expected_label
            assert spec.expect in ("valid", "maybe")
            if spec.expect == "valid":
                assert size == spec.size
        for path, (spec, _) in written.items():
            if spec.expect == "valid":
                assert path in index.paths, path
            elif spec.expect == "not_image":
                assert path in index.skipped.not_image
            elif spec.expect == "unreadable":
                assert path in index.skipped.unreadable


@fuzz(40)
@given(
    files=st.lists(image_files(), min_size=1, max_size=6),
    pass_files=st.booleans(),
    missing=SOMETIMES,
)
def test_readable_images_returns_or_counts_every_file(
    files: list[FileSpec], pass_files: bool, missing: bool
) -> None:
    with scratch() as root:
        written = {write(root / "photos" / f"p{i}", spec): spec for i, spec in enumerate(files)}
        targets: list[Path] = list(written) if pass_files else [root / "photos"]
        if missing:
            targets.append(root / "nowhere.jpg")
        try:
            with quiet() as caught:
                found = readable_images(targets)
        except ZOO_ERRORS as error:
            assert_ours(error, [*targets, root / "photos"])
            return
        event("returned")
        assert not missing
        assert len(found) + skips_warned(caught) == len(written)
        assert all(written[path].expect in ("valid", "maybe") for path in found)
        assert {p for p, spec in written.items() if spec.expect == "valid"} <= set(found)


# --- masks ------------------------------------------------------------------------------------

GREY_IN_VOC = {0, 7}  # VOC colours with R = G = B (black, grey): an RGB mask of only these is grey
MASK_VALUES = st.lists(st.sampled_from((0, 1, 255, 0, 1, 2, 3, 254)), min_size=1, max_size=4)
EXACT_MASKS = ("palette", "grey", "rgb_voc", "rgba_voc", "rgb_grey", "la", "16bit", "1bit")
OTHER_MASKS = ("16bit_big", "rgb_off_palette", "jpeg_colour", "cmyk", "truncated", "empty")
OTHER_MASKS += ("random", "text", "huge")


class MaskSpec(NamedTuple):
    """A mask file to write, and the raw values `read_mask` should give (None: may fail)."""

    suffix: str
    data: bytes
    values: np.ndarray | None  # (H, W) uint8
    mode: str | None


def stripes(values: Sequence[int], width: int, height: int) -> np.ndarray:
    """(H, W) uint8 with `values` repeated pixel by pixel, so each one shows when there is room."""
    return np.resize(np.asarray(values, np.uint8), (height, width))


@st.composite
def mask_files(draw: st.DrawFn, size: tuple[int, int]) -> MaskSpec:
    """Masks in every mode zoo users send, of `size` (W, H), and broken mask files."""
    kind = draw(st.sampled_from(EXACT_MASKS * 3 + OTHER_MASKS))
    width, height = size
    values = stripes(draw(MASK_VALUES), width, height)
    palette = voc_colormap()
    if kind in ("palette", "grey"):
        image = Image.fromarray(values)
        if kind == "palette":
            image.putpalette(palette.tobytes())  # "L" -> "P", indices kept
        return MaskSpec(".png", encode(image, "PNG"), values, "P" if kind == "palette" else "L")
    if kind in ("rgb_voc", "rgba_voc"):
        if set(np.unique(values).tolist()) <= GREY_IN_VOC:
            values = stripes([1, *values.ravel().tolist()], width, height)
        image = Image.fromarray(palette[values]).convert("RGB" if kind == "rgb_voc" else "RGBA")
        return MaskSpec(".png", encode(image, "PNG"), values, "P")
    if kind == "rgb_grey":
        return MaskSpec(".png", encode(Image.fromarray(values).convert("RGB"), "PNG"), values, "L")
    if kind == "la":
        return MaskSpec(".png", encode(Image.fromarray(values).convert("LA"), "PNG"), values, "L")
    if kind == "16bit":
        image = Image.fromarray(values.astype(np.uint16))
        return MaskSpec(".png", encode(image, "PNG"), values, "L")
    if kind == "1bit":
        image = Image.fromarray(values > 127).convert("1")
        return MaskSpec(".png", encode(image, "PNG"), (values > 127).astype(np.uint8), "L")
    if kind == "16bit_big":
        image = Image.fromarray(values.astype(np.uint16) + 256)
        return MaskSpec(".png", encode(image, "PNG"), None, None)
    if kind in ("rgb_off_palette", "jpeg_colour", "cmyk"):
        rgb = palette[values] if kind != "rgb_off_palette" else pixels(width, height) | 1
        image = Image.fromarray(rgb).convert("CMYK" if kind == "cmyk" else "RGB")
        fmt = "PNG" if kind == "rgb_off_palette" else "JPEG"
        return MaskSpec(".png" if fmt == "PNG" else ".jpg", encode(image, fmt), None, None)
    if kind == "truncated":
        data = encode(Image.fromarray(values), "PNG")
        return MaskSpec(".png", data[: draw(st.integers(0, len(data) - 1))], None, None)
    if kind == "huge":
        return MaskSpec(".png", huge_png(30_000, 30_000), None, None)
    data = {"empty": b"", "random": draw(st.binary(max_size=64)), "text": b"mask\n"}[kind]
    return MaskSpec(".png", data, None, None)


def write_mask(path: Path, spec: MaskSpec) -> Path:
    """Write `spec` at `path` + its suffix."""
    return write(path, FileSpec(spec.suffix, spec.data, "", (0, 0)))


@fuzz(60)
@given(data=st.data(), size=st.tuples(st.integers(1, 16), st.integers(1, 16)))
def test_read_mask_returns_exact_values_or_names_the_file(
    data: st.DataObject, size: tuple[int, int]
) -> None:
    spec = data.draw(mask_files(size))
    with scratch() as root:
        path = write_mask(root / "mask", spec)
        try:
            raw, mode = read_mask(path)
        except ZOO_ERRORS as error:
            assert_ours(error, [path])
            assert spec.values is None
            return
        event("returned")
        assert raw.dtype == np.uint8
        assert raw.shape == size[::-1]
        assert mode in ("P", "L")
        if spec.values is not None:
            np.testing.assert_array_equal(raw, spec.values)
            assert mode == spec.mode


@st.composite
def segmentation_pairs(draw: st.DrawFn) -> list[tuple[FileSpec, MaskSpec | None]]:
    """Images with masks (sometimes of another size), or none (None)."""
    pairs = []
    for _ in range(draw(st.integers(1, 4))):
        image = draw(image_files())
        width, height = image.size if image.size[0] < 1000 else (4, 4)
        if draw(SOMETIMES):  # a mask of the wrong size
            width, height = width + draw(st.integers(1, 3)), height
        mask = None if draw(RARELY) else draw(mask_files((width, height)))
        pairs.append((image, mask))
    return pairs


@fuzz(50)
@given(pairs=segmentation_pairs(), num_classes=st.integers(2, 4))
def test_scan_pairs_and_value_check_count_every_pair(
    pairs: list[tuple[FileSpec, MaskSpec | None]], num_classes: int
) -> None:
    with scratch() as root:
        files: list[tuple[Path, Path]] = []
        for i, (image, mask) in enumerate(pairs):
            image_path = write(root / f"img{i}", image)
            mask_path = write_mask(root / f"mask{i}", mask) if mask else root / f"mask{i}.png"
            files.append((image_path, mask_path))
        skipped = Skipped()
        try:
            scan = scan_pairs(files, skipped, "train masks")
        except ZOO_ERRORS as error:
            assert_ours(error, [path for pair in files for path in pair])
            return
        event("returned")
        assert len(scan.pairs) + len(skipped) == len(files)
        assert len(scan.values) == len(scan.sizes) == sum(scan.modes.values()) == len(scan.pairs)
        for (image, mask), (image_path, mask_path) in zip(pairs, files, strict=True):
            exact = image.expect == "valid" and mask is not None and mask.values is not None
            if exact and mask.values.shape == image.size[::-1]:
                assert (image_path, mask_path) in scan.pairs  # a good pair is never skipped
        values = {int(v) for vs in scan.values for v in vs}
        mask_format = decide_format(scan.modes, values, num_classes)
        try:
            check_values(scan, mask_format)
        except ZOO_ERRORS as error:
            assert_ours(error, [mask for _, mask in scan.pairs])
            return
        allowed = [*range(num_classes), IGNORE_INDEX]
        for (_, mask_path), size in zip(scan.pairs, scan.sizes, strict=True):
            ids = mask_format.decode(read_mask(mask_path)[0], mask_path)
            assert ids.dtype == np.uint8
            assert ids.shape == size[::-1]
            assert np.isin(ids, allowed).all()


# --- VOC folders and the cat segmentation source ------------------------------------------------


class VocFolder(NamedTuple):
    """What was written: image files, mask files, the split lists (if any)."""

    root: Path
    images: list[Path]
    masks: list[Path]
    lists: dict[str, list[str]]


@st.composite
def voc_folders(draw: st.DrawFn, root: Path, clash: st.SearchStrategy[bool]) -> VocFolder:
    """A VOC-style folder with broken images and masks, orphans, clashing stems, split lists."""
    images_dir, masks_dir = root / "JPEGImages", root / draw(st.sampled_from(MASK_FOLDERS))
    images_dir.mkdir(parents=True)
    masks_dir.mkdir()
    images, masks = [], []
    for i in range(draw(st.integers(1, 5))):
        image = draw(image_files())
        images.append(write(images_dir / f"im{i}", image))
        width, height = image.size if image.size[0] < 1000 else (4, 4)
        mask = None if draw(RARELY) else draw(mask_files((width, height)))
        if mask is not None:
            masks.append(write_mask(masks_dir / f"im{i}", mask))
    if draw(SOMETIMES):  # a mask without an image
        masks.append(write_mask(masks_dir / "orphan", draw(mask_files((4, 4)))))
    if draw(clash):  # two images with one stem
        twin = write(images_dir / "im0", draw(image_files()))
        images += [] if twin in images else [twin]
    lists: dict[str, list[str]] = {}
    if draw(SOMETIMES):
        stems = sorted({p.stem for p in images}) + draw(st.sampled_from(([],) * 4 + (["ghost"],)))
        cut = draw(st.integers(0, len(stems)))
        lists = {"train": stems[:cut], "val": stems[cut:]}
        newline, bom = draw(st.sampled_from(("\n", "\r\n"))), draw(st.sampled_from(("", "\ufeff")))
        folder = root / "ImageSets" / "Segmentation"
        folder.mkdir(parents=True)
        for split, names in lists.items():
            text = bom + "".join(name + newline for name in names)
            (folder / f"{split}.txt").write_text(text, encoding="utf-8")
    return VocFolder(root, images, masks, lists)


@fuzz(50)
@given(data=st.data())
def test_voc_pairs_pair_every_image_or_name_the_file(data: st.DataObject) -> None:
    with scratch() as root:
        voc = data.draw(voc_folders(root / "voc", clash=SOMETIMES))
        skipped = Skipped()
        try:
            pairs = voc_pairs(voc.root, skipped)
        except ZOO_ERRORS as error:
            assert_ours(error, [*voc.images, *voc.masks, "train.txt", "val.txt"])
            return
        event("returned")
        for split_pairs in pairs.values():
            for image, mask in split_pairs:
                assert image.stem == mask.stem
                assert image in voc.images
                assert mask in voc.masks
        if voc.lists:
            assert {s: [i.stem for i, _ in p] for s, p in pairs.items()} == voc.lists
        else:
            assert set(pairs) == {"train"}
            assert len(pairs["train"]) + len(skipped) == len(voc.images)


@fuzz(25)
@given(data=st.data(), class_names=st.sampled_from((None, ["bg", "a", "b", "c"])))
def test_cat_segmentation_source_counts_every_image(
    data: st.DataObject, class_names: list[str] | None
) -> None:
    with scratch() as root:
        voc = data.draw(voc_folders(root / "voc", clash=RARELY))
        module = CatSegmentationDataModule(root=str(voc.root), class_names=class_names)
        try:
            with quiet():
                source = module.source
        except ZOO_ERRORS as error:
            assert_ours(error, [*voc.images, *voc.masks, voc.root, "train.txt", "val.txt"])
            return
        event("returned")
        kept = sum(len(split.names) for split in source.splits.values())
        assert kept > 0
        if not voc.lists:
            assert kept + len(source.skipped) == len(voc.images)
        allowed = [*range(len(module.class_names)), IGNORE_INDEX]
        for split in source.splits.values():
            for image_path, mask_path in zip(split.images, split.masks, strict=True):
                ids = source.mask_format.decode(read_mask(mask_path)[0], mask_path)
                assert np.isin(ids, allowed).all()
                try:
                    image = load_image(image_path, 3)
                except ZOO_ERRORS as error:  # a header that reads, pixels that do not
                    assert_ours(error, [image_path])
                    continue
                assert tuple(image.shape) == (3, *ids.shape)


# --- labelme ----------------------------------------------------------------------------------

LABEL_LINES = st.sampled_from(
    ("cat", "dog", " cat ", "", "   ", "chat noir", "猫", "\t", IGNORE_LABEL, BACKGROUND)
)


@fuzz(60)
@given(
    head=st.sampled_from(
        ([IGNORE_LABEL, BACKGROUND], [BACKGROUND], [], [IGNORE_LABEL], [IGNORE_LABEL, BACKGROUND])
    ),
    lines=st.lists(
        st.one_of(LABEL_LINES, LABEL_LINES, st.text(max_size=4)), max_size=6, unique=True
    ),
    newline=st.sampled_from(("\n", "\r\n")),
    bom=st.booleans(),
    encoding=st.sampled_from(("utf-8",) * 4 + ("utf-16", "latin-1")),
)
@example(
    head=[], lines=[IGNORE_LABEL, BACKGROUND, "cat"], newline="\r\n", bom=True, encoding="utf-16"
)
def test_read_label_file_returns_classes_or_names_the_file(
    head: list[str], lines: list[str], newline: str, bom: bool, encoding: str
) -> None:
    lines = head + lines
    with scratch() as root:
        path = root / "labels.txt"
        text = ("\ufeff" if bom else "") + newline.join(lines) + newline
        data = text.encode(encoding, errors="replace")  # latin-1 has no 猫: "?"
        path.write_bytes(data)
        try:
            names = read_label_file(path)
        except ZOO_ERRORS as error:
            assert_ours(error, [path])
            return
        event("returned")
        assert names[0] == BACKGROUND
        assert 2 <= len(names) <= IGNORE_INDEX
        assert len(set(names)) == len(names)
        assert IGNORE_LABEL not in names
        assert all(name and name == name.strip() for name in names)
        written = data.decode(encoding).removeprefix("\ufeff")
        kept = [line.strip() for line in written.splitlines() if line.strip()]
        assert names == [name for name in kept if name != IGNORE_LABEL]


CLASS_IDS = {BACKGROUND: 0, "cat": 1, "dog": 2}
NAN = float("nan")
COORDS = (
    st.integers(-5, 40)
    | st.floats(-1e6, 1e6)
    | st.sampled_from((NAN, float("inf"), 1e300))
    | st.sampled_from(("3", "x", None))
)
POINTS = st.lists(st.lists(COORDS, min_size=2, max_size=2), max_size=5) | st.sampled_from(
    (None, "x", 3, [[1, 2, 3]], [1, 2])
)
BITMAP = base64.b64encode(encode(Image.new("1", (3, 3), 1), "PNG")).decode()


@st.composite
def drawn_shapes(draw: st.DrawFn) -> dict:
    """A well-formed labelme shape, its points anywhere near (or outside) a small image."""
    kind = draw(st.sampled_from(tuple(_MIN_POINTS)))
    count = _MIN_POINTS[kind]
    count = draw(st.integers(count, 5)) if kind in ("polygon", "linestrip") else count
    coord = st.integers(-3, 15) | st.floats(-3, 15)
    points = draw(st.lists(st.lists(coord, min_size=2, max_size=2), min_size=count, max_size=count))
    label = draw(st.sampled_from((BACKGROUND, "cat", "dog", IGNORE_LABEL)))
    return {"label": label, "points": points, "shape_type": kind, "mask": BITMAP}


ANY_SHAPE = st.fixed_dictionaries(
    {},
    optional={
        "label": st.sampled_from((BACKGROUND, "cat", "dog", IGNORE_LABEL, "bird", "", None, 3))
        | st.just(["cat"]),
        "points": POINTS,
        "shape_type": st.sampled_from((*_MIN_POINTS, "ellipse", None, "", 5))
        | st.just(["polygon"]),
        "mask": st.sampled_from((BITMAP, "@@not base64@@", None, 5)),
    },
) | st.sampled_from(("polygon", 1, None, []))
SHAPES = st.lists(st.one_of(drawn_shapes(), drawn_shapes(), ANY_SHAPE), max_size=4)


@fuzz(60)
@given(shapes=SHAPES, size=st.tuples(st.integers(1, 12), st.integers(1, 12)))
@example(shapes=["polygon"], size=(5, 5))
@example(shapes=[{"label": ["cat"], "points": [[0, 0], [1, 1], [2, 2]]}], size=(5, 5))
@example(shapes=[{"label": "cat", "shape_type": ["polygon"], "points": [[0, 0]]}], size=(5, 5))
@example(shapes=[{"label": "cat", "shape_type": "mask", "points": [[NAN, 0], [1, 1]]}], size=(5, 5))
@example(
    shapes=[
        {"label": "cat", "shape_type": "mask", "points": [[1e10, 0], [2e10, 1]], "mask": BITMAP}
    ],
    size=(5, 5),
)
def test_shapes_to_mask_draws_class_ids_or_names_the_file(
    shapes: list, size: tuple[int, int]
) -> None:
    height, width = size
    try:
        mask = shapes_to_mask(shapes, height, width, CLASS_IDS, "ann/cat1.json")
    except ZOO_ERRORS as error:
        assert_ours(error, ["ann/cat1.json"])
        return
    event("returned")
    assert mask.dtype == np.uint8
    assert mask.shape == (height, width)
    assert np.isin(mask, [*CLASS_IDS.values(), IGNORE_INDEX]).all()


def labelme_json(**fields: object) -> bytes:
    """A labelme JSON file of a 1x1 image and no shapes, with `fields` changed."""
    image_data = base64.b64encode(encode(Image.new("RGB", (1, 1)), "PNG")).decode()
    data = {"shapes": [], "imageData": image_data, "imageHeight": 1, "imageWidth": 1}
    return json.dumps(data | fields).encode()


LABELME_SIZES = ((8, 6), (1, 1), (3, 11))  # images on disk for imagePath, in src/ and src/sub/
LABELME_KEYS = ("version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth")


@st.composite
def labelme_files(draw: st.DrawFn) -> bytes:
    """labelme JSON with missing keys, bad sizes, broken images, bad encodings, or not JSON."""
    kind = draw(st.sampled_from(("labelme",) * 5 + ("not_json", "not_utf8", "list", "bom")))
    if kind == "not_json":
        return b'{"shapes": [}'
    if kind == "list":
        return b"[]"
    width, height = draw(st.sampled_from(LABELME_SIZES))
    png = encode(Image.fromarray(pixels(width, height)), "PNG")
    image_data = st.sampled_from(
        (
            *[base64.b64encode(png).decode()] * 3,
            base64.b64encode(png[: len(png) // 2]).decode(),
            "@@ not base64 @@",
            base64.b64encode(b"hello").decode(),
            "",
            None,
            7,
        )
    )
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": draw(st.lists(drawn_shapes(), max_size=3) | SHAPES),
        "imagePath": draw(
            st.sampled_from((f"{width}x{height}.png", f"sub\\{width}x{height}.png", "no.png", 5))
        ),
        "imageData": draw(image_data),
        "imageHeight": draw(
            st.sampled_from((height,) * 12 + (height + 1, str(height), "tall", [1]))
        ),
        "imageWidth": width,
    }
    if draw(SOMETIMES):
        for key in draw(st.sets(st.sampled_from(LABELME_KEYS), min_size=1, max_size=2)):
            del data[key]
    text = json.dumps(data)
    if kind == "not_utf8":
        return text.encode() + b"\xff\xfe"
    return ("\ufeff" if kind == "bom" else "").encode() + text.encode()


@fuzz(40)
@given(files=st.lists(labelme_files(), min_size=1, max_size=4), visualize=st.booleans())
@example(files=[labelme_json(imageHeight="tall")], visualize=False)
@example(files=[b"\xef\xbb\xbf" + labelme_json()], visualize=False)  # UTF-8 BOM
def test_convert_labelme_converts_or_counts_every_file(files: list[bytes], visualize: bool) -> None:
    with scratch() as root:
        src, dst = root / "ann", root / "voc"
        (src / "sub").mkdir(parents=True)
        for width, height in LABELME_SIZES:
            image = Image.fromarray(pixels(width, height))
            image.save(src / f"{width}x{height}.png")
            image.save(src / "sub" / f"{width}x{height}.png")
        labels = root / "labels.txt"
        labels.write_text(f"{IGNORE_LABEL}\n{BACKGROUND}\ncat\ndog\n")
        paths = []
        for i, data in enumerate(files):
            paths.append(src / f"a{i}.json")
            paths[-1].write_bytes(data)
        try:
            report = convert_labelme(src, dst, labels, visualize=visualize, progress=False)
        except ZOO_ERRORS as error:
            assert_ours(error, paths)
            assert sorted(p.name for p in root.iterdir()) == ["ann", "labels.txt"]  # no output
            return
        event("returned")
        assert len(report.converted) + len(report.failed) == len(paths)
        assert set(report.converted) | set(report.failed) == set(paths)
        assert not any("BOM" in why for why in report.failed.values())
        for path in report.converted:
            with (
                Image.open(dst / "SegmentationClassPNG" / f"{path.stem}.png") as mask,
                Image.open(dst / "JPEGImages" / f"{path.stem}.jpg") as jpeg,
            ):
                assert jpeg.mode == "RGB"
                assert jpeg.size == mask.size
                assert mask.mode == "P"
                assert np.isin(np.asarray(mask), [0, 1, 2, IGNORE_INDEX]).all()
        assert read_label_file(dst / "class_names.txt") == [BACKGROUND, "cat", "dog"]


def test_fuzz_helpers_build_what_they_say() -> None:
    with Image.open(io.BytesIO(valid_image("png_16bit", 3, 2)[1])) as image:
        assert image.mode == "I;16"
    with Image.open(io.BytesIO(valid_image("cmyk_jpeg", 3, 2)[1])) as image:
        assert image.mode == "CMYK"
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(huge_png(30_000, 30_000)))
