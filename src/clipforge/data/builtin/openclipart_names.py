"""Titles and captions for Open Clip Art files, from their file names and folders.

Debian's ``openclipart-png`` keeps no titles or keywords (the upstream per-image ``.txt`` files
are not shipped), so the file name is the only text. Upstream named files ``title_author``, cut to
24 characters, plus ``_01`` (or ``_``)::

    2_dead_frogs_lumen_desig_01      → "2 dead frogs"      (author "lumen design…")
    cigni_bianchi_e_neri_arc_01      → "cigni bianchi e neri"   (author "architetto…", cut)
    armadillo_architetto_fra_01      → "armadillo"
    BandeMarquageSecurite            → "bande marquage securite"
    star_90pt23step                  → "90-pointed star"

Authors are learnt from the collection itself (:func:`learn_authors`): a word that ends the names
of at least three files, followed by a surname whose every spelling is a cut of the longest one
("architetto_f", "architetto_fra", "architetto_francesc" …), starts an author. A few one-word
authors found by reading the list are named in :data:`SINGLE_NAME_AUTHORS`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

UPSTREAM_NAME_LENGTH = 24  # titles + authors were cut to this many characters
SINGLE_NAME_AUTHORS = frozenset({"mateya", "mimooh", "peterm", "ganson", "nurbldoff"})
_SUFFIX = re.compile(r"_(\d{1,2}[a-z]?)?$")  # "_01", "_03a", or a bare trailing "_"


def name_tokens(stem: str) -> tuple[list[str], bool]:
    """Words of a file stem without the numbering suffix, and whether the name was cut short."""
    body = _SUFFIX.sub("", stem)
    return [token for token in body.split("_") if token], len(body) >= UPSTREAM_NAME_LENGTH


def learn_authors(stems: Iterable[str], min_titles: int = 3) -> list[str]:
    """Author names as ``first_last`` spellings, longest first, e.g. ``"jon_phillips"``.

    Candidates are the last two words of numbered names. A spelling that no other extends is an
    author when it or its cuts ("jon_phil", "jon_phillip") follow at least ``min_titles``
    different words — a series like "hotel_icon_room_service" follows only one."""
    before: dict[str, set[str]] = defaultdict(set)  # spelling → words seen just before it
    for stem in stems:
        tokens, _ = name_tokens(stem)
        if _SUFFIX.search(stem) and len(tokens) >= 3:
            before["_".join(tokens[-2:])].add(tokens[-3])
    authors = []
    for spelling in before:
        first = spelling.split("_")[0]
        cuts = [
            other for other in before if spelling.startswith(other) and other.split("_")[0] == first
        ]
        extended = any(other != spelling and other.startswith(spelling) for other in before)
        if not extended and len(set().union(*(before[cut] for cut in cuts))) >= min_titles:
            authors.append(spelling)
    return sorted(authors, key=len, reverse=True)


def _is_author(tail: str, authors: list[str], cut_short: bool) -> bool:
    if tail.split("_")[0] in SINGLE_NAME_AUTHORS and "_" not in tail:
        return True
    for author in authors:
        if tail.startswith(author) or (
            author.startswith(tail)
            and (tail.split("_")[0] == author.split("_")[0] or cut_short and len(tail) >= 2)
        ):
            return True
    return False


def title_from_stem(stem: str, authors: list[str]) -> str:
    """The readable title: author and numbering removed, CamelCase split, lower case."""
    tokens, cut_short = name_tokens(stem)
    for start in range(len(tokens)):
        tail = "_".join(tokens[start:])
        if start == 0 and not any(tail.startswith(f"{author}_") for author in authors):
            continue  # a name that is only an author has no title
        if _is_author(tail, authors, cut_short):
            tokens = tokens[:start]
            break
    words = " ".join(tokens).replace("-", " ")
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", words)  # CamelCase → Camel Case
    words = _STAR_POLYGON.sub(r"\1-pointed star", words)  # 1,566 generated stars
    return " ".join(words.lower().split())


_STAR_POLYGON = re.compile(r"^star (\d+)pt\d+step$")  # "star_90pt23step" = {90/23}


def readable_category(folder: str) -> str:
    """``animals/mammals/big_cats`` → ``animals / mammals / big cats``."""
    return " / ".join(part.replace("_", " ").replace("-", " ") for part in folder.split("/"))


def clipart_captions(title: str, folders: list[str]) -> tuple[str, ...]:
    """Captions from the title and the folder(s) a drawing is filed under (first = its own)."""
    place = readable_category(folders[0])
    top = place.split(" / ")[0]
    if not title:
        return (f"a drawing from the {place} clip art collection", f"clip art, {place}")
    captions = [
        f"a drawing of {title}, {place}",
        f"{title}, {place}",
        f"clip art of {title} ({top})",
        f"a drawing of {title}",
    ]
    captions += [f"{title}, {readable_category(other)}" for other in folders[1:]]
    return tuple(captions)
