"""Histograms of layer outputs and parameter gradients every N training steps (a diagnostic)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle
from typing_extensions import override

from callbacks.media import log_histogram

MAX_VALUES = 100_000  # a strided sample of larger tensors is enough for a histogram
T = TypeVar("T")


def _spread(items: Sequence[T], k: int) -> list[T]:
    """At most `k` of `items`, evenly spaced from the first to the last."""
    n = len(items)
    if n <= k:
        return list(items)
    if k == 1:
        return [items[0]]
    return [items[round(i * (n - 1) / (k - 1))] for i in range(k)]


def _sample(tensor: torch.Tensor) -> torch.Tensor:
    """A detached float32 copy of `tensor`, flattened and strided down to <= MAX_VALUES."""
    flat = tensor.detach().flatten()
    flat = flat[:: math.ceil(flat.numel() / MAX_VALUES)] if flat.numel() > MAX_VALUES else flat
    # A copy, not a view: an in-place op downstream (ReLU(inplace=True)) would change a view.
    return flat.to(torch.float32, copy=True)


class ActivationHistograms(Callback):
    """Log histograms of layer outputs and gradients (via `callbacks.media.log_histogram`).

    Every `every_n_steps` optimizer steps (global step 0, N, 2N, ...):
    `activations/<module name>` for the outputs of modules whose class name is in `layer_types`
    (tuple outputs such as LSTM's: the first element; packed sequences: their data), and
    `grads/<parameter name>` for parameter gradients just before the optimizer step. At most
    `max_layers` of each, evenly spread from the first to the last. Forward hooks exist only
    during the logged batches, so other steps cost nothing. Each histogram uses at most 100k
    values (a strided sample). Off by default in configs: a PNG per histogram without a logger.

    Args:
        every_n_steps: Log every this many optimizer steps.
        layer_types: Class names of the modules whose outputs are logged (YAML-friendly strings).
        gradients: Also log parameter gradients.
        max_layers: Most modules, and most parameters, logged per step.
    """

    def __init__(
        self,
        every_n_steps: int = 200,
        layer_types: tuple[str, ...] = ("Conv2d", "Linear", "LSTM", "ReLU"),
        gradients: bool = True,
        max_layers: int = 16,
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if max_layers < 1:
            raise ValueError(f"max_layers must be >= 1, got {max_layers}")
        if isinstance(layer_types, str) or not all(isinstance(t, str) for t in layer_types):
            raise ValueError(
                f"layer_types must be a list of class names such as ['Conv2d', 'Linear'], "
                f"got {layer_types!r}"
            )
        self.every_n_steps = every_n_steps
        self.layer_types = tuple(layer_types)
        self.gradients = gradients
        self.max_layers = max_layers
        self._layers: list[tuple[str, nn.Module]] = []
        self._params: list[tuple[str, nn.Parameter]] = []
        self._handles: list[RemovableHandle] = []
        self._outputs: dict[str, torch.Tensor] = {}
        self._last_step = -1  # with gradient accumulation one step spans several batches

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        types = set(self.layer_types)
        layers = [(n, m) for n, m in pl_module.named_modules() if type(m).__name__ in types]
        params = [(n, p) for n, p in pl_module.named_parameters() if p.requires_grad]
        self._layers = _spread(layers, self.max_layers)
        self._params = _spread(params, self.max_layers) if self.gradients else []
        if not layers:
            rank_zero_info(
                f"ActivationHistograms: no module of types {list(self.layer_types)} in "
                f"{type(pl_module).__name__}; no activation histograms"
            )

    def _due(self, trainer: Trainer) -> bool:
        return trainer.is_global_zero and trainer.global_step % self.every_n_steps == 0

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self._due(trainer) or trainer.global_step == self._last_step:
            return
        self._last_step = trainer.global_step
        for name, module in self._layers:
            self._handles.append(module.register_forward_hook(self._recorder(name)))

    def _recorder(self, name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, tuple) and output:
                output = output[0]  # LSTM: (output, (h, c))
            if isinstance(output, PackedSequence):
                output = output.data
            if isinstance(output, torch.Tensor):
                self._outputs[name] = _sample(output)

        return hook

    @override
    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._handles:
            return
        self._remove_hooks()
        # Logged at the step the batch started with (global_step has advanced since).
        for name, values in self._outputs.items():
            log_histogram(trainer, f"activations/{name}", values, step=self._last_step)
        self._outputs.clear()

    @override
    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        if not self._due(trainer):
            return
        for name, param in self._params:
            if param.grad is not None:
                grad = _sample(param.grad)
                log_histogram(trainer, f"grads/{name}", grad, step=trainer.global_step)

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @override
    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._remove_hooks()

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._remove_hooks()
        self._outputs.clear()
