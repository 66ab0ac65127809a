"""Synthetic news headlines for four topics (AG News's) whose vocabularies overlap.

Not news: seeded templates. A headline's topic is its main clause's; a fifth of the headlines add
a second clause of another topic ("... as <other topic's clause>"), so a bag of words sees two
topics equally and must guess: only a model that reads word order can score near 100%.
Some nouns belong to two topics ("record", "court", "network", ...), so no single word decides.
"""

from __future__ import annotations

import numpy as np

TOPICS = ("World", "Sports", "Business", "Sci/Tech")

_SUBJECTS = {
    "World": ("the president", "rebels", "the un envoy", "the prime minister", "protesters",
              "the foreign minister", "peacekeepers", "the opposition leader"),
    "Sports": ("the striker", "the champions", "the coach", "the olympic team", "the goalkeeper",
               "the captain", "the defending champion", "the rookie"),
    "Business": ("the central bank", "shareholders", "the chief executive", "the retailer",
                 "investors", "the airline", "the carmaker", "the bank"),
    "Sci/Tech": ("researchers", "the chipmaker", "the space agency", "the software maker",
                 "scientists", "the startup", "the search giant", "engineers"),
}  # fmt: skip
_VERBS = {
    "World": ("signs", "rejects", "condemns", "negotiates", "calls for"),
    "Sports": ("wins", "clinches", "defends", "loses", "scores in"),
    "Business": ("reports", "cuts", "raises", "forecasts", "buys"),
    "Sci/Tech": ("unveils", "launches", "patents", "tests", "releases"),
}  # fmt: skip
# Objects: each topic's own, plus nouns shared with a neighbouring topic.
_OBJECTS = {
    "World": ("a ceasefire", "the treaty", "new sanctions", "the election result",
              "the court ruling", "border talks", "a trade deal", "the summit agenda"),
    "Sports": ("the final", "the title", "a world record", "the cup", "the court ruling",
               "the season opener", "a transfer deal", "the league table"),
    "Business": ("quarterly profit", "interest rates", "a world record", "the merger",
                 "a trade deal", "its outlook", "the network unit", "new shares"),
    "Sci/Tech": ("a new chip", "the network", "a satellite", "the browser", "its outlook",
                 "a robot", "the vaccine trial", "new software"),
}  # fmt: skip
_PLACES = ("in geneva", "on monday", "in tokyo", "after talks", "in london", "on friday",
           "in sydney", "this week", "in new york", "at last")  # fmt: skip
_JOINERS = ("as", "while", "after", "even as")


def _clause(rng: np.random.Generator, topic: str) -> str:
    pick = lambda words: str(rng.choice(words))  # noqa: E731 - a one-line helper
    return f"{pick(_SUBJECTS[topic])} {pick(_VERBS[topic])} {pick(_OBJECTS[topic])}"


def make_headlines(
    count: int, seed: int, second_clause: float = 0.2
) -> tuple[list[str], list[int], list[list[int]]]:
    """`count` headlines, their topic (index into `TOPICS`) and every topic they mention.

    The first clause decides the topic; with probability `second_clause` a clause of another
    topic follows, so the mentioned topics (the multi-label target) are two. Balanced topics.
    """
    rng = np.random.default_rng(seed)
    texts, topics, mentioned = [], [], []
    for i in range(count):
        topic = i % len(TOPICS)
        text = _clause(rng, TOPICS[topic])
        if rng.random() < 0.5:
            text = f"{text} {rng.choice(_PLACES)}"
        both = [topic]
        if rng.random() < second_clause:
            other = int(rng.choice([t for t in range(len(TOPICS)) if t != topic]))
            text = f"{text} {rng.choice(_JOINERS)} {_clause(rng, TOPICS[other])}"
            both = sorted([topic, other])
        texts.append(text[0].upper() + text[1:])
        topics.append(topic)
        mentioned.append(both)
    order = rng.permutation(count)
    return (
        [texts[i] for i in order],
        [topics[i] for i in order],
        [mentioned[i] for i in order],
    )
