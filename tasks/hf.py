"""What the Hugging Face tasks (BERT news, BART summarization) share.

Loading a pretrained model with a clear error offline, AdamW's no-decay and layer-wise LR groups,
and the checkpoint artifacts (model config, tokenizer) that make a checkpoint predict on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from datamodules.subwords import offline_hint, tokenizer_from_artifact, tokenizer_to_artifact
from tasks.common import ARTIFACTS

# Normalisation layers, by type: their weights are scales, not features, so no weight decay.
NORMS: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, _BatchNorm)


def from_pretrained(auto_class: Any, name: str, **kwargs: Any) -> PreTrainedModel:
    """`auto_class.from_pretrained(name)`, with one clear error when the model is not here.

    Offline (`HF_HUB_OFFLINE=1`) a missing hub name fails at once (no retries). The model comes
    back in train mode: `from_pretrained` leaves it in eval mode, which would silently switch
    dropout off for the whole fine-tuning (Lightning keeps the modes it finds).
    """
    try:
        model = auto_class.from_pretrained(name, **kwargs)
    except OSError as error:
        raise OSError(offline_hint(name, "model")) from error
    return model.train()


def is_norm_weight(module: nn.Module) -> bool:
    """Whether `module` normalises: LayerNorm, RMSNorm, BatchNorm, GroupNorm, or `*LayerNorm`.

    The name test catches models' own classes (T5's `T5LayerNorm`, ...).
    """
    return isinstance(module, NORMS) or type(module).__name__.endswith(("LayerNorm", "RMSNorm"))


def parameter_groups(model: nn.Module, layer_lr_decay: float | None = None) -> list[dict[str, Any]]:
    """AdamW parameter groups: no weight decay on biases and normalisation weights.

    Found by module type (`is_norm_weight`), and biases as the `bias` of any module. Groups
    without "weight_decay" take the optimizer's. With `layer_lr_decay` (e.g. 0.9), the transformer
    layer k of L gets `lr_scale = decay ** (L - k)`, the embeddings (everything before the
    first layer) `decay ** (L + 1)`, and what follows the layers (pooler, head) the full LR.
    """
    layers = _transformer_layers(model) if layer_lr_decay else None
    depth_of: dict[int, int] = {}
    if layers is not None:
        for k, layer in enumerate(layers, start=1):
            for param in layer.parameters():
                depth_of[id(param)] = k
    groups: dict[tuple[bool, int], list[nn.Parameter]] = {}
    seen: set[int] = set()
    past_layers = False
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            decay = not (name == "bias" or is_norm_weight(module))
            depth = 0
            if layers is not None:
                if id(param) in depth_of:
                    depth, past_layers = depth_of[id(param)], True
                else:
                    depth = len(layers) + 1 if past_layers else 0
            groups.setdefault((decay, depth), []).append(param)
    result = []
    top = len(layers) + 1 if layers is not None else 0
    for (decay, depth), params in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        group: dict[str, Any] = {"params": params, "name": "decay" if decay else "no_decay"}
        if not decay:
            group["weight_decay"] = 0.0
        if layers is not None:
            group["lr_scale"] = layer_lr_decay ** (top - depth)
            group["name"] += f"/layer{depth}" if 0 < depth < top else "/embeddings" * (depth == 0)
            group["name"] += "/head" * (depth == top)
        result.append(group)
    return result


def _transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The longest `nn.ModuleList` of the model: its stack of transformer layers."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ValueError(f"{type(model).__name__} has no layer list for layer_lr_decay")
    return max(lists, key=len)


def save_artifacts(
    checkpoint: dict[str, Any],
    task: Any,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pretrained: str | None,
) -> None:
    """Put the model config and tokenizer (as primitives) in the checkpoint's artifacts.

    They stay outside the hyperparameters; `pretrained` is dropped from those: the weights are
    in the checkpoint, so loading it must not need the hub or the original folder.
    """
    artifacts = checkpoint.setdefault(ARTIFACTS, {})
    artifacts["model_config"] = model.config.to_dict()
    artifacts["tokenizer"] = tokenizer_to_artifact(tokenizer)
    artifacts["task"] = f"{type(task).__module__}.{type(task).__qualname__}"
    artifacts["pretrained"] = pretrained  # where the weights started, for the record
    checkpoint["hyper_parameters"]["pretrained"] = None


def load_artifacts(
    checkpoint: Mapping[str, Any],
) -> tuple[PretrainedConfig, PreTrainedTokenizerBase]:
    """The model config and tokenizer `save_artifacts` stored."""
    artifacts = checkpoint[ARTIFACTS]
    config = dict(artifacts["model_config"])
    config = AutoConfig.for_model(config.pop("model_type"), **config)
    return config, tokenizer_from_artifact(artifacts["tokenizer"])


def export(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: str | Path,
    max_length: int,
) -> Path:
    """Write a `save_pretrained` folder (model, config, tokenizer) for `transformers.pipeline`.

    The tokenizer's `model_max_length` is the task's `max_length`.
    """
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(folder)
    return folder
