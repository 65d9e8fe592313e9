"""Review text for the synthetic ``customer_events`` reviews, worth training a sentiment model on.

A review's sentiment follows its rating (``sentiment_label``: 1-2 negative, 3 neutral, 4-5 positive), with the
noise real reviews have: negation ("not bad", "not great"), intensifiers ("really", "absolutely"), mixed opinions
("the sound is great but the battery dies fast"), sarcasm ("Oh great, it broke on day two."), typos, one to four
sentences, a few reviews in French, German or Spanish, the odd emoji. About one review in nine points the wrong
way or nowhere (``OFF_LABEL`` and ``AMBIGUOUS``): text written for a neighbouring rating, a mis-click, "Ok.";
so a model cannot be perfect. The words come from the product reference (name, brand and aspects of its
category: sound and battery for electronics, fit and fabric for fashion, taste for grocery ...).

All randomness comes from the ``random.Random`` the writer is given: the same state, the same text.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from lakehouse.kafka.generator.review_words import (
    ADVERBS,
    AMBIGUOUS,
    AMBIGUOUS_TEMPLATES,
    CATEGORIES,
    CLAUSES,
    EMOJI,
    EMOJIS,
    FILLER,
    FOREIGN,
    FOREIGN_TEXTS,
    GENERIC,
    INTENSIFIER,
    INTENSIFIERS,
    LABELS,
    MIXED,
    MIXED_TEMPLATES,
    NEG_ADJECTIVES,
    NEGATIVE,
    NEU_ADJECTIVES,
    NEUTRAL,
    NOISE_KINDS,
    OFF_LABEL,
    PLAIN,
    POS_ADJECTIVES,
    POSITIVE,
    SARCASM,
    SARCASM_TEMPLATES,
    TYPO,
    WORDS,
    Category,
)

__all__ = ["LABELS", "NEGATIVE", "NEUTRAL", "NOISE_KINDS", "POSITIVE", "Review", "ReviewWriter", "sentiment_label"]
T = TypeVar("T")

# the longest text ``ReviewWriter`` writes (the contract sets no limit; four long sentences stay well below it)
MAX_CHARS = 500

# shares of the reviews (of those with text, but NO_TEXT)
NO_TEXT = 0.15
P_FOREIGN = 0.03
P_EMOJI = 0.04
P_TYPOS = 0.2  # reviews typed in a hurry; in those, each longer word has a typo at TYPO_RATE
TYPO_RATE = 0.1
P_SARCASM = 0.22  # of the negative reviews' first sentences
P_MIXED = {NEGATIVE: 0.2, NEUTRAL: 0.35, POSITIVE: 0.2}  # of the first sentences
P_INTENSIFIER = 0.45  # where a sentence has room for one
P_FILLER = 0.3  # a later sentence about the order rather than the product
# how many sentences (the first, then plain or filler ones): unhappy customers write more
SENTENCES = (1, 2, 3, 4)
SENTENCE_WEIGHTS = {
    NEGATIVE: (0.25, 0.35, 0.25, 0.15),
    NEUTRAL: (0.35, 0.35, 0.2, 0.1),
    POSITIVE: (0.45, 0.32, 0.15, 0.08),
}
# by rating: the share of content-free texts ("Ok.", "Bought it as a gift."), more common from happy customers
AMBIGUOUS_RATES = {1: 0.03, 2: 0.03, 3: 0.04, 4: 0.1, 5: 0.11}
# by rating: the share of texts written for a rating of another label, those ratings and their weights. Low ratings
# go with kind words more often (the product was fine, the delivery was not) than high ratings with harsh ones (a
# mis-click); a 3 for a review that sounds like a 4 or a 2 is common.
OFF_LABEL_RATES: dict[int, tuple[float, tuple[int, ...], tuple[float, ...]]] = {
    1: (0.04, (3, 5), (0.6, 0.4)),
    2: (0.06, (3, 4), (0.8, 0.2)),
    3: (0.06, (2, 4), (0.45, 0.55)),
    4: (0.03, (3, 2), (0.8, 0.2)),
    5: (0.015, (3, 1), (0.6, 0.4)),
}


# the share of each star rating among generated reviews (1..5)
RATING_MIX = {1: 0.05, 2: 0.07, 3: 0.13, 4: 0.35, 5: 0.4}


def sentiment_label(rating: int) -> str:
    """The sentiment class of a 1-5 star rating: "negative" (1-2), "neutral" (3) or "positive" (4-5)."""
    if rating in (1, 2):
        return NEGATIVE
    if rating == 3:
        return NEUTRAL
    if rating in (4, 5):
        return POSITIVE
    raise ValueError(f"a rating is 1..5, got {rating!r}")


@dataclass(frozen=True, slots=True)
class Product:
    """A product's words: ``thing`` is its name without the brand, lower-cased but for model names ("USB-C",
    "SPF50")."""

    brand: str
    thing: str
    category: Category

    @classmethod
    def from_reference(cls, row: Mapping[str, str]) -> Product:
        """From a row of the ``products`` reference data (name, brand, category)."""
        name, brand = row["name"], row["brand"]
        rest = name[len(brand) :].strip() if name.startswith(brand) else name
        words = ["-".join(map(_lower_word, word.split("-"))) for word in rest.split()]
        category = CATEGORIES.get(row["category"], GENERIC)
        # a book's title reads badly as "the quiet garden": call it the book
        thing = category.noun if row["category"] == "books" else " ".join(words)
        return cls(brand, thing or category.noun, category)


UNKNOWN_PRODUCT = Product("the brand", "product", GENERIC)


@dataclass(frozen=True, slots=True)
class Review:
    """One review's text, the label its rating gives (``sentiment_label``), the sentiment the text is written
    with (``tone``: the label, another one for ``off_label`` text, None for ``ambiguous`` text) and the noise
    kinds in it (``NOISE_KINDS``)."""

    text: str
    label: str
    tone: str | None
    noise: frozenset[str]


class ReviewWriter:
    """Writes review texts for products of the reference data, drawing only on ``rng``."""

    def __init__(self, rng: random.Random, products: Iterable[Mapping[str, str]] = ()) -> None:
        self.rng = rng
        self.products = {row["product_id"]: Product.from_reference(row) for row in products}

    def write(self, product_id: str | None, rating: int) -> str | None:
        """The review text of a rating of the product, or None (no text) for a share ``NO_TEXT`` of reviews."""
        if self.rng.random() < NO_TEXT:
            return None
        return self.review(product_id, rating).text

    def review(self, product_id: str | None, rating: int) -> Review:
        """A review of the product (an unknown or missing one gets generic words) with the given 1-5 rating."""
        rng = self.rng
        label = sentiment_label(rating)
        product = self.products.get(product_id or "", UNKNOWN_PRODUCT)
        slots = _Slots(rng, product)
        if rng.random() < AMBIGUOUS_RATES[rating]:
            text = _capital(_pick(rng, AMBIGUOUS_TEMPLATES).format_map(slots))
            return self._finish(text, label, None, {AMBIGUOUS, *slots.noise})
        tone, noise = label, set[str]()
        share, ratings, weights = OFF_LABEL_RATES[rating]
        if rng.random() < share:
            tone = sentiment_label(_weighted(rng, ratings, weights))
            noise.add(OFF_LABEL)
        if rng.random() < P_FOREIGN:
            noise.add(FOREIGN)
            return self._finish(_pick(rng, FOREIGN_TEXTS[tone]), label, tone, noise)
        sentences = [self._first(slots, tone, noise)]
        for _ in range(_weighted(rng, SENTENCES, SENTENCE_WEIGHTS[tone]) - 1):
            if rng.random() < P_FILLER:
                template = slots.fresh(FILLER)
            else:
                template, kind = slots.fresh(PLAIN[tone])
                if kind:
                    noise.add(kind)
            sentences.append(_capital(template.format_map(slots)))
        return self._finish(" ".join(sentences), label, tone, noise | slots.noise)

    def _first(self, slots: _Slots, tone: str, noise: set[str]) -> str:
        """The first sentence: sarcastic (negative only), mixed or plain."""
        rng = self.rng
        if tone == NEGATIVE and rng.random() < P_SARCASM:
            noise.add(SARCASM)
            return _capital(_pick(rng, SARCASM_TEMPLATES).format_map(slots))
        if rng.random() < P_MIXED[tone]:
            noise.add(MIXED)
            return _capital(_pick(rng, MIXED_TEMPLATES[tone]).format_map(slots))
        template, kind = slots.fresh(PLAIN[tone])
        if kind:
            noise.add(kind)
        return _capital(template.format_map(slots))

    def _finish(self, text: str, label: str, tone: str | None, noise: set[str]) -> Review:
        """The text with, now and then, an emoji and typos."""
        rng = self.rng
        if rng.random() < P_EMOJI:
            text = f"{text} {_pick(rng, EMOJIS[tone or NEUTRAL])}"
            noise.add(EMOJI)
        if rng.random() < P_TYPOS:
            typed = _typos(rng, text)
            if typed != text:
                text = typed
                noise.add(TYPO)
        return Review(text[:MAX_CHARS], label, tone, frozenset(noise))


# template fields drawn from a word list, and those drawn from the product category's facts (Category fields)
_POOLS: dict[str, Sequence[str]] = {"pos": POS_ADJECTIVES, "neg": NEG_ADJECTIVES, "neu": NEU_ADJECTIVES, **WORDS}
_FACTS = {"aspect": "aspects", "good": "good", "bad": "bad", "meh": "meh"}


class _Slots(dict[str, str]):
    """The fields of a review's templates, each drawn when a template uses it (see ``review_words``): aspects
    and facts without repeats within the review (as templates, ``fresh``), adjectives, an intensifier or none."""

    def __init__(self, rng: random.Random, product: Product) -> None:
        super().__init__()
        self.rng, self.product = rng, product
        self.used: list[object] = []
        self.noise: set[str] = set()
        self.plural = False

    def fresh(self, values: Sequence[T]) -> T:
        """One of ``values`` this review has not used yet (any, once it has used them all)."""
        value = _pick(self.rng, [v for v in values if v not in self.used] or values)
        self.used.append(value)
        return value

    def __missing__(self, key: str) -> str:
        rng, product = self.rng, self.product
        if key in _POOLS:
            return _pick(rng, _POOLS[key])
        if key in _FACTS:
            value = self.fresh(getattr(product.category, _FACTS[key]))
            if key == "aspect":
                self.plural = value.endswith("s")
            return value
        if key in ("i", "adv"):
            if rng.random() < P_INTENSIFIER:
                self.noise.add(INTENSIFIER)
                return _pick(rng, INTENSIFIERS if key == "i" else ADVERBS)
            return ""
        if key in CLAUSES:
            return _pick(rng, CLAUSES[key]).format_map(self)
        if key == "is":
            return "are" if self.plural else "is"
        if key in ("thing", "brand"):
            return product.thing if key == "thing" else product.brand
        if key == "noun":
            return product.category.noun
        if key[:1].isupper():
            return _capital(self.__missing__(key[:1].lower() + key[1:]))
        raise KeyError(f"review template field {{{key}}} is not one of review_words' fields")


def _pick(rng: random.Random, values: Sequence[T]) -> T:
    return values[int(rng.random() * len(values))]


def _weighted(rng: random.Random, values: Sequence[T], weights: Sequence[float]) -> T:
    draw = rng.random() * sum(weights)
    for value, weight in zip(values, weights, strict=True):
        draw -= weight
        if draw < 0:
            return value
    return values[-1]


def _lower_word(word: str) -> str:
    """ "Wireless" and "Cancelling" in lower case, but not "USB", "4K" or "SPF50"."""
    return word.lower() if word[:1].isupper() and word[1:].islower() else word


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _typos(rng: random.Random, text: str) -> str:
    """Swapped, dropped or doubled letters inside a share ``TYPO_RATE`` of the words of four letters or more."""
    words = text.split(" ")
    for n, word in enumerate(words):
        core = word.rstrip(".,;:!?'")
        if len(core) < 4 or not core.isalpha() or rng.random() >= TYPO_RATE:
            continue
        at = 1 + int(rng.random() * (len(core) - 2))  # never the first letter, and a letter follows
        kind = rng.random()
        if kind < 0.4:
            core = core[:at] + core[at + 1] + core[at] + core[at + 2 :]
        elif kind < 0.75:
            core = core[:at] + core[at + 1 :]
        else:
            core = core[:at] + core[at] + core[at:]
        words[n] = core + word[len(word.rstrip(".,;:!?'")) :]
    return " ".join(words)


def sample_reviews(seed: int, count: int, products: Sequence[Mapping[str, str]]) -> list[Review]:
    """``count`` reviews of random ``products`` with the generator's rating mix (``RATING_MIX``), from ``seed``
    alone: a labelled corpus for training and benchmarks outside the event stream."""
    writer, draw = ReviewWriter(random.Random(seed), products), random.Random(seed + 1)
    ratings = draw.choices(list(RATING_MIX), weights=list(RATING_MIX.values()), k=count)
    return [writer.review(draw.choice(products)["product_id"], rating) for rating in ratings]
