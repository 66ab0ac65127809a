"""The course's cat UNet script (course notes 004, lesson 20; its repo's train.py defaults).

The course's: images and masks resized to 256 x 256 once and kept in memory, pixels / 255 (no
normalisation, no augmentation), its UNet (4 levels from 32 features, two 3x3 conv + BN + ReLU
per block, transposed-conv upsampling, one sigmoid output), its soft Dice loss (smooth 1, summed
over the whole batch), Adam 1e-4, batch 16, shuffled, 0.5 threshold at prediction. Its BatchNorm
layers, created inside `forward` in the notes (so never trained nor put in eval mode), are built
in `__init__` here.

Chosen where the course is silent: the zoo's split (its VOC reader, 20% held out with seed 0),
masks read and decoded by the zoo's mask reader and resized with nearest neighbour (what PIL does
to labelme's palette masks), and the validation metric computed as the zoo's `val/dice`: the
torchmetrics pixel F1 of the cat class, accumulated over every validation pixel at the network's
input size (here 256), prediction = sigmoid > 0.5.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

IMAGE_SIZE, BATCH_SIZE, LR = 256, 16, 1e-4  # the course repo's train.py defaults


class Block(nn.Module):
    """The course's block: (3x3 conv 'same' -> BN -> ReLU) twice, BN built once."""

    def __init__(self, in_channels: int, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, features, 3, padding="same")
        self.bn1 = nn.BatchNorm2d(features)
        self.conv2 = nn.Conv2d(features, features, 3, padding="same")
        self.bn2 = nn.BatchNorm2d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, features, H, W)."""
        x = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(x)))


class UNet(nn.Module):
    """The course's UNet: four encoder blocks, a bottleneck, four up-convolutions with skips."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1, features: int = 32) -> None:
        super().__init__()
        widths = [features * 2**i for i in range(4)]  # 32, 64, 128, 256
        self.encoders = nn.ModuleList(
            Block(c_in, c_out)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.bottleneck = Block(widths[-1], widths[-1] * 2)
        self.upconvs = nn.ModuleList(nn.ConvTranspose2d(2 * w, w, 2, stride=2) for w in widths)
        self.decoders = nn.ModuleList(Block(2 * w, w) for w in widths)
        self.conv = nn.Conv2d(features, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cat probabilities (B, 1, H, W) of images (B, 3, H, W) in [0, 1]."""
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottleneck(x)  # (B, 512, H / 16, W / 16)
        for i in reversed(range(4)):
            x = self.decoders[i](torch.cat((self.upconvs[i](x), skips[i]), dim=1))
        return torch.sigmoid(self.conv(x))


def dice_loss(y_pred: torch.Tensor, y_true: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """The course's DiceLoss: 1 - soft Dice over every pixel of the batch."""
    y_pred, y_true = y_pred[:, 0].reshape(-1), y_true[:, 0].reshape(-1)
    intersection = (y_pred * y_true).sum()
    return 1.0 - (2.0 * intersection + smooth) / (y_pred.sum() + y_true.sum() + smooth)


def baseline(root: str, epochs: int, seed: int = 0) -> tuple[list[float], float]:
    """The course's cat UNet script on the zoo's split: val Dice (cat) per epoch, wall seconds."""
    from PIL import Image
    from torch.utils.data import DataLoader, TensorDataset
    from torchmetrics.classification import MulticlassF1Score

    from datamodules.cat_segmentation import CatSegmentationDataModule
    from datamodules.masks import IGNORE_INDEX, read_mask

    torch.manual_seed(seed)
    start = time.perf_counter()  # reading counts, as in the zoo's fit
    source = CatSegmentationDataModule(root=root).source  # the zoo's reader and seeded split

    def read(split: str) -> TensorDataset:
        data, images, masks = source.splits[split], [], []
        for image_path, mask_path in zip(data.images, data.masks, strict=True):
            with Image.open(image_path) as image:  # the course: resize, then / 255
                image = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE))
                images.append(np.asarray(image, dtype=np.float32) / 255.0)
            mask = source.mask_format.decode(read_mask(mask_path)[0], mask_path)
            mask = Image.fromarray(mask).resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST)
            masks.append(np.asarray(mask))
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, S, S)
        return TensorDataset(x, torch.from_numpy(np.stack(masks)).long())  # (N, S, S) class ids

    train = DataLoader(read("train"), batch_size=BATCH_SIZE, shuffle=True)
    val = DataLoader(read("val"), batch_size=BATCH_SIZE)
    model = UNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    f1 = MulticlassF1Score(2, average="none", ignore_index=IGNORE_INDEX, validate_args=False)
    scores = []
    for _ in range(epochs):
        model.train()
        for x, mask in train:
            # The course's masks are 0/1 floats; an ignored (255) pixel would count as cat there.
            loss = dice_loss(model(x), (mask == 1).float().unsqueeze(1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        f1.reset()
        with torch.no_grad():
            for x, mask in val:
                f1.update((model(x)[:, 0] > 0.5).long(), mask)
        scores.append(float(f1.compute()[1]))  # the cat class, as the zoo's foreground mean
        seconds = time.perf_counter() - start
        print(
            f"baseline epoch {len(scores)}: val dice {scores[-1]:.3f}, {seconds:.0f} s", flush=True
        )
    return scores, time.perf_counter() - start
