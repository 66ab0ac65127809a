"""Cat segmentation: UNet, Dice loss and metrics, mask formats, transforms, predict outputs."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from lightning.pytorch import Trainer
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from datamodules.cat_segmentation import CatSegmentationDataModule, collate, train_transform
from datamodules.demo.cats import make_cats
from datamodules.masks import voc_colormap
from tasks.cat_segmentation import CatSegmentationTask, DiceCELoss, UNet, soft_dice_loss
from tasks.cli import cli

TINY_MODEL = ["--model.init_args.init_features=4"]
TINY_DEMO = ["--data.init_args.demo_images=8", "--data.init_args.image_size=32"]


def write_voc(
    root: Path,
    count: int = 6,
    size: tuple[int, int] = (40, 30),
    mask_mode: str = "P",
    foreground: int = 1,
    lists: bool = False,
) -> Path:
    """A VOC-style folder: JPEG images, masks with a `foreground` square and a 255 border."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClassPNG").mkdir()
    rng = np.random.default_rng(0)
    width, height = size
    for i in range(count):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "JPEGImages" / f"img{i}.jpg")
        mask = np.zeros((height, width), np.uint8)
        mask[5:20, 5 + i : 25 + i] = foreground
        if mask_mode == "P":
            mask[4, 5:25] = 255  # VOC's border around the object
            png = Image.fromarray(mask, mode="P")
            png.putpalette(voc_colormap().tobytes())
        else:
            png = Image.fromarray(mask, mode="L")
        png.save(root / "SegmentationClassPNG" / f"img{i}.png")
    if lists:
        sets = root / "ImageSets" / "Segmentation"
        sets.mkdir(parents=True)
        (sets / "train.txt").write_text("\n".join(f"img{i}" for i in range(count - 2)) + "\n")
        (sets / "val.txt").write_text(f"img{count - 2}\nimg{count - 1}\n")
    return root


# --- the network and the loss -----------------------------------------------------------------


def test_unet_registers_batchnorm_and_pads_odd_sizes() -> None:
    net = UNet(3, 1, init_features=4)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 18  # 9 blocks x 2, created once in __init__
    assert sum(k.endswith("running_mean") for k in net.state_dict()) == 18
    x = torch.randn(2, 3, 37, 50)  # neither side is a multiple of 16
    out = net(x)
    assert out.shape == (2, 1, 37, 50)
    assert torch.isfinite(out).all()
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def _logits(probs: list[list[float]]) -> torch.Tensor:
    p = torch.tensor(probs)
    return torch.log(p / (1 - p))[None, None]  # (1, 1, H, W)


@pytest.mark.parametrize("channels", [1, 3], ids=["binary", "three_classes"])
@pytest.mark.parametrize("dice_weight", [1.0, 0.5, 0.0], ids=["dice", "dice_ce", "ce"])
def test_losses_pass_gradcheck_in_float64(channels: int, dice_weight: float) -> None:
    """The course's check: analytic gradients equal finite differences (float64)."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, channels, 5, 4, dtype=torch.float64, generator=generator)
    target = torch.randint(0, max(channels, 2), (2, 5, 4), generator=generator)
    target[0, 0, :2] = 255  # ignored pixels count for neither side
    loss = DiceCELoss(dice_weight=dice_weight, smooth=1.0)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits.requires_grad_(),))
    assert loss(logits, target).dtype == torch.float64  # not rounded through float32


def test_soft_dice_loss_matches_hand_computation() -> None:
    logits = _logits([[0.8, 0.6], [0.2, 0.4]])
    target = torch.tensor([[[1, 1], [0, 0]]])
    # |P ∩ G| = 0.8 + 0.6, |P| = 2.0, |G| = 2: Dice = (2 * 1.4 + 1) / (2.0 + 2 + 1)
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - 3.8 / 5.0, abs=1e-6)
    ignored = torch.tensor([[[1, 1], [0, 255]]])  # the 0.4 pixel no longer counts
    assert soft_dice_loss(ignored.new_tensor(0) + logits, ignored).item() == pytest.approx(
        1 - 3.8 / 4.6, abs=1e-6
    )
    assert soft_dice_loss(logits, target, smooth=0.0).item() == pytest.approx(1 - 2.8 / 4.0)


def test_multiclass_dice_averages_foreground_classes() -> None:
    target = torch.tensor([[[0, 1], [2, 2]]])
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert soft_dice_loss(perfect, target, smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)
    swapped = perfect[:, [0, 2, 1]]  # classes 1 and 2 exchanged: both foregrounds wrong
    assert soft_dice_loss(swapped, target, smooth=0.0).item() == pytest.approx(1.0, abs=1e-6)


def test_loss_is_float32_under_bf16_and_mixes_bce() -> None:
    logits = _logits([[0.8, 0.6], [0.2, 0.4]])
    target = torch.tensor([[[1, 1], [0, 0]]])
    loss = DiceCELoss(dice_weight=1.0)(logits.bfloat16(), target)
    assert loss.dtype == torch.float32
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target.float())
    mixed = DiceCELoss(dice_weight=0.5)(logits, target)
    assert mixed.item() == pytest.approx(0.5 * (1 - 3.8 / 5.0) + 0.5 * bce.item(), abs=1e-6)
    with pytest.raises(ValueError, match="dice_weight"):
        DiceCELoss(dice_weight=1.5)


# --- metrics through Lightning -----------------------------------------------------------------


class _Fixed(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits + self.weight


def test_val_dice_and_iou_match_hand_computation() -> None:
    truth = torch.zeros(1, 4, 4, dtype=torch.long)
    truth[0, :2, :2] = 1  # 4 foreground pixels
    predicted = torch.zeros(1, 4, 4)
    predicted[0, :2, :3] = 1  # 6 pixels, 4 of them right
    truth[0, 3, 3] = 255  # ignored, whatever is predicted there
    predicted[0, 3, 3] = 1
    task = CatSegmentationTask(init_features=4, image_size=4, num_logged_images=0)
    task.net = _Fixed((predicted * 20 - 10)[:, None])
    sample = {"image": torch.zeros(3, 4, 4), "mask": truth[0], "name": "x"}
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (logged,) = trainer.validate(task, DataLoader([sample], batch_size=1, collate_fn=collate))
    # Dice = 2 * 4 / (6 + 4); IoU = 4 / (6 + 4 - 4)
    assert logged["val/dice"] == pytest.approx(0.8)
    assert logged["val/iou"] == pytest.approx(4 / 6)


# --- data: transforms, formats, bad input ------------------------------------------------------


def test_joint_transforms_keep_image_and_mask_aligned() -> None:
    from torchvision import tv_tensors

    mask = np.zeros((40, 40), np.uint8)
    mask[5:35, 5:12] = 1  # an L: asymmetric, so a flip of one but not the other shows
    mask[28:35, 5:30] = 1
    image = np.repeat(mask[None] * 200 + 20, 3, axis=0)
    transform = train_transform(
        image_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_scale=(0.6, 1.0)
    )
    flipped_seen = False
    for seed in range(12):
        torch.manual_seed(seed)
        out, out_mask = transform(tv_tensors.Image(torch.from_numpy(image)), tv_tensors.Mask(mask))
        assert set(out_mask.unique().tolist()) <= {0, 1}  # nearest neighbour: no new values
        grey = out.mean(0)
        bright = grey > (grey.max() + grey.min()) / 2
        # Away from the mask's edges (where the image is interpolated) they agree exactly.
        m = out_mask[None, None].float()
        edge = (F.max_pool2d(m, 3, 1, 1) != -F.max_pool2d(-m, 3, 1, 1))[0, 0]
        edge[[0, -1]] = edge[:, [0, -1]] = True  # the crop's border is interpolated too
        assert (bright == out_mask.bool())[~edge].all()
        assert (bright != out_mask.bool().flip(-1))[~edge].any()
        flipped_seen |= out_mask[:, :8].sum() < out_mask[:, -8:].sum()  # the L's stem moved right
    assert flipped_seen


def test_demo_is_seeded_with_exact_masks() -> None:
    images, masks = make_cats(3, 48, seed=5)
    again, again_masks = make_cats(3, 48, seed=5)
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(masks, again_masks)
    assert set(np.unique(masks).tolist()) == {0, 1}
    assert 0.03 < masks.mean() < 0.5


def test_voc_palette_masks_with_border_and_image_sets(tmp_path: Path, capsys) -> None:
    root = write_voc(tmp_path / "voc", lists=True)
    data = CatSegmentationDataModule(root=str(root), image_size=32, batch_size=4)
    data.setup("fit")
    assert data.source.mask_format.kind == "index"
    assert [len(data.datasets[s]) for s in ("train", "val")] == [4, 2]
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["mask"].dtype == torch.long
    assert set(batch["mask"].unique().tolist()) <= {0, 1, 255}
    out = capsys.readouterr().out
    assert "class-index masks" in out
    assert "255 is ignored" in out


def test_binary_0_255_masks_are_recognised(tmp_path: Path, capsys) -> None:
    root = write_voc(tmp_path / "voc", mask_mode="L", foreground=255)
    data = CatSegmentationDataModule(root=str(root), image_size=32, batch_size=6, val_split=0.34)
    data.setup("fit")
    assert data.source.mask_format.kind == "binary255"
    assert "binary 0/255 masks" in capsys.readouterr().out
    masks = next(iter(data.train_dataloader()))["mask"]
    assert set(masks.unique().tolist()) == {0, 1}


def test_rgb_colour_masks_map_to_class_ids(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", count=3)
    for path in (root / "SegmentationClassPNG").iterdir():
        Image.open(path).convert("RGB").save(path)
    data = CatSegmentationDataModule(root=str(root), image_size=32, val_split=0.34)
    data.setup("fit")
    assert data.source.mask_format.kind == "index"  # (128, 0, 0) is class 1, not a grey level
    values = {
        v
        for i in range(len(data.datasets["train"]))
        for v in data.datasets["train"][i]["mask"].unique().tolist()
    }
    assert values == {0, 1, 255}


def test_missing_mask_names_the_image(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc")
    (root / "SegmentationClassPNG" / "img3.png").unlink()
    data = CatSegmentationDataModule(root=str(root))
    with pytest.raises(FileNotFoundError, match=r"No mask for 1 image.*img3\.jpg.*img3\.png"):
        data.setup("fit")


def test_mask_size_mismatch_names_both_files(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc")
    Image.new("P", (41, 30)).save(root / "SegmentationClassPNG" / "img2.png")
    data = CatSegmentationDataModule(root=str(root))
    with pytest.raises(ValueError, match=r"img2\.jpg is 40x30, .*img2\.png is 41x30"):
        data.setup("fit")


def test_mask_values_outside_label_set_name_the_file(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", foreground=3)  # class 3 in a binary task
    data = CatSegmentationDataModule(root=str(root))
    with pytest.raises(ValueError, match=r"img0\.png: value\(s\) \[3\]"):
        data.setup("fit")
    three = CatSegmentationDataModule(root=str(root), class_names=["bg", "a", "b", "c"])
    three.setup("fit")  # listing the classes fixes it
    assert three.class_names == ["bg", "a", "b", "c"]


def test_corrupt_image_is_a_counted_skip(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc")
    (root / "JPEGImages" / "img1.jpg").write_bytes(b"not a jpeg")
    data = CatSegmentationDataModule(root=str(root), val_split=0.2)
    with pytest.warns(UserWarning, match=r"Skipped 1 unreadable file.*img1\.jpg"):
        data.setup("fit")
    assert len(data.datasets["train"]) + len(data.datasets["val"]) == 5


def test_labelme_folder_points_to_prepare(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "1.json").write_text("{}")
    with pytest.raises(ValueError, match="zoo prepare labelme"):
        CatSegmentationDataModule(root=str(tmp_path / "cats")).setup("fit")


def test_oxford_pet_keeps_cat_breeds_and_reads_trimaps(tmp_path: Path) -> None:
    base = tmp_path / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    # name class-id species breed-id, as in the dataset's lists (species 1 cat, 2 dog)
    pets = [("Abyssinian_1", 1, 1), ("Bengal_2", 6, 1), ("beagle_3", 3, 2), ("Abyssinian_4", 1, 1)]
    trimap = np.full((20, 24), 2, np.uint8)  # background
    trimap[5:15, 5:15] = 1  # pet
    trimap[4, 5:15] = 3  # border
    for name, *_ in pets:
        Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(base / "images" / f"{name}.jpg")
        Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{name}.png")
    lines = [f"{name} {cls} {species} 1" for name, cls, species in pets]
    (base / "annotations" / "trainval.txt").write_text("\n".join(lines[:3]) + "\n")
    (base / "annotations" / "test.txt").write_text(lines[3] + "\n")
    data = CatSegmentationDataModule(root=str(tmp_path), image_size=32, val_split=0.5)
    data.setup("test")
    assert data.source.mask_format.kind == "trimap"
    names = [Path(n).stem for split in data.source.splits.values() for n in split.names]
    assert sorted(names) == ["Abyssinian_1", "Abyssinian_4", "Bengal_2"]  # no beagle
    sample = data.datasets["test"][0]
    assert sample["mask"].unique().tolist() == [0, 1, 255]
    assert data.class_names == ["background", "cat"]


# --- training and prediction -------------------------------------------------------------------


def test_loss_drops_on_demo_data() -> None:
    images, masks = make_cats(16, 32, seed=0)
    batch = {
        "image": torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - 0.5,
        "mask": torch.from_numpy(masks).long(),
    }
    torch.manual_seed(0)
    task = CatSegmentationTask(init_features=8, image_size=32, dice_weight=0.5)
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = task.loss_fn(task.net(batch["image"]), batch["mask"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seg_run")
    args = ["fit", "-c", "configs/cat_segmentation.yaml", *TINY_MODEL, *TINY_DEMO]
    args += ["--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--trainer.max_epochs=1"]
    args += [f"--trainer.logger.init_args.save_dir={folder}"]
    root = Path(__file__).parents[1]
    cli([a.replace("configs/", f"{root}/configs/") for a in args])
    (checkpoint,) = folder.rglob("last.ckpt")
    return checkpoint


def test_predict_writes_masks_and_overlays_at_original_size(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    from skimage import data as skdata

    photo = tmp_path / "chelsea.jpg"
    Image.fromarray(skdata.chelsea()).save(photo)  # a real cat, 451 x 300
    config = Path(__file__).parents[1] / "configs" / "cat_segmentation.yaml"
    cli(
        ["predict", "-c", str(config), *TINY_MODEL, *TINY_DEMO]
        + [f"--ckpt_path={trained_checkpoint}", f"--data.init_args.predict_path={photo}"]
    )
    (table,) = Path().rglob("predictions.csv")
    (row,) = list(csv.DictReader(table.open()))
    mask = Image.open(table.parent / row["mask"])
    overlay = Image.open(table.parent / row["overlay"])
    assert mask.size == overlay.size == (451, 300)
    assert mask.mode == "P"
    assert mask.getpalette()[3:6] == [128, 0, 0]
    assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1}
    assert 0.0 <= float(row["share_cat"]) <= 1.0
    assert float(row["share_background"]) + float(row["share_cat"]) == pytest.approx(1.0)


def test_checkpoint_alone_predicts_images(trained_checkpoint: Path, tmp_path: Path) -> None:
    task = CatSegmentationTask.load_from_checkpoint(trained_checkpoint)
    assert task.class_names == ["background", "cat"]
    path = tmp_path / "odd.png"
    Image.fromarray(np.zeros((45, 70, 3), np.uint8)).save(path)
    (row,) = task.predict_images([path])
    assert row["mask"].size == row["overlay"].size == (70, 45)
    assert math.isfinite(row["share_cat"])


def test_multiclass_masks_train_with_per_class_metrics(tmp_path: Path) -> None:
    root = write_voc(tmp_path / "voc", count=4, foreground=2)
    (root / "class_names.txt").write_text("_background_\ncat\ndog\n")
    data = CatSegmentationDataModule(root=str(root), image_size=32, batch_size=2, val_split=0.5)
    task = CatSegmentationTask(
        class_names=["_background_", "cat", "dog"], image_size=32, init_features=4
    )
    assert task.net.head.out_channels == 3
    trainer = Trainer(
        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    trainer.fit(task, datamodule=data)
    assert {"val/dice", "val/dice_cat", "val/dice_dog", "val/iou_dog"} <= set(
        trainer.logged_metrics
    )


def test_collate_keeps_originals_of_any_size() -> None:
    samples = [
        {"image": torch.zeros(3, 8, 8), "original": torch.zeros(3, 10, 12), "name": "a"},
        {"image": torch.zeros(3, 8, 8), "original": torch.zeros(3, 20, 5), "name": "b"},
    ]
    batch = collate(samples)
    assert batch["image"].shape == (2, 3, 8, 8)
    assert [o.shape[-1] for o in batch["original"]] == [12, 5]
    assert batch["name"] == ["a", "b"]
