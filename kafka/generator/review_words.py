"""The words of synthetic product reviews (``review_text``): labels, noise kinds, what each product category's
reviews talk about, and the sentence templates by sentiment.

Templates are ``str.format`` strings whose fields ``review_text`` draws as they are used: ``{aspect}``, ``{good}``,
``{bad}``, ``{meh}`` (of the product's category), ``{thing}``, ``{brand}``, ``{noun}`` (of the product), ``{pos}``,
``{neg}``, ``{neu}`` (adjectives), ``{i}``/``{adv}`` (an intensifier or nothing), ``{is}`` ("is", or "are" after a
plural aspect), ``{pc}``/``{nc}`` (a positive or negative clause) and the ``WORDS`` keys; a capitalised field
(``{Bad}``) starts with a capital letter.
"""

from __future__ import annotations

from dataclasses import dataclass

NEGATIVE, NEUTRAL, POSITIVE = "negative", "neutral", "positive"
LABELS = (NEGATIVE, NEUTRAL, POSITIVE)
# noise kinds a Review lists (Review.noise)
NEGATION, INTENSIFIER, MIXED, SARCASM, TYPO, FOREIGN, EMOJI = (
    "negation",
    "intensifier",
    "mixed",
    "sarcasm",
    "typo",
    "foreign",
    "emoji",
)
OFF_LABEL, AMBIGUOUS = "off_label", "ambiguous"
NOISE_KINDS = (NEGATION, INTENSIFIER, MIXED, SARCASM, TYPO, FOREIGN, EMOJI, OFF_LABEL, AMBIGUOUS)


@dataclass(frozen=True, slots=True)
class Category:
    """What reviews of a product category talk about: aspects (nouns) and facts (clauses) that are good, bad or
    neither; ``noun`` names one of its products in general ("gadget")."""

    noun: str
    aspects: tuple[str, ...]
    good: tuple[str, ...]
    bad: tuple[str, ...]
    meh: tuple[str, ...]


CATEGORIES: dict[str, Category] = {
    "electronics": Category(
        "gadget",
        ("sound", "battery", "screen", "build quality", "connection", "charging speed"),
        ("the battery lasts all day", "it pairs in seconds", "the sound is crisp and clear", "setup took two minutes"),
        (
            "the battery dies fast",
            "it keeps dropping the connection",
            "it stopped charging after a week",
            "the screen flickers",
            "it overheats within an hour",
        ),
        ("the battery lasts about a day", "setup took a while but worked", "the sound is what you would expect"),
    ),
    "home": Category(
        "home item",
        ("material", "finish", "size", "design", "colour"),
        (
            "it looks lovely in the kitchen",
            "the material feels sturdy",
            "it washes up like new",
            "it fits the space perfectly",
        ),
        (
            "it cracked after the first wash",
            "the handle wobbles",
            "the colour faded within weeks",
            "it arrived chipped",
            "it smells of cheap plastic",
        ),
        ("it is smaller than it looks", "the colour differs slightly from the photo", "it does what it should"),
    ),
    "fashion": Category(
        "piece of clothing",
        ("fit", "fabric", "stitching", "colour", "sizing"),
        (
            "it fits perfectly",
            "the fabric feels soft",
            "it still looks new after many washes",
            "the colour is exactly as pictured",
        ),
        (
            "it runs two sizes small",
            "the seams came apart after one wash",
            "the fabric is itchy",
            "the colour bled in the wash",
        ),
        ("the sizing is a little off", "the fabric is thinner than expected", "it fits, more or less"),
    ),
    "grocery": Category(
        "pantry item",
        ("taste", "freshness", "flavour", "packaging", "portion size"),
        (
            "it tastes fresh",
            "the flavour is rich",
            "it came with a long best-before date",
            "the whole family loves the taste",
        ),
        (
            "it tastes stale",
            "it arrived past its best-before date",
            "the packaging was torn open",
            "the flavour is bland",
        ),
        ("the taste is fine", "it is a bit pricey for the amount", "it tastes like any other brand"),
    ),
    "beauty": Category(
        "beauty product",
        ("scent", "texture", "packaging", "results", "consistency"),
        ("my skin feels so soft", "it absorbs quickly", "the scent is lovely", "a little goes a long way"),
        ("it gave me a rash", "it smells like chemicals", "it leaves a greasy film", "the pump broke on day one"),
        ("the scent fades quickly", "the results are hard to judge so far", "the texture is a bit thick"),
    ),
    "books": Category(
        "book",
        ("story", "writing", "pacing", "print quality", "ending"),
        ("I could not put it down", "the writing is clear", "the ending surprised me", "it explains things well"),
        ("the plot drags", "pages fell out", "it is full of errors", "the ending made no sense"),
        ("some chapters are better than others", "it is a quick read", "the middle part is slow"),
    ),
    "sports": Category(
        "piece of kit",
        ("grip", "comfort", "durability", "weight", "fit"),
        (
            "it survived months of training",
            "the grip is excellent",
            "it is light and comfortable",
            "it made my workouts easier",
        ),
        (
            "the strap snapped after a week",
            "the grip wore off quickly",
            "it gives me blisters",
            "it started to tear after two sessions",
        ),
        ("it is heavier than expected", "it is fine for beginners", "the fit takes some getting used to"),
    ),
    "toys": Category(
        "toy",
        ("pieces", "colours", "instructions", "durability", "fun factor"),
        (
            "the kids play with it every day",
            "the pieces fit together well",
            "it keeps the kids busy for hours",
            "the colours are bright",
        ),
        ("it broke within an hour", "pieces were missing", "the instructions are useless", "the paint chips off"),
        (
            "the kids played with it for a day or two",
            "assembly took longer than expected",
            "it is smaller than in the picture",
        ),
    ),
}
# for a product of no known category (or no product)
GENERIC = Category(
    "product",
    ("quality", "price", "packaging", "design"),
    ("it arrived quickly", "it is great value for the price", "it works exactly as described"),
    ("it arrived late and scratched", "it is not as described", "it broke after two days"),
    ("delivery took a few days", "it is about what the price suggests", "the packaging was plain"),
)

POS_ADJECTIVES = ("great", "excellent", "fantastic", "superb", "impressive", "lovely", "solid", "perfect")
NEG_ADJECTIVES = ("terrible", "poor", "awful", "disappointing", "weak", "flimsy", "cheap", "bad")
NEU_ADJECTIVES = ("okay", "average", "fine", "acceptable", "so-so", "nothing special", "as expected", "alright")
INTENSIFIERS = ("really ", "absolutely ", "extremely ", "so ", "super ", "incredibly ", "very ", "truly ")
# intensifiers of a verb ("really love", "would absolutely recommend")
ADVERBS = ("really ", "absolutely ", "truly ", "honestly ")

# sentence templates ({field}s as the module docstring says) and the noise kind they show, if any
Templates = tuple[tuple[str, str | None], ...]
PLAIN: dict[str, Templates] = {
    POSITIVE: (
        ("{adv}love the {thing}.", None),
        ("the {aspect} {is} {i}{pos}.", None),
        ("{good}.", None),
        ("{brand} {adv}nailed it with this one.", None),
        ("would {adv}recommend the {thing}.", None),
        ("worth every penny.", None),
        ("exactly as described, {i}happy with it.", None),
        ("best {noun} I have bought this year.", None),
        ("five stars, would buy from {brand} again.", None),
        ("not bad at all, {good}.", NEGATION),
        ("can't complain about the {aspect}.", NEGATION),
        ("no complaints so far.", NEGATION),
        ("the {aspect} {is} not {neg} at all.", NEGATION),
        ("never had a problem with it.", NEGATION),
        ("doesn't disappoint.", NEGATION),
    ),
    NEGATIVE: (
        ("the {aspect} {is} {i}{neg}.", None),
        ("{bad}.", None),
        ("{adv}regret buying the {thing}.", None),
        ("waste of money.", None),
        ("returned it the same week.", None),
        ("{i}disappointed with the {aspect}.", None),
        ("one star is generous.", None),
        ("stay away from the {thing}.", None),
        ("would not recommend {brand}.", NEGATION),
        ("not worth the money.", NEGATION),
        ("the {aspect} {is} not {pos}.", NEGATION),
        ("don't buy the {thing}.", NEGATION),
        ("never buying {brand} again.", NEGATION),
    ),
    NEUTRAL: (
        ("it does the job.", None),
        ("okay for the price.", None),
        ("the {aspect} {is} {neu}.", None),
        ("{meh}.", None),
        ("average {noun}.", None),
        ("some things are good, some less so.", None),
        ("about what you expect from {brand}.", None),
        ("three stars: {meh}.", None),
        ("it's fine, I guess.", None),
        ("middle of the road {noun}.", None),
        ("not great, not terrible.", NEGATION),
        ("not the best {noun}, not the worst.", NEGATION),
        ("neither impressed nor disappointed.", NEGATION),
        ("can't say it stands out.", NEGATION),
    ),
}
# one sentence, two clauses: the one after "but" (or "overall") carries the review's label
MIXED_TEMPLATES: dict[str, tuple[str, ...]] = {
    POSITIVE: ("{nc}, but overall {pc}.", "{pc}; only downside: {nc}.", "{nc}, but {pc}, so still happy."),
    NEGATIVE: ("{pc} but {nc}.", "{pc}, however {nc}. Sending it back.", "looked {pos} at first, but {bad}."),
    NEUTRAL: ("{pc} but {nc}.", "{pc}, {nc}, so it evens out.", "{nc}, but {pc}. Mixed feelings."),
}
CLAUSES = {"pc": ("the {aspect} {is} {i}{pos}", "{good}"), "nc": ("the {aspect} {is} {i}{neg}", "{bad}")}
# negative reviews that say the opposite of what they mean
SARCASM_TEMPLATES = (
    "oh great, {bad}.",
    "just perfect: {bad}.",
    "wow, {i}amazing quality. {Bad}.",
    "love how {bad}.",
    "thanks {brand}, {bad}. Brilliant.",
    "oh great, it broke on day two.",
    "fantastic, straight into the bin it goes.",
    "five stars for the packaging, zero for the {thing}.",
    "best {noun} ever. Said no one.",
    "yeah, 'premium quality'. Sure.",
)
# later sentences about the order, not the product
FILLER = (
    "delivery took three days.",
    "bought it for my {relative}.",
    "ordered it on a {day}.",
    "it came in a plain box.",
    "this is my second order from {brand}.",
    "used it for about a {span} now.",
)
AMBIGUOUS_TEMPLATES = (
    "Ok.",
    "Hmm.",
    "See title.",
    "No comment.",
    "It is what it is.",
    "Bought it as a gift.",
    "Second one I have ordered.",
    "Arrived yesterday.",
    "We'll see how it holds up.",
    "Well, it's a {noun}.",
    "My {relative} picked the {thing}.",
    "Used it twice so far.",
)
FOREIGN_TEXTS = {
    POSITIVE: (
        "Très bon produit.",
        "Sehr gut, schnelle Lieferung ✓",
        "Produit génial, je recommande !",
        "Super Qualität, gerne wieder.",
        "Muy buena calidad, lo recomiendo.",
        "Excelente, llegó rápido.",
    ),
    NEGATIVE: (
        "Produit décevant, ne fonctionne plus.",
        "Leider nach zwei Tagen kaputt.",
        "Muy mala calidad, no lo recomiendo.",
        "Qualité médiocre. Très déçu.",
        "Völlig enttäuscht, geht zurück.",
    ),
    NEUTRAL: ("Correct, sans plus.", "Ganz okay für den Preis.", "Está bien, nada especial.", "Geht so. Mittelmäßig."),
}
EMOJIS = {POSITIVE: ("👍", "😍", "❤️", "✓"), NEGATIVE: ("👎", "😡", "😞"), NEUTRAL: ("🤷", "😐")}
WORDS = {
    "relative": ("sister", "dad", "son", "wife", "husband", "neighbour"),
    "day": ("Monday", "Friday", "Sunday"),
    "span": ("week", "month", "fortnight"),
}
