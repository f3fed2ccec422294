"""Captions and zero-shot class names for emoji, written from their CLDR names and keywords.

Each emoji gets several captions so training can draw a different one each epoch; the first is
the plain, canonical one (``caption_choice="first"`` uses it)::

    an emoji of a grinning face
    grinning face: face, grin
    grinning face
    a grinning face, a smiling face emoji
    an icon of a grinning face (smileys & emotion)

Names with qualifiers become phrases (:func:`phrase`): "waving hand: dark skin tone" is captioned
"an emoji of a waving hand with dark skin tone".

The zero-shot classes are the emoji *subgroups* of ``emoji-test.txt``, renamed to nouns that read
well in a prompt like "an emoji of a {class}": ``face-smiling`` → "smiling face",
``animal-mammal`` → "mammal", ``av-symbol`` → "audio and video symbol". A subgroup missing from
the table (a newer Unicode) falls back to its id with hyphens read as spaces.
"""

from __future__ import annotations

import re

SUBGROUP_CLASS_NAMES: dict[str, str] = {
    "face-smiling": "smiling face",
    "face-affection": "affectionate face",
    "face-tongue": "face with tongue",
    "face-hand": "face with hand",
    "face-neutral-skeptical": "neutral or skeptical face",
    "face-sleepy": "sleepy face",
    "face-unwell": "unwell face",
    "face-hat": "face with hat",
    "face-glasses": "face with glasses",
    "face-concerned": "concerned face",
    "face-negative": "angry face",
    "face-costume": "costume character",
    "cat-face": "cat face",
    "monkey-face": "monkey face",
    "heart": "heart",
    "emotion": "emotion symbol",
    "hand-fingers-open": "open hand",
    "hand-fingers-partial": "hand sign",
    "hand-single-finger": "pointing finger",
    "hand-fingers-closed": "closed hand",
    "hands": "pair of hands",
    "hand-prop": "hand holding something",
    "body-parts": "body part",
    "person": "person",
    "person-gesture": "person gesturing",
    "person-role": "person at work",
    "person-fantasy": "fantasy character",
    "person-activity": "person doing an activity",
    "person-sport": "person playing sport",
    "person-resting": "person resting",
    "family": "family or couple",
    "person-symbol": "person symbol",
    "skin-tone": "skin tone",
    "hair-style": "hair style",
    "animal-mammal": "mammal",
    "animal-bird": "bird",
    "animal-amphibian": "amphibian",
    "animal-reptile": "reptile",
    "animal-marine": "sea animal",
    "animal-bug": "bug",
    "plant-flower": "flower",
    "plant-other": "plant",
    "food-fruit": "fruit",
    "food-vegetable": "vegetable",
    "food-prepared": "prepared food",
    "food-asian": "asian food",
    "food-marine": "seafood",
    "food-sweet": "sweet",
    "drink": "drink",
    "dishware": "dishware",
    "place-map": "map",
    "place-geographic": "landscape",
    "place-building": "building",
    "place-religious": "place of worship",
    "place-other": "place",
    "transport-ground": "land vehicle",
    "transport-water": "boat",
    "transport-air": "aircraft",
    "hotel": "hotel item",
    "time": "clock",
    "sky & weather": "sky and weather",
    "event": "celebration",
    "award-medal": "award",
    "sport": "sports equipment",
    "game": "game",
    "arts & crafts": "arts and crafts",
    "clothing": "clothing",
    "sound": "sound",
    "music": "music",
    "musical-instrument": "musical instrument",
    "phone": "phone",
    "computer": "computer",
    "light & video": "light or camera",
    "book-paper": "book or paper",
    "money": "money",
    "mail": "mail",
    "writing": "writing tool",
    "office": "office supply",
    "lock": "lock",
    "tool": "tool",
    "science": "science",
    "medical": "medical item",
    "household": "household item",
    "other-object": "object",
    "transport-sign": "transport sign",
    "warning": "warning sign",
    "arrow": "arrow",
    "religion": "religious symbol",
    "zodiac": "zodiac sign",
    "av-symbol": "audio and video symbol",
    "gender": "gender sign",
    "math": "math symbol",
    "punctuation": "punctuation mark",
    "currency": "currency sign",
    "other-symbol": "symbol",
    "keycap": "keycap",
    "alphanum": "letter or number",
    "geometric": "geometric shape",
    "flag": "flag",
    "country-flag": "country flag",
    "subdivision-flag": "regional flag",
}

_SOUNDS_LIKE_YOU = ("uni", "use", "one", "euro", "ufo", "ewe")


def class_name(subgroup: str) -> str:
    """The readable zero-shot class for an emoji subgroup."""
    return SUBGROUP_CLASS_NAMES.get(subgroup, subgroup.replace("-", " "))


def base_name(name: str) -> str:
    """The name without skin tones: "handshake: light skin tone, dark skin tone" → "handshake"."""
    head, colon, qualifiers = name.partition(": ")
    kept = [part for part in qualifiers.split(", ") if part and not part.endswith("skin tone")]
    return f"{head}: {', '.join(kept)}" if colon and kept else head


def phrase(name: str) -> str:
    """The CLDR name as a noun phrase::

    flag: Japan                      → flag of Japan
    man: red hair                    → man with red hair
    family: man, woman, boy          → family of man, woman and boy
    waving hand: dark skin tone      → waving hand with dark skin tone
    """
    head, colon, qualifiers = name.partition(": ")
    if not colon:
        return name
    parts = qualifiers.split(", ")
    tones = [part for part in parts if part.endswith("skin tone")]
    others = [part for part in parts if not part.endswith("skin tone")]
    if head in ("flag", "keycap"):
        return f"{head} {'of ' if head == 'flag' else ''}{qualifiers}"
    if "bald" in others:  # "man: bald" → "bald man"
        head, others = f"bald {head}", [part for part in others if part != "bald"]
    if others and all(part in _PEOPLE for part in others):
        people = f"{head}{' of' if head == 'family' else ','} {_and_list(others)}"
        return f"{people}, with {_and_list(tones)}" if tones else people
    features = others + tones
    return f"{head} with {_and_list(features)}" if features else head


_PEOPLE = frozenset({"man", "woman", "person", "boy", "girl", "child", "baby"})


def _and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def with_article(noun_phrase: str) -> str:
    """Prefix "a"/"an", or nothing where the head noun is plural ("an emoji of cherries")."""
    head = re.split(r",| with | of | in | on | holding ", noun_phrase, maxsplit=1)[0].split()
    if not head or _is_plural(head[-1]) or head[0].lower() in ("the", "people", "men", "women"):
        return noun_phrase
    if noun_phrase.startswith("flag of "):
        return f"the {noun_phrase}"
    first = head[0]
    if first.isupper() and len(first.rstrip("!")) <= 3 and first != "NEW":  # spelled out: "an ATM"
        vowel = first[0] in "AEFHILMNORSX"
    else:
        lowered = first.lower()
        vowel = (
            lowered[:1] in "aeiou"
            and not lowered.startswith(_SOUNDS_LIKE_YOU)
            or lowered.startswith(("hour", "x-"))
        )
    return f"{'an' if vowel else 'a'} {noun_phrase}"


def _is_plural(word: str) -> bool:
    word = word.lower()
    return word.endswith("sses") or (word.endswith("s") and not word.endswith(("ss", "us", "is")))


def emoji_captions(
    name: str, keywords: tuple[str, ...], group: str, subgroup: str
) -> tuple[str, ...]:
    """Five varied captions; keywords that only repeat the name are left out."""
    noun = phrase(name)
    said = {_words(noun), _words(name), _words(base_name(name)), _words(name.partition(":")[0])}
    extra = [word for word in keywords if ":" not in word and _words(word) not in said]
    kind = class_name(subgroup)
    return (
        f"an emoji of {with_article(noun)}",
        f"{noun}: {', '.join(extra)}" if extra else f"{noun} emoji",
        noun,
        f"{with_article(noun)}, {with_article(kind)} emoji",
        f"an icon of {with_article(noun)} ({group.lower()})",
    )


def _words(text: str) -> str:
    """Lower-case words without punctuation, to compare keywords with names."""
    return " ".join(re.sub(r"[^\w\s-]", " ", text.lower()).split())
