"""Synthetic movie reviews whose sentiment needs word order (negations, intensifiers)."""

from __future__ import annotations

import numpy as np

_POSITIVE = ("good", "great", "wonderful", "brilliant", "moving", "funny", "gripping", "superb",
             "charming", "clever", "beautiful", "memorable")  # fmt: skip
_NEGATIVE = ("bad", "boring", "awful", "dull", "clumsy", "terrible", "predictable", "weak",
             "silly", "painful", "forgettable", "messy")  # fmt: skip
_INTENSIFIERS = ("very", "really", "truly", "extremely", "incredibly")
_SUBJECTS = ("the film", "the movie", "the plot", "the acting", "the script", "the ending",
             "the soundtrack", "the cast", "the dialogue", "the pacing", "this picture",
             "the camera work")  # fmt: skip
_FILLERS = (
    "i saw it on a rainy sunday with two friends.",
    "it runs a little over two hours.",
    "the story follows a family in a small town by the sea.",
    'my sister called it "a classic" before we even started.',
    "there is a long scene in a train station (you will know it when you see it).",
    "the lead actor also made a war film the year before.",
    "we watched the director's cut on a big screen.",
    "it is based on a novel that i have not read.",
    "half the audience had popcorn; the other half had questions.",
    "the second act takes place in winter.",
    "some scenes were shot in black and white!",
    "my grandfather fell asleep twice, which tells you something about the hour.",
)


def _opinion(rng: np.random.Generator) -> tuple[str, int]:
    """One sentence with a sentiment word, maybe intensified (x2) and maybe negated (x-1)."""
    positive = rng.random() < 0.5
    adjective = str(rng.choice(_POSITIVE if positive else _NEGATIVE))
    weight = 1
    if rng.random() < 0.35:
        adjective = f"{rng.choice(_INTENSIFIERS)} {adjective}"
        weight = 2
    subject = str(rng.choice(_SUBJECTS))
    negated = rng.random() < 0.5
    if negated:
        form = rng.integers(4)
        text = (
            f"{subject} was not {adjective}.",
            f"{subject} isn't {adjective} at all.",
            f"i would never call {subject} {adjective}.",
            f"{subject} is far from {adjective}.",
        )[form]
    else:
        form = rng.integers(3)
        text = (
            f"{subject} was {adjective}.",
            f"{subject} is {adjective}, no doubt.",
            f"i found {subject} {adjective}.",
        )[form]
    return text, weight * (1 if positive else -1) * (-1 if negated else 1)


def make_reviews(count: int, seed: int, mean_words: float = 60.0) -> tuple[list[str], list[int]]:
    """`count` synthetic reviews (text, label 0 neg / 1 pos), seeded.

    A review mixes opinion sentences with neutral filler; its label is the sign of the summed
    opinions, where "very" doubles a sentence's weight and "not"/"never"/"isn't"/"far from" flip
    it. Positive and negative words, negations and intensifiers are equally common in both
    classes, so counting words gives chance accuracy: a model must read "not good" as negative.
    Lengths are spread around `mean_words` (IMDB reviews average ~230).
    """
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    while len(texts) < count:
        opinions = [_opinion(rng) for _ in range(rng.integers(1, 4) * 2 - 1)]  # 1, 3 or 5
        score = sum(weight for _, weight in opinions)
        if score == 0:
            continue
        words = max(8.0, rng.gamma(2.0, mean_words / 2.0))  # long-tailed, like real reviews
        fillers = [str(rng.choice(_FILLERS)) for _ in range(int(words / 10))]
        sentences = [text for text, _ in opinions] + fillers
        order = rng.permutation(len(sentences))
        text = " ".join(sentences[i] for i in order)
        if rng.random() < 0.3:
            text = text.replace(". ", ".<br /><br />", 1)  # IMDB's line breaks
        texts.append(text[0].upper() + text[1:])
        labels.append(int(score > 0))
    return texts, labels
