"""Synthetic news articles whose one-line summary restates the lead fact (entity, event, number).

Not news: seeded templates. The lead sentence holds the fact; a summary compresses it into a
headline-style line ("Harlow council approves 42 million budget"), so a model must find the lead,
copy its entity and number, and rephrase the verb. The rest of the article is filler that also
mentions other entities and numbers, so copying the wrong ones costs ROUGE.
"""

from __future__ import annotations

import numpy as np

_PLACES = ("Harlow", "Brixton", "Dunmore", "Kelso", "Arden", "Corby", "Selby", "Marlow", "Ilkley",
           "Penrith", "Whitby", "Alston", "Tavira", "Olbia", "Bergen", "Tulsa")  # fmt: skip
_TEAMS = ("Rovers", "United", "Athletic", "Wanderers", "City", "Albion", "Town", "Rangers")
_FIRMS = ("Norcap", "Velto", "Brightline", "Quorra", "Halden", "Mistral", "Oakfield", "Zentek")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# (lead sentence, summary): {p} place, {t} team, {f} firm, {n} number, {d} day
_EVENTS = (
    ("{p} council approved a budget of {n} million pounds on {d}.",
     "{p} council approves {n} million budget"),
    ("The {p} {t} beat their rivals by {n} points in a tense match on {d}.",
     "{p} {t} win by {n} points"),
    ("Shares in {f} rose {n} percent on {d} after strong quarterly results.",
     "{f} shares rise {n} percent"),
    ("A storm cut power to {n} thousand homes across {p} on {d}.",
     "storm cuts power to {n} thousand homes in {p}"),
    ("{f} said on {d} it would cut {n} hundred jobs at its {p} plant.",
     "{f} to cut {n} hundred jobs in {p}"),
    ("Police in {p} arrested {n} people after protests on {d}.",
     "{n} arrested after {p} protests"),
    ("The {p} hospital opened a new ward with {n} beds on {d}.",
     "{p} hospital opens {n} bed ward"),
    ("Voters in {p} elected a new mayor with {n} percent of the vote on {d}.",
     "{p} elects mayor with {n} percent"),
)  # fmt: skip
_FILLERS = (
    "Officials said more details would follow later in the week.",
    "The decision was welcomed by some residents of {p2}.",
    "Local reporters had followed the story for {n2} days.",
    "A spokesperson for {f2} declined to comment.",
    "Similar plans were discussed in {p2} last year.",
    "The weather in the region stayed mild throughout.",
    "Analysts expect further changes before the end of the year.",
    "Around {n2} people attended a public meeting earlier this month.",
    "The {p2} {t2} were not involved.",
    "Critics said the move came too late.",
)


def make_articles(
    count: int, seed: int, fillers: tuple[int, int] = (2, 5)
) -> tuple[list[str], list[str]]:
    """`count` (document, summary) pairs, seeded.

    A document is the lead sentence, then `fillers` (min, max) filler sentences that mention
    other places and numbers.
    """
    rng = np.random.default_rng(seed)

    def pick(words: tuple[str, ...]) -> str:
        return str(rng.choice(words))

    documents, summaries = [], []
    for _ in range(count):
        lead, summary = _EVENTS[rng.integers(len(_EVENTS))]
        slots = {"p": pick(_PLACES), "t": pick(_TEAMS), "f": pick(_FIRMS), "d": pick(_DAYS),
                 "n": str(rng.integers(2, 100))}  # fmt: skip
        others = {"p2": pick(_PLACES), "t2": pick(_TEAMS), "f2": pick(_FIRMS),
                  "n2": str(rng.integers(2, 100))}  # fmt: skip
        size = rng.integers(*fillers, endpoint=True)
        chosen = rng.choice(len(_FILLERS), size=size, replace=False)
        sentences = [lead.format(**slots)] + [_FILLERS[i].format(**others) for i in chosen]
        documents.append(" ".join(sentences))
        text = summary.format(**slots)
        summaries.append(text[0].upper() + text[1:])
    return documents, summaries
