"""Log the first convolution's filters as an image grid, from initialisation through training."""

from __future__ import annotations

import math

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn
from torch.nn import functional as F  # noqa: N812
from torchvision.utils import make_grid
from typing_extensions import override

from callbacks.media import log_image

KEY = "first_layer/filters"
MAX_TILES = 256  # more tiles than this make an unreadable image
PADDING = 2  # pixels between tiles, after upscaling
PAD_VALUE = 1.0  # white separators
MAX_ROW_CHANNELS = 16  # grayscale: one filter per row when it has at most this many inputs


def filter_grid(weight: torch.Tensor, upscale: int = 8, nrow: int | None = None) -> torch.Tensor:
    """Conv weights (out, in, kh, kw) as a (3, H, W) float image in [0, 1].

    With 3 input channels each filter is one RGB tile; otherwise each (filter, input channel)
    slice is a grayscale tile, one filter per row when in <= 16. Each tile is min-max normalised
    on its own and upscaled `upscale` times (nearest neighbour); at most 256 tiles (the first
    filters) are drawn. `nrow` is tiles per row (default: square grid, or in_channels).
    """
    if weight.dim() != 4:
        raise ValueError(f"weight must be (out, in, kh, kw), got shape {tuple(weight.shape)}")
    if upscale < 1:
        raise ValueError(f"upscale must be >= 1, got {upscale}")
    weight = weight.detach().float().cpu()
    out_channels, in_channels, kh, kw = weight.shape
    if in_channels == 3:
        tiles = weight[:MAX_TILES]  # (N, 3, kh, kw)
    else:
        # Whole filters first, so rows stay complete when capped.
        tiles = weight[: max(1, MAX_TILES // in_channels)].reshape(-1, 1, kh, kw)[:MAX_TILES]
    if nrow is None:
        rowwise = in_channels != 3 and 1 < in_channels <= MAX_ROW_CHANNELS
        nrow = in_channels if rowwise else math.ceil(math.sqrt(len(tiles)))
    tiles = F.interpolate(tiles, scale_factor=upscale, mode="nearest")
    grid = make_grid(
        tiles, nrow=nrow, padding=PADDING, normalize=True, scale_each=True, pad_value=PAD_VALUE
    )
    return grid.clamp_(0.0, 1.0)  # (3, H, W)


class FirstLayerFilters(Callback):
    """Log the first Conv2d's filters under `first_layer/filters` (an image, via `callbacks.media`).

    Logged at the start of a fresh fit with step -1 (the initialisation; skipped on resume) and at
    the end of every `every_n_epochs`-th training epoch with step = that epoch's index (0-based,
    as the confusion matrices), so step k shows the filters after epoch k. Rendering is
    `filter_grid`: RGB tiles for 3-channel input, else one grayscale tile per (filter, input
    channel), at most 256 tiles. Models without a Conv2d (LSTM, BERT, BART) get one info line and
    nothing is logged.

    Args:
        every_n_epochs: Log after every this many training epochs.
        module_name: Name (as in `named_modules()`) of the Conv2d to draw; default the first one.
        upscale: Nearest-neighbour magnification of each kernel, so 3x3 kernels are visible.
    """

    def __init__(
        self, every_n_epochs: int = 1, module_name: str | None = None, upscale: int = 8
    ) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {upscale}")
        if module_name is not None and not module_name:
            raise ValueError("module_name must be a module name or None, got ''")
        self.every_n_epochs = every_n_epochs
        self.module_name = module_name
        self.upscale = upscale
        self._conv: nn.Conv2d | None = None

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After configure_model, before the sanity check: a bad module_name fails fast.
        modules = dict(pl_module.named_modules())
        convs = [name for name, m in modules.items() if isinstance(m, nn.Conv2d)]
        if self.module_name is None:
            self._conv = modules[convs[0]] if convs else None
            if self._conv is None:
                rank_zero_info(
                    f"FirstLayerFilters: no Conv2d in {type(pl_module).__name__}; "
                    "nothing to visualise"
                )
            return
        module = modules.get(self.module_name)
        if not isinstance(module, nn.Conv2d):
            found = "not found" if module is None else f"a {type(module).__name__}"
            raise ValueError(
                f"FirstLayerFilters: module_name {self.module_name!r} is {found}, not a Conv2d "
                f"in {type(pl_module).__name__}; Conv2d modules: {convs[:5] or 'none'}"
            )
        self._conv = module

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.global_step == 0:  # a resumed run's weights were logged by the first run
            self._log(trainer, step=-1)

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer, step=trainer.current_epoch)

    def _log(self, trainer: Trainer, step: int) -> None:
        if self._conv is None or not trainer.is_global_zero:
            return
        try:
            grid = filter_grid(self._conv.weight, self.upscale)
        except Exception as error:  # noqa: BLE001 - a plot must never kill a run (e.g. FSDP shards)
            rank_zero_warn(f"FirstLayerFilters: could not draw the filters: {error}")
            return
        log_image(trainer, KEY, grid, step=step)
