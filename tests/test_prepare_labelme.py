"""`zoo prepare labelme`: labelme JSON polygons -> VOC-style class-index masks."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.cat_segmentation import CatSegmentationDataModule
from datamodules.masks import IGNORE_INDEX, voc_colormap
from datamodules.prepare.labelme import (
    LabelmeReport,
    convert_labelme,
    read_label_file,
    shapes_to_mask,
)
from tasks.cli import cli

IDS = {"_background_": 0, "cat": 1, "dog": 2}
RECT_POLY = [[2, 2], [10, 2], [10, 8], [2, 8]]


def _b64_png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _image(width: int = 16, height: int = 12) -> Image.Image:
    # smooth gradient: survives JPEG well enough to compare pixels
    rows, cols = np.mgrid[:height, :width]
    rgb = np.stack([rows * 255 // height, cols * 255 // width, np.full_like(rows, 90)], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def _write_json(
    path: Path,
    shapes: list[dict],
    *,
    image_data: str | None = None,
    image_path: str = "img.png",
    size: tuple[int, int] = (12, 16),
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path,
        "imageData": image_data,
        "imageHeight": size[0],
        "imageWidth": size[1],
    }
    path.write_text(json.dumps(data))
    return path


def _poly(label: str, points: list[list[float]], shape_type: str | None = "polygon") -> dict:
    return {"label": label, "points": points, "shape_type": shape_type, "group_id": None}


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.txt"
    path.write_text("__ignore__\n_background_\ncat\n")
    return path


# --- colormap / labels file ------------------------------------------------------------------


def test_voc_colormap_matches_pascal_voc() -> None:
    cmap = voc_colormap()
    assert cmap.shape == (256, 3)
    assert cmap.dtype == np.uint8
    expected = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128)]
    assert [tuple(c) for c in cmap[:6]] == expected
    assert tuple(cmap[15]) == (192, 128, 128)  # VOC "person"
    assert tuple(cmap[255]) == (224, 224, 192)
    assert len({tuple(c) for c in cmap}) == 256
    np.testing.assert_array_equal(voc_colormap(21), cmap[:21])


def test_read_label_file_course_format(labels: Path) -> None:
    assert read_label_file(labels) == ["_background_", "cat"]


def test_read_label_file_tolerates_blank_lines_whitespace_and_no_ignore(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("\n  _background_ \n\ncat\r\n dog\n\n")
    assert read_label_file(path) == ["_background_", "cat", "dog"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("__ignore__\ncat\ndog\n", "_background_"),
        ("cat\n_background_\n", "_background_"),
        ("__ignore__\n_background_\ncat\ncat\n", "duplicate"),
        ("__ignore__\n_background_\n", "at least one class"),
        ("_background_\ncat\n__ignore__\n", "first line"),
        ("", "_background_"),
    ],
)
def test_read_label_file_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        read_label_file(path)
    assert str(path) in str(info.value)


def test_read_label_file_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="labels.txt"):
        read_label_file(tmp_path / "labels.txt")


# --- shapes_to_mask --------------------------------------------------------------------------


def test_rectangle_shaped_polygon_is_inclusive() -> None:
    mask = shapes_to_mask([_poly("cat", RECT_POLY)], 12, 16, IDS, "a.json")
    expected = np.zeros((12, 16), np.uint8)
    expected[2:9, 2:11] = 1  # PIL draws the outline too, so both edges are included
    assert mask.dtype == np.uint8
    assert mask.shape == (12, 16)
    np.testing.assert_array_equal(mask, expected)


def test_missing_shape_type_means_polygon_and_rectangle_any_corner() -> None:
    legacy = shapes_to_mask([_poly("cat", RECT_POLY, None)], 12, 16, IDS, "a.json")
    no_key = shapes_to_mask([{"label": "cat", "points": RECT_POLY}], 12, 16, IDS, "a.json")
    rect = shapes_to_mask([_poly("cat", [[10, 8], [2, 2]], "rectangle")], 12, 16, IDS, "a.json")
    reference = shapes_to_mask([_poly("cat", RECT_POLY)], 12, 16, IDS, "a.json")
    for mask in (legacy, no_key, rect):
        np.testing.assert_array_equal(mask, reference)


def test_triangle_matches_hand_made_expectation_up_to_boundary() -> None:
    mask = shapes_to_mask([_poly("dog", [[2, 2], [12, 2], [2, 12]])], 16, 16, IDS, "t.json")
    rows, cols = np.mgrid[:16, :16]
    inside = (rows >= 2) & (cols >= 2) & (rows + cols <= 14)
    on_hypotenuse = np.abs(rows + cols - 14) <= 1
    assert set(np.unique(mask)) == {0, 2}
    disagree = (mask == 2) != inside
    assert not (disagree & ~on_hypotenuse).any()
    assert disagree.sum() <= 12
    assert mask[2, 2] == mask[2, 12] == mask[12, 2] == 2  # vertices are drawn
    assert mask[3, 3] == 2
    assert mask[10, 10] == 0


def test_overlap_later_shape_wins_and_ignore_paints_255() -> None:
    shapes = [
        _poly("cat", RECT_POLY),
        _poly("dog", [[6, 0], [15, 11]], "rectangle"),
        _poly("__ignore__", [[0, 0], [1, 1]], "rectangle"),
    ]
    mask = shapes_to_mask(shapes, 12, 16, IDS, "a.json")
    assert mask[5, 3] == 1  # only cat
    assert mask[5, 8] == 2  # cat and dog overlap: dog came later
    assert mask[0, 0] == mask[1, 1] == IGNORE_INDEX
    assert mask[10, 0] == 0
    reordered = shapes_to_mask(shapes[1::-1], 12, 16, IDS, "a.json")
    assert reordered[5, 8] == 1


def test_circle_point_line_and_mask_shapes() -> None:
    circle = shapes_to_mask([_poly("cat", [[8, 8], [8, 12]], "circle")], 20, 20, IDS, "c.json")
    assert circle[8, 8] == circle[4, 8] == circle[8, 12] == 1
    assert circle[3, 8] == circle[8, 13] == circle[4, 4] == 0
    point = shapes_to_mask([_poly("cat", [[10, 10]], "point")], 20, 20, IDS, "p.json")
    assert point[10, 5] == point[10, 15] == 1
    assert point[10, 4] == point[10, 16] == 0
    line = shapes_to_mask([_poly("cat", [[0, 10], [19, 10]], "line")], 20, 20, IDS, "l.json")
    assert line[10].all()
    assert 9 <= int(line[:, 10].sum()) <= 11  # labelme's width-10 line

    bitmap = np.zeros((3, 4), bool)
    bitmap[0, 0] = bitmap[2, 3] = True
    shape = _poly("cat", [[5, 6], [8, 8]], "mask")
    shape["mask"] = _b64_png(Image.fromarray(bitmap))
    mask = shapes_to_mask([shape], 12, 16, IDS, "m.json")
    assert list(zip(*np.nonzero(mask), strict=True)) == [(6, 5), (8, 8)]


def test_unknown_label_and_bad_shapes_raise_with_source() -> None:
    with pytest.raises(ValueError, match=r"a\.json: label 'bird' is not in the labels file"):
        shapes_to_mask([_poly("bird", RECT_POLY)], 12, 16, IDS, "a.json")
    with pytest.raises(ValueError, match=r"b\.json.*at least 3 points"):
        shapes_to_mask([_poly("cat", [[1, 1], [5, 5]])], 12, 16, IDS, "b.json")
    with pytest.raises(ValueError, match=r"c\.json.*'cuboid'"):
        shapes_to_mask([_poly("cat", RECT_POLY, "cuboid")], 12, 16, IDS, "c.json")
    bad_mask = _poly("cat", [[0, 0], [2, 2]], "mask")
    bad_mask["mask"] = "not base64!"
    with pytest.raises(ValueError, match=r"d\.json.*mask"):
        shapes_to_mask([bad_mask], 12, 16, IDS, "d.json")


# --- convert_labelme -------------------------------------------------------------------------


def test_convert_end_to_end(tmp_path: Path, labels: Path) -> None:
    src, dst = tmp_path / "ann", tmp_path / "voc"
    embedded = _image()
    _write_json(
        src / "a.json",
        [_poly("cat", RECT_POLY)],
        image_data=_b64_png(embedded),
        image_path="does_not_exist.png",  # imageData wins when present
    )
    (src / "sub").mkdir()
    _image(16, 12).save(src / "sub" / "b.png")
    _write_json(
        src / "sub" / "b.json",
        [
            _poly("cat", [[0, 0], [15, 11]], "rectangle"),
            _poly("__ignore__", [[0, 0], [3, 3]], "rectangle"),
        ],
        image_path="b.png",
    )

    report = convert_labelme(src, dst, labels, progress=False)

    assert report.converted == [src / "a.json", src / "sub" / "b.json"]
    assert report.failed == {}
    assert report.class_names == ["_background_", "cat"]
    assert (dst / "class_names.txt").read_text() == "_background_\ncat\n"
    for stem in ("a", "b"):
        assert (dst / "SegmentationClassVisualization" / f"{stem}.jpg").is_file()
        jpg = Image.open(dst / "JPEGImages" / f"{stem}.jpg")
        png = Image.open(dst / "SegmentationClassPNG" / f"{stem}.png")
        assert jpg.format == "JPEG"
        assert jpg.mode == "RGB"
        assert png.mode == "P"
        assert jpg.size == png.size == (16, 12)
        palette = png.getpalette()
        assert palette[:6] == [0, 0, 0, 128, 0, 0]
        assert palette[3 * 255 : 3 * 256] == [224, 224, 192]

    a = np.array(Image.open(dst / "SegmentationClassPNG" / "a.png"))
    expected = np.zeros((12, 16), np.uint8)
    expected[2:9, 2:11] = 1
    np.testing.assert_array_equal(a, expected)
    jpg_a = np.asarray(Image.open(dst / "JPEGImages" / "a.jpg"), dtype=float)
    assert np.abs(jpg_a - np.asarray(embedded, dtype=float)).mean() < 4  # the embedded image

    b = np.array(Image.open(dst / "SegmentationClassPNG" / "b.png"))
    assert (b[:4, :4] == IGNORE_INDEX).all()
    assert set(np.unique(b)) == {1, IGNORE_INDEX}

    assert report.ignored_pixels == 16
    assert report.pixel_counts == [12 * 16 - 63, 63 + 12 * 16 - 16]
    text = report.summary()
    assert "Converted 2" in text
    assert "skipped 0" in text
    assert str(dst) in text


def test_convert_visualization_blends_only_labelled_pixels(tmp_path: Path, labels: Path) -> None:
    src, dst = tmp_path / "ann", tmp_path / "voc"
    image = Image.new("RGB", (16, 12), (0, 0, 200))
    _write_json(src / "a.json", [_poly("cat", RECT_POLY)], image_data=_b64_png(image))
    convert_labelme(src, dst, labels, progress=False)
    viz = np.asarray(Image.open(dst / "SegmentationClassVisualization" / "a.jpg"), dtype=float)
    np.testing.assert_allclose(viz[5, 5], [0.3 * 128, 0, 0.7 * 200], atol=12)
    np.testing.assert_allclose(viz[11, 15], [0, 0, 200], atol=12)
    assert not convert_labelme(src, tmp_path / "v2", labels, visualize=False, progress=False).failed
    assert not (tmp_path / "v2" / "SegmentationClassVisualization").exists()


def test_convert_applies_exif_orientation(tmp_path: Path, labels: Path) -> None:
    src, dst = tmp_path / "ann", tmp_path / "voc"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees
    _image(16, 12).save(src / "img.jpg", exif=exif)
    _write_json(src / "a.json", [_poly("cat", RECT_POLY)], image_path="img.jpg", size=(16, 12))
    convert_labelme(src, dst, labels, progress=False)
    assert Image.open(dst / "JPEGImages" / "a.jpg").size == (12, 16)
    assert np.array(Image.open(dst / "SegmentationClassPNG" / "a.png")).shape == (16, 12)


def test_convert_unknown_label_raises_with_json_name(tmp_path: Path, labels: Path) -> None:
    src = tmp_path / "ann"
    _write_json(src / "zebra_01.json", [_poly("zebra", RECT_POLY)], image_data=_b64_png(_image()))
    with pytest.raises(ValueError, match=r"zebra_01\.json: label 'zebra'.*labels\.txt"):
        convert_labelme(src, tmp_path / "voc", labels, progress=False)


def _three_jsons(src: Path, second_label: str, first_points: list[list[float]]) -> None:
    data = _b64_png(_image())
    shapes = [[_poly("cat", first_points)], [_poly(second_label, RECT_POLY)], []]
    for stem, shape in zip("abc", shapes, strict=True):
        _write_json(src / f"{stem}.json", shape, image_data=data)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_convert_failure_leaves_no_destination(tmp_path: Path, labels: Path) -> None:
    src, dst = tmp_path / "ann", tmp_path / "out" / "voc"
    _three_jsons(src, "zebra", RECT_POLY)
    with pytest.raises(ValueError, match=r"b\.json: label 'zebra' is not in the labels file"):
        convert_labelme(src, dst, labels, progress=False)
    assert not dst.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no staging folder left behind


def test_convert_failure_leaves_existing_destination_unchanged(
    tmp_path: Path, labels: Path
) -> None:
    src, dst = tmp_path / "ann", tmp_path / "voc"
    _three_jsons(src, "cat", RECT_POLY)
    convert_labelme(src, dst, labels, progress=False)
    (dst / "notes.txt").write_text("mine")
    before = _snapshot(dst)
    _three_jsons(src, "zebra", [[0, 0], [15, 0], [15, 11]])  # a.png would change
    with pytest.raises(ValueError, match=r"b\.json: label 'zebra'"):
        convert_labelme(src, dst, labels, progress=False)
    assert _snapshot(dst) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann", "labels.txt", "voc"]


def test_convert_into_existing_destination_replaces_outputs_keeps_other_files(
    tmp_path: Path, labels: Path
) -> None:
    src, dst = tmp_path / "ann", tmp_path / "voc"
    _write_json(src / "a.json", [], image_data=_b64_png(_image()))
    convert_labelme(src, dst, labels, progress=False)
    (dst / "notes.txt").write_text("mine")
    _write_json(src / "a.json", [_poly("cat", RECT_POLY)], image_data=_b64_png(_image()))
    report = convert_labelme(src, dst, labels, progress=False)
    assert report.dst == dst
    assert (dst / "notes.txt").read_text() == "mine"
    assert np.array(Image.open(dst / "SegmentationClassPNG" / "a.png")).max() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann", "labels.txt", "voc"]


def test_convert_counts_skips_instead_of_raising(tmp_path: Path, labels: Path) -> None:
    src, dst = tmp_path / "ann", tmp_path / "voc"
    good = _write_json(src / "good.json", [_poly("cat", RECT_POLY)], image_data=_b64_png(_image()))
    missing = _write_json(src / "missing.json", [], image_path="nope.png")
    broken_img = _write_json(src / "broken_img.json", [], image_data="aGVsbG8=")  # b"hello"
    not_json = src / "not_json.json"
    not_json.write_text("{ this is not json")
    coco = src / "coco.json"
    coco.write_text(json.dumps({"images": [], "annotations": []}))

    report = convert_labelme(src, dst, labels, progress=False)

    assert report.converted == [good]
    assert set(report.failed) == {missing, broken_img, not_json, coco}
    assert "not found" in report.failed[missing]
    assert "nope.png" in report.failed[missing]
    assert "decode" in report.failed[broken_img]
    assert "JSON" in report.failed[not_json]
    assert "shapes" in report.failed[coco]
    assert not (dst / "JPEGImages" / "missing.jpg").exists()
    text = report.summary()
    assert "skipped 4" in text
    assert "nope.png" in text


def test_convert_size_disagreement_raises(tmp_path: Path, labels: Path) -> None:
    src = tmp_path / "ann"
    _write_json(
        src / "a.json", [_poly("cat", RECT_POLY)], image_data=_b64_png(_image()), size=(99, 16)
    )
    with pytest.raises(ValueError, match=r"a\.json.*99 x 16.*12 x 16"):
        convert_labelme(src, tmp_path / "voc", labels, progress=False)


def test_convert_duplicate_stems_raise(tmp_path: Path, labels: Path) -> None:
    src = tmp_path / "ann"
    data = _b64_png(_image())
    _write_json(src / "x" / "a.json", [], image_data=data)
    _write_json(src / "y" / "a.json", [], image_data=data)
    with pytest.raises(ValueError, match=r"x/a\.json and .*y/a\.json"):
        convert_labelme(src, tmp_path / "voc", labels, progress=False)


def test_convert_missing_or_empty_src(tmp_path: Path, labels: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        convert_labelme(tmp_path / "nope", tmp_path / "voc", labels, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.json"):
        convert_labelme(tmp_path / "empty", tmp_path / "voc", labels, progress=False)


def test_report_summary_lists_first_five_failures() -> None:
    failed = {Path(f"f{i}.json"): "image not found" for i in range(7)}
    report = LabelmeReport([Path("ok.json")], failed, ["_background_", "cat"], [75, 25], 0)
    text = report.summary()
    assert "f4.json" in text
    assert "f5.json" not in text
    assert "2 more" in text
    assert "75.00%" in text
    assert "25.00%" in text


def test_prepare_labelme_cli_output_trains_as_voc_folder(tmp_path: Path, labels: Path) -> None:
    src = tmp_path / "cats"
    src.mkdir()
    for i in range(5):
        image = _image(32, 32)
        image.save(src / f"{i}.png")
        square = [[4 + i, 4], [20 + i, 4], [20 + i, 24], [4 + i, 24]]
        shapes = [{"label": "cat", "points": square, "shape_type": "polygon"}]
        _write_json(src / f"{i}.json", shapes, image_path=f"{i}.png", size=(32, 32))
    assert (
        cli(["prepare", "labelme", str(src), str(tmp_path / "voc"), "--labels", str(labels)])
        is None
    )
    data = CatSegmentationDataModule(root=str(tmp_path / "voc"), image_size=32, batch_size=2)
    data.setup("fit")
    assert data.class_names == ["_background_", "cat"]  # from class_names.txt
    assert data.source.mask_format.kind == "index"
    batch = next(iter(data.val_dataloader()))
    assert set(batch["mask"].unique().tolist()) <= {0, 1}
    assert batch["mask"].float().mean() > 0.2
