"""ROUGE for summarization, offline: `torchmetrics`' `ROUGEScore` with a local sentence splitter.

ROUGE-Lsum scores the summary sentence by sentence. `torchmetrics` splits sentences with `nltk`'s
Punkt model (`punkt_tab`) and downloads it at run time when it is missing: offline that fails.
Punkt needs only a few parameter files to run, so we write them ourselves (once, into
`~/.cache/lightning-task-zoo/nltk_data`) and append that folder to `nltk.data.path`: Punkt's
algorithm with our list of common English abbreviations, no download. A full `punkt_tab`
installed by the user comes first in the search path and wins.
"""

from __future__ import annotations

from pathlib import Path

from torchmetrics.text import ROUGEScore

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


def rouge_metric() -> ROUGEScore:
    """ROUGE-1/2/L/Lsum with Porter stemming (as Google's `rouge-score` with `use_stemmer`)."""
    offline_punkt()
    return ROUGEScore(use_stemmer=True, rouge_keys=ROUGE_KEYS)


def split_sentences(text: str) -> list[str]:
    """Sentences as ROUGE-Lsum sees them (nltk Punkt, offline)."""
    import nltk

    offline_punkt()
    return nltk.sent_tokenize(text)
