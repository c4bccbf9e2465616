"""The words and sentence templates of the synthetic reviews (``datasets/synthetic.py``).

Tables only: the generator in ``synthetic.py`` draws from them. Every aspect has its own nouns;
sentiment words are shared by the aspects or specific to one, by polarity and strength; a tiny
grammar of slots fills the aspect, descriptive and filler templates. Changing a table changes
the generated data (and so the synthetic cells' results).
"""

from __future__ import annotations


def _alts(text: str) -> tuple[str, ...]:
    """``"a|b c|d"`` -> ``("a", "b c", "d")`` (alternatives of a grammar slot)."""
    return tuple(part.strip() for part in text.split("|"))


# Nouns (or noun phrases) that fill the ``{n}`` / ``{n2}`` slots of an aspect's templates.
NOUN_PHRASES: dict[str, tuple[str, ...]] = {
    "appearance": _alts("head|lacing|color|clarity|appearance|foam|look|head retention"),
    "aroma": _alts("smell|nose|aroma|scent|bouquet"),
    "palate": _alts("mouthfeel|body|carbonation|texture|feel|palate"),
    "taste": _alts("taste|flavor|finish|aftertaste|sweetness|bitterness"),
    "overall": _alts("overall|drinkability"),
}
ASPECT_NOUNS: dict[str, frozenset[str]] = {
    aspect: frozenset(w for phrase in phrases for w in phrase.split(" ")) for aspect, phrases in NOUN_PHRASES.items()
}
"""Aspect nouns. Every sentence about an aspect contains at least one of its own nouns and none of
another aspect's; filler sentences contain none at all."""

# Sentiment adjectives shared by all aspects, by polarity (1 positive) and strength (3 strong).
SHARED_ADJECTIVES: dict[int, dict[int, tuple[str, ...]]] = {
    1: {
        3: _alts("superb|excellent|outstanding|fantastic|amazing|wonderful|phenomenal|exceptional"),
        2: _alts("great|lovely|impressive|terrific|delightful"),
        1: _alts("good|nice|pleasant|decent|solid|fine"),
    },
    0: {
        3: _alts("awful|terrible|horrible|dreadful|atrocious|nasty|disgusting"),
        2: _alts("poor|bad|disappointing|unpleasant|weak|lousy"),
        1: _alts("mediocre|bland|dull|lackluster|unremarkable|boring|forgettable|underwhelming"),
    },
}
# Aspect-specific sentiment adjectives (moderate strength), by polarity.
SPECIFIC_ADJECTIVES: dict[str, dict[int, tuple[str, ...]]] = {
    "appearance": {1: _alts("beautiful|gorgeous|attractive|striking"), 0: _alts("ugly|murky|unappealing")},
    "aroma": {1: _alts("fragrant|enticing|aromatic|inviting"), 0: _alts("stale|skunky|musty|faint")},
    "palate": {1: _alts("smooth|creamy|silky|crisp|velvety"), 0: _alts("thin|watery|flat|harsh")},
    "taste": {1: _alts("delicious|tasty|flavorful|balanced"), 0: _alts("cloying|metallic|astringent")},
    "overall": {1: _alts("enjoyable|drinkable|memorable"), 0: _alts("undrinkable|regrettable")},
}
BOOSTERS = _alts("very|really|extremely|truly|incredibly")
MILD_BOOSTERS = _alts("very|really|quite|pretty")
DOWNTONERS = _alts("slightly|somewhat|fairly|a bit|rather")
NEG_PREFIX_FOR_POS = _alts("not|hardly")  # "not bad", "hardly disappointing": weakly positive
NEG_PREFIX_FOR_NEG = _alts("not|hardly|not very|not that|not really")  # "not very good": weakly negative

LEXICON: dict[str, int] = {}
"""Every sentiment word with its polarity (+1 / -1). No other generated word carries sentiment."""
for _pol, _levels in SHARED_ADJECTIVES.items():
    for _words in _levels.values():
        LEXICON.update({w: 1 if _pol else -1 for w in _words})
for _by_pol in SPECIFIC_ADJECTIVES.values():
    for _pol, _words in _by_pol.items():
        LEXICON.update({w: 1 if _pol else -1 for w in _words})
NEGATORS: frozenset[str] = frozenset({"not", "hardly"})
"""Words that flip the polarity of the sentiment word they modify."""
MODIFIERS = frozenset(
    w for phrase in (*BOOSTERS, *MILD_BOOSTERS, *DOWNTONERS, "absolutely", "that") for w in phrase.split(" ")
)

# A tiny grammar: a template is a string of space-separated tokens, and ``{slot}`` expands to one
# alternative of ``GRAMMAR[slot]`` (recursively). The slots ``{n}``, ``{n2}`` (aspect nouns),
# ``{p}``, ``{p2}`` (predicative sentiment), ``{a}`` (attributive sentiment) and ``{d}`` (the
# aspect's descriptor slot, see ``DESCRIPTOR_SLOT``) are filled by the generator.
GRAMMAR: dict[str, tuple[str, ...]] = {
    # appearance
    "color": _alts(
        "golden|amber|copper|dark brown|pitch black|pale straw|orange|ruby red|deep mahogany"
        "|light yellow|hazy gold|chestnut|reddish brown"
    ),
    "clarity": _alts("hazy|cloudy|clear|opaque|translucent|bright"),
    "headsize": _alts("one finger|two finger|three finger|small|tall|thick"),
    "headcolor": _alts("white|off white|tan|khaki|beige|cream colored"),
    "app_d": _alts(
        "{color} with a {headsize} head|{color} and {clarity}|a {headsize} {headcolor} head"
        "|{clarity} {color} in the glass"
    ),
    # aroma and taste (the notes are shared: only the nouns tell the two aspects apart)
    "note": _alts(
        "citrus|pine|caramel|toffee|grapefruit|coffee|chocolate|banana|clove|bread|biscuit|honey|grass"
        "|mango|vanilla|oak|lemon|hops|malt|dark fruit|roasted malt|brown sugar|peach|cherry|raisin"
        "|smoke|pepper"
    ),
    "notes": _alts("{note} and {note}|hints of {note}|lots of {note}|notes of {note} and {note}|some {note}"),
    "aroma_d": _alts("{notes}|{notes} up front|mostly {note}"),
    "taste_d": _alts("{notes} up front|{note} then {note}|mostly {note}|{notes} throughout"),
    "finlen": _alts("short|long|lingering|quick"),
    "dryness": _alts("dry|sweet|bitter|warming"),
    # palate
    "bodyweight": _alts("light|medium|full|medium light|medium full"),
    "carb": _alts("low|moderate|high|medium|light"),
    "carbadj": _alts("fizzy|bubbly|prickly|still"),
    "palate_d": _alts("{bodyweight} body with {carb} carbonation|{bodyweight} bodied and {carbadj}"),
    # overall
    "style": _alts(
        "pale ale|stout|porter|ipa|lager|pilsner|saison|brown ale|wheat beer|barleywine|tripel|dubbel"
        "|red ale|kolsch|bock"
    ),
    "ovd": _alts("for the style|for the price|from this brewery|for a {style}"),
    # fillers
    "shop": _alts("store|shop|bottle shop|liquor store|grocery store|local market|gas station"),
    "shoploc": _alts("downtown|near my house|on the way home|across town|near work|in the city"),
    "glassware": _alts(
        "pint glass|tulip|snifter|goblet|mug|tumbler|teku|nonic pint|wine glass|stemmed tulip|shaker pint"
    ),
    "people": _alts("friends|my brother|a coworker|my wife|some neighbors|my roommate|the family"),
    "person": _alts("my friend|a trader|my cousin|a neighbor|my brother|a coworker|my dad|a buddy"),
    "when": _alts(
        "last weekend|on friday night|after work|at a barbecue|during the game|last night"
        "|on a sunday afternoon|over the holidays|after dinner"
    ),
    "temp": _alts(
        "cold from the fridge|at cellar temperature|at room temperature|right out of the cooler"
        "|a few degrees above fridge temperature|lightly chilled"
    ),
    "bsize": _alts("12 ounce|22 ounce|500 ml|750 ml|brown|green"),
    "datekind": _alts("best before|bottling|freshness"),
    "month": _alts("january|february|march|april|may|june|july|august|september|october|november|december"),
    "ordinal": _alts("first|second|third|fourth|fifth"),
    "labelthing": _alts("red barn|mountain|cartoon fox|sailing ship|lighthouse|bear|old bicycle|skull"),
    "place": _alts("oregon|belgium|vermont|colorado|germany|michigan|california|quebec|maine"),
    "abv": _alts("5|6|7|8|9|10|11|12"),
    "drinkplace": _alts(
        "on the porch|at home|in the backyard|at a tasting|while watching a movie|at a bar|by the fire|at the lake"
    ),
    "cansize": _alts("16 ounce|12 ounce|tall|short"),
    "pack": _alts("six pack|four pack|mixed case|variety pack|single bottle"),
    "price": _alts("three|five|eight|ten|twelve|fifteen"),
    "freq": _alts("a few times|once before|on tap before|at a festival|twice this year"),
    "duration": _alts("a week|two days|a month|a few hours|three weeks"),
    "dist": _alts("five|ten|twenty|fifty|a hundred"),
    "food": _alts("pizza|a burger|tacos|some cheese|grilled chicken|pretzels|chili|fried fish"),
}
DESCRIPTOR_SLOT = {
    "appearance": "app_d",
    "aroma": "aroma_d",
    "palate": "palate_d",
    "taste": "taste_d",
    "overall": "ovd",
}

# Sentiment-bearing templates shared by appearance, aroma, palate and taste.
_GENERIC_SENTIMENT = (
    "the {n} is {p} .",
    "i found the {n} to be {p} .",
    "as for the {n} , it is {p} .",
    "the {n} on this one is {p} .",
    "i have to say the {n} is {p} .",
    "i thought the {n} was {p} .",
    "the {n} is {p} and {p2} .",
    "{a} {n} , {d} .",
    "the {n} is {p} , {d} .",
    "the {n} here is {p} , {d} .",
)
SENTIMENT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "appearance": (
        *_GENERIC_SENTIMENT,
        "it pours a {color} color and the {n} is {p} .",
        "looks {p} in the glass , {color} with a {headsize} head .",
        "{a} {n} on this one , {color} in the glass .",
        "the {n} is {p} and the {n2} is {p2} .",
    ),
    "aroma": (
        *_GENERIC_SENTIMENT,
        "the {n} is {p} , with {notes} .",
        "{a} {n} of {notes} .",
        "the {n} gives off {notes} and is {p} .",
    ),
    "palate": (
        *_GENERIC_SENTIMENT,
        "the {n} is {p} , {bodyweight} body with {carb} carbonation .",
        "{a} {n} , {bodyweight} bodied with {carb} carbonation .",
        "the {n} is {p} and the {n2} is {p2} .",
    ),
    "taste": (
        *_GENERIC_SENTIMENT,
        "the {n} is {p} , {notes} up front .",
        "{a} {n} of {notes} .",
        "the {n} is {p} with {notes} in the middle .",
    ),
    "overall": (
        "overall it is {p} .",
        "overall , a {a} beer {ovd} .",
        "overall i would call it {p} .",
        "the drinkability is {p} .",
        "overall this one is {p} and {p2} .",
        "overall , {p} {ovd} .",
        "drinkability is {p} {ovd} .",
    ),
}
# Sentences about an aspect that carry no sentiment (description only).
NEUTRAL_TEMPLATES: dict[str, tuple[str, ...]] = {
    "appearance": (
        "it pours a {color} color with a {headsize} {headcolor} head .",
        "the color is {color} and {clarity} .",
        "it has a {headsize} {headcolor} head that slowly fades .",
        "the lacing clings to the sides of the glass .",
        "the foam settles into a ring after a minute .",
    ),
    "aroma": (
        "the {n} has {notes} .",
        "on the {n} i get {notes} .",
        "the {n} is mostly {note} with some {note} .",
    ),
    "palate": (
        "it has a {bodyweight} body with {carb} carbonation .",
        "the mouthfeel is {bodyweight} bodied and {carbadj} .",
        "the body is {bodyweight} with {carb} carbonation .",
    ),
    "taste": (
        "the {n} has {notes} .",
        "the taste is mostly {note} with some {note} .",
        "the finish is {finlen} and {dryness} .",
    ),
    "overall": (
        "overall it is a typical {style} .",
        "overall it is what you would expect from a {style} .",
    ),
}

# Neutral filler sentences (no sentiment word, no aspect noun).
FILLER_TEMPLATES: tuple[str, ...] = (
    "i picked this up at a {shop} {shoploc} .",
    "poured into a {glassware} .",
    "had it with {people} {when} .",
    "served {temp} .",
    "{bsize} bottle with a {datekind} date of {month} .",
    "this is my {ordinal} beer from this brewery .",
    "thanks to {person} for sharing this one .",
    "the label shows a {labelthing} .",
    "it was brewed in {place} .",
    "the abv is {abv} percent .",
    "i drank it {drinkplace} .",
    "it came in a {cansize} can from a {pack} .",
    "the bottle says it is a {style} .",
    "it cost about {price} dollars for a {pack} .",
    "i let it warm up for a few minutes before drinking .",
    "this was a gift from {person} .",
    "i have had this one {freq} .",
    "it was stored in the fridge for {duration} .",
    "review from notes taken {when} .",
    "shared a bomber with {people} {when} .",
    "this one was part of a {pack} .",
    "the brewery is about {dist} miles from my house .",
    "i bought it {when} along with a few others .",
    "it was recommended by {person} at the {shop} .",
    "drank it alongside {food} .",
    "the can has a {labelthing} on it .",
    "opened it {when} .",
    "first time trying this {style} .",
    "the bartender poured it from the tap .",
    "got this one in a trade with {person} .",
    "had it in {month} {drinkplace} .",
    "poured from a {bsize} bottle into a {glassware} .",
)
