"""`zoo prepare mouths`: real-photo detection, no-face accounting and the folder walk.

Real faces come with scikit-image: the astronaut photo, and LFW's 25 x 25 face crops (upscaled to
FER2013's 48 x 48, face filling the frame) with as many non-face patches.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from datamodules.prepare import mouths
from datamodules.prepare.mouths import (
    MIN_FACE,
    MouthReport,
    crop_mouth,
    mouth_box,
    prepare_mouths,
)
from tasks.cli import cli


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB -> BGR


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return np.ascontiguousarray(data.coffee()[:, :, ::-1])


@pytest.fixture(scope="module")
def lfw_48() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """FER2013-sized (48 x 48, gray as BGR) LFW faces and non-faces, 100 of each."""
    patches = (data.lfw_subset() * 255).round().astype(np.uint8)
    images = [
        cv2.cvtColor(cv2.resize(p, (48, 48), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
        for p in patches
    ]
    return images[:100], images[100:]


@pytest.mark.parametrize("use_smile", [True, False])
def test_mouth_box_in_lower_face(astronaut: np.ndarray, use_smile: bool) -> None:
    boxes = mouth_box(astronaut, use_smile=use_smile)
    assert boxes is not None
    (fx, fy, fw, fh), (mx, my, mw, mh) = boxes
    assert fw >= 48
    assert fh >= 48
    # Mouth box lies inside the face box horizontally and its centre is in the lower part.
    assert fx <= mx
    assert mx + mw <= fx + fw
    assert my + mh / 2 > fy + fh * 0.6
    assert abs((mx + mw / 2) - (fx + fw / 2)) < fw * 0.15


def test_fer_sized_faces_found_with_defaults(
    tmp_path: Path, lfw_48: tuple[list[np.ndarray], list[np.ndarray]]
) -> None:
    src, dst = tmp_path / "fer" / "train" / "happy", tmp_path / "out"
    src.mkdir(parents=True)
    for i, face in enumerate(lfw_48[0][:20]):
        cv2.imwrite(str(src / f"{i}.png"), cv2.cvtColor(face, cv2.COLOR_BGR2GRAY))
    report = prepare_mouths(tmp_path / "fer", dst)
    assert report.written >= 18  # 20 with OpenCV 4.14; 0 with the old 48 px minimum
    assert cv2.imread(str(dst / "train/happy/0.png")).shape == (64, 64, 3)
    assert "--min-face" not in report.summary()


def test_fer_sized_mouth_boxes_and_non_faces(
    lfw_48: tuple[list[np.ndarray], list[np.ndarray]],
) -> None:
    faces, non_faces = lfw_48
    boxes = [b for b in (mouth_box(face) for face in faces[:20]) if b is not None]
    assert len(boxes) >= 18
    for (fx, fy, fw, fh), (mx, my, mw, mh) in boxes:
        assert 0 <= fx <= mx  # boxes are clamped to the 48 x 48 image
        assert 0 <= fy < my
        assert mx + mw <= fx + fw <= 48
        assert my + mh <= fy + fh <= 48
        assert my + mh / 2 > 0.55 * 48  # the mouth is in the lower half of a face-filling crop
    assert sum(mouth_box(patch) is not None for patch in non_faces) <= 2  # 0 with OpenCV 4.14


def test_min_face_is_a_fraction_or_pixels(astronaut: np.ndarray) -> None:
    # The astronaut's face box is 93 px, 18% of the 512 px image.
    assert MIN_FACE < 0.18
    assert mouth_box(astronaut) is not None
    assert mouth_box(astronaut, min_face=0.3) is None
    assert mouth_box(astronaut, min_face=48) is not None
    assert mouth_box(astronaut, min_face=150) is None
    big = cv2.resize(astronaut, (1024, 1024))
    assert mouth_box(big)[0][2] >= 0.15 * 1024
    with pytest.raises(ValueError, match=r"min_face=0 must be positive.*fraction"):
        mouth_box(astronaut, min_face=0)


def test_crop_mouth_shape(astronaut: np.ndarray) -> None:
    crop = crop_mouth(astronaut)
    assert crop is not None
    assert crop.shape == (64, 64, 3)
    assert crop.dtype == np.uint8
    assert crop_mouth(astronaut, size=32, use_smile=False).shape == (32, 32, 3)


@pytest.mark.parametrize("kind", ["coffee", "flat", "noise"])
def test_no_face_returns_none(coffee: np.ndarray, kind: str) -> None:
    rng = np.random.default_rng(0)
    image = {
        "coffee": coffee,
        "flat": np.full((240, 320, 3), 128, np.uint8),
        "noise": rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
    }[kind]
    assert mouth_box(image) is None
    assert crop_mouth(image) is None


def test_prepare_mouths_tree(tmp_path: Path, astronaut: np.ndarray, coffee: np.ndarray) -> None:
    src, dst = tmp_path / "src", tmp_path / "out"
    (src / "train/happy").mkdir(parents=True)
    (src / "train/sad").mkdir(parents=True)
    cv2.imwrite(str(src / "train/happy/astronaut.jpg"), astronaut)
    cv2.imwrite(str(src / "train/happy/noface.png"), coffee)
    cv2.imwrite(str(src / "train/sad/astronaut2.png"), astronaut)
    (src / "train/sad/notes.txt").write_text("not an image")
    (src / "train/sad/broken.jpg").write_bytes(np.random.default_rng(1).bytes(512))

    report = prepare_mouths(src, dst)

    assert isinstance(report, MouthReport)
    assert report.written == 2
    assert report.no_face == [src / "train/happy/noface.png"]
    assert report.unreadable == [src / "train/sad/broken.jpg"]
    assert report.ignored == [src / "train/sad/notes.txt"]
    crop = cv2.imread(str(dst / "train/happy/astronaut.png"))
    assert crop is not None
    assert crop.shape == (64, 64, 3)
    assert (dst / "train/sad/astronaut2.png").is_file()
    assert (dst / "no_face.txt").read_text().splitlines() == ["train/happy/noface.png"]
    summary = report.summary()
    assert "wrote 2 mouth crops" in summary
    assert "1 image had no face" in summary
    assert "1 unreadable file" in summary
    assert "1 ignored non-image file" in summary
    assert "--min-face" not in summary  # most images had a face: no hint


def test_summary_suggests_min_face_when_most_images_have_no_face(
    tmp_path: Path, astronaut: np.ndarray, coffee: np.ndarray
) -> None:
    src, dst = tmp_path / "src" / "smile", tmp_path / "out"
    src.mkdir(parents=True)
    cv2.imwrite(str(src / "astronaut.jpg"), astronaut)
    cv2.imwrite(str(src / "cup1.jpg"), coffee)
    cv2.imwrite(str(src / "cup2.jpg"), coffee)
    summary = prepare_mouths(tmp_path / "src", dst).summary()
    assert summary.startswith("wrote 1 mouth crop; 2 images had no face;")
    assert "Most images had no face at --min-face 0.1" in summary
    assert "try --min-face 0.05" in summary
    assert str(dst / "no_face.txt") in summary
    pixels = MouthReport(written=0, no_face=[Path("a.jpg")], min_face=48)
    assert "try --min-face 24" in pixels.summary()


def test_unicode_path(tmp_path: Path, astronaut: np.ndarray) -> None:
    src = tmp_path / "données" / "sourire"
    src.mkdir(parents=True)
    cv2.imencode(".jpg", astronaut)[1].tofile(src / "été.jpg")
    report = prepare_mouths(tmp_path / "données", tmp_path / "sortie")
    assert report.written == 1
    assert (tmp_path / "sortie/sourire/été.png").is_file()


def test_missing_src(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        prepare_mouths(missing, tmp_path / "out")


def test_min_face_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"min_face=-1 must be positive"):
        prepare_mouths(tmp_path, tmp_path / "out", min_face=-1)
    assert not (tmp_path / "out").exists()


def test_no_images(tmp_path: Path) -> None:
    (tmp_path / "src/a").mkdir(parents=True)
    (tmp_path / "src/a/readme.txt").write_text("x")
    with pytest.raises(ValueError, match="src"):
        prepare_mouths(tmp_path / "src", tmp_path / "out")


def test_missing_cascade_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    mouths._cascade.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
            mouths._cascade("haarcascade_frontalface_default.xml")
    finally:
        mouths._cascade.cache_clear()


def test_zoo_prepare_mouths_command(
    tmp_path: Path, astronaut: np.ndarray, coffee: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "raw" / "smile"
    src.mkdir(parents=True)
    cv2.imwrite(str(src / "a.jpg"), astronaut)
    cv2.imwrite(str(src / "a.png"), astronaut)  # same stem: both crops must survive
    cv2.imwrite(str(src / "cup.jpg"), coffee)
    cli(["prepare", "mouths", str(tmp_path / "raw"), str(tmp_path / "out"), "--size", "48"])
    out = capsys.readouterr().out
    assert "wrote 2 mouth crops; 1 image had no face" in out
    written = sorted(p.name for p in (tmp_path / "out" / "smile").iterdir())
    assert written == ["a.png", "a.png.png"]  # sorted walk: a.jpg first
    assert cv2.imread(str(tmp_path / "out" / "smile" / "a.png")).shape == (48, 48, 3)
    assert (tmp_path / "out" / "no_face.txt").read_text().strip() == "smile/cup.jpg"


def test_zoo_prepare_mouths_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli(["prepare", "mouths", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for default in ("--size SIZE side of the square crops (default: 64)", "(default: 0.1)"):
        assert default in out
    assert "--no-smile do not refine the crop with the smile cascade (default: False)" in out
