"""ROUGE for summarization, offline and under DDP: `torchmetrics`' ROUGE, kept as sums.

ROUGE-Lsum scores the summary sentence by sentence. `torchmetrics` splits sentences with `nltk`'s
Punkt model (`punkt_tab`) and downloads it at run time when it is missing: offline that fails.
Punkt needs only a few parameter files to run, so we write them ourselves (once, into
`~/.cache/lightning-task-zoo/nltk_data`) and append that folder to `nltk.data.path`: Punkt's
algorithm with our list of common English abbreviations, no download. A full `punkt_tab`
installed by the user comes first in the search path and wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torchmetrics import Metric
from torchmetrics.functional.text import rouge_score

from datamodules.encoded import default_cache_dir

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# Punkt treats a period after these (lowercased, without the final period) as an abbreviation.
ABBREVIATIONS = (
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ft", "no", "vs", "etc", "e.g", "i.e",
    "u.s", "u.k", "u.n", "e.u", "inc", "ltd", "co", "corp", "gov", "gen", "col", "lt", "sgt",
    "capt", "rep", "sen", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "a.m", "p.m", "approx", "dept", "est", "fig",
)  # fmt: skip


def offline_punkt(root: Path | None = None) -> Path:
    """Write a Punkt parameter set for English under `root` and put `root` on nltk's path."""
    import nltk

    root = root or default_cache_dir("nltk_data")
    folder = root / "tokenizers" / "punkt_tab" / "english"
    if not (folder / "abbrev_types.txt").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("collocations.tab", "sent_starters.txt", "ortho_context.tab"):
            (folder / name).write_text("")
        tmp = folder / f"abbrev_types.txt.tmp{id(folder)}"
        tmp.write_text("\n".join(ABBREVIATIONS) + "\n")
        tmp.replace(folder / "abbrev_types.txt")  # last: marks a complete set
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    return root


class Rouge(Metric):
    """Mean ROUGE-1/2/L/Lsum precision, recall and F-measure over documents, Porter-stemmed.

    The same numbers as `torchmetrics.text.ROUGEScore(use_stemmer=True)` (scores per document,
    averaged), kept as sums and a count. `ROUGEScore` stores one tensor per document and gathers
    them one by one, so under DDP a rank with fewer documents makes fewer collective calls than
    the others and the run hangs; evaluation shards differ by one document whenever the count
    does not divide evenly. Sums sync in one call each, whatever the counts.
    """

    full_state_update = False
    names = tuple(
        f"{key}_{part}" for key in ROUGE_KEYS for part in ("precision", "recall", "fmeasure")
    )

    def __init__(self) -> None:
        super().__init__()
        offline_punkt()
        for name in self.names:
            self.add_state(name, torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("documents", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: Sequence[str], target: Sequence[str]) -> None:
        """Add summaries `preds` scored against their references `target`."""
        means = rouge_score(list(preds), list(target), use_stemmer=True, rouge_keys=ROUGE_KEYS)
        for name in self.names:
            setattr(self, name, getattr(self, name) + means[name].double() * len(preds))
        self.documents += len(preds)

    def compute(self) -> dict[str, torch.Tensor]:
        """Means over every document seen (on every rank)."""
        return {name: (getattr(self, name) / self.documents).float() for name in self.names}


def rouge_metric() -> Rouge:
    """ROUGE-1/2/L/Lsum with Porter stemming (as Google's `rouge-score` with `use_stemmer`)."""
    return Rouge()


def pair_scores(summary: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F-measures of one summary against its reference, rounded."""
    offline_punkt()
    scores = rouge_score(summary, reference, use_stemmer=True, rouge_keys=ROUGE_KEYS)
    return {key: round(scores[f"{key}_fmeasure"].item(), 4) for key in ROUGE_KEYS}


def split_sentences(text: str) -> list[str]:
    """Sentences as ROUGE-Lsum sees them (nltk Punkt, offline)."""
    import nltk

    offline_punkt()
    return nltk.sent_tokenize(text)
