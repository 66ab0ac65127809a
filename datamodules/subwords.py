"""Subword tokenizers for the Hugging Face tasks: load one, train one, carry one in a checkpoint.

A pretrained tokenizer comes from a hub name or a local `save_pretrained` folder; offline, a hub
name fails at once with one message saying what to download. Without one (the demos), a
tokenizer is trained on the training texts with `tokenizers`. In a checkpoint a tokenizer is a
plain dict (its `tokenizer.json` text and special tokens), so it loads with
`torch.load(weights_only=True)` and needs neither the data nor the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

WORDPIECE_SPECIALS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
BYTE_BPE_SPECIALS = {
    "bos_token": "<s>",
    "pad_token": "<pad>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "mask_token": "<mask>",
}


def offline_hint(name: str, what: str) -> str:
    """The fix for a hub name that could not be loaded: download it, or point at a folder."""
    return (
        f"Could not load the {what} {name!r}: it is not a local folder and not in the Hugging "
        "Face cache, and the hub cannot be reached (HF_HUB_OFFLINE=1 or no network). On a "
        f"machine with network run `hf download {name}` (it fills the cache), or "
        f"save it there with `.save_pretrained(DIR)`, copy DIR here and pass DIR instead of "
        f"{name!r}."
    )


def load_tokenizer(name: str) -> PreTrainedTokenizerFast:
    """A fast tokenizer from a hub name or a `save_pretrained` folder; a clear error offline."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as error:  # transformers raises OSError for "not found / cannot connect"
        raise OSError(offline_hint(name, "tokenizer")) from error
    if not tokenizer.is_fast:
        raise TypeError(f"{name} has no fast tokenizer (tokenizer.json); the zoo needs one.")
    return tokenizer


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    kind: Literal["wordpiece", "byte_bpe"] = "wordpiece",
    model_max_length: int = 512,
) -> PreTrainedTokenizerFast:
    """Train a subword tokenizer on `texts` with `tokenizers`.

    "wordpiece": BERT's (lowercased, `[CLS] text [SEP]`). "byte_bpe": BART's/GPT-2's byte-level
    BPE (`<s> text </s>`), which never needs an unknown token.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    if kind == "wordpiece":
        specials = WORDPIECE_SPECIALS
        tokenizer = Tokenizer(models.WordPiece(unk_token=specials["unk_token"]))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=list(specials.values())
        )
        first, last = specials["cls_token"], specials["sep_token"]
    else:
        specials = BYTE_BPE_SPECIALS
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(specials.values()),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        first, last = specials["bos_token"], specials["eos_token"]
    tokenizer.train_from_iterator(texts, trainer)
    ids = {token: tokenizer.token_to_id(token) for token in (first, last)}
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}",
        pair=f"{first} $A {last} $B:1 {last}:1",
        special_tokens=list(ids.items()),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=model_max_length, **specials
    )


def tokenizer_to_artifact(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """A fast tokenizer as primitives: its `tokenizer.json` text and special tokens."""
    return {
        "json": tokenizer.backend_tokenizer.to_str(),
        "special_tokens": {k: str(v) for k, v in tokenizer.special_tokens_map.items()},
        "model_max_length": int(min(tokenizer.model_max_length, 1_000_000)),
    }


def tokenizer_from_artifact(artifact: Mapping[str, Any]) -> PreTrainedTokenizerFast:
    """Rebuild the tokenizer `tokenizer_to_artifact` saved (no files, no network)."""
    from tokenizers import Tokenizer

    special = {k: v for k, v in artifact["special_tokens"].items() if isinstance(v, str)}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(artifact["json"]),
        model_max_length=artifact["model_max_length"],
        **special,
    )


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """A short fingerprint of a tokenizer, e.g. for a cache key."""
    import hashlib

    return hashlib.sha1(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()[:16]


def given_tokenizer(
    model_tokenizer: PreTrainedTokenizerBase | None, pretrained: str | None
) -> PreTrainedTokenizerBase | None:
    """The checkpoint's tokenizer, else the pretrained model's (loaded), else None: train one."""
    if model_tokenizer is not None:
        return model_tokenizer
    return load_tokenizer(pretrained) if pretrained else None


def tokenizer_key(
    model_tokenizer: PreTrainedTokenizerBase | None,
    pretrained: str | None,
    kind: Literal["wordpiece", "byte_bpe"],
    vocab_size: int,
) -> Any:
    """What decides the tokenizer, for a cache key, without loading or training one."""
    from datamodules.encoded import folder_fingerprint

    if model_tokenizer is not None:
        return tokenizer_digest(model_tokenizer)
    if pretrained:
        return [pretrained, folder_fingerprint(pretrained)]
    return ["trained", kind, vocab_size]


def trained_tokenizer(
    texts: Iterable[str], vocab_size: int, kind: Literal["wordpiece", "byte_bpe"]
) -> PreTrainedTokenizerFast:
    """`train_tokenizer` on the training texts, saying so."""
    from lightning.pytorch.utilities import rank_zero_info

    rank_zero_info(f"Training a {kind} tokenizer ({vocab_size} tokens) on the training texts")
    return train_tokenizer(texts, vocab_size, kind)


def is_local(name: str) -> bool:
    """Whether `name` is a folder on disk (else a hub name)."""
    return Path(name).expanduser().is_dir()
