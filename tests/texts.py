"""Deterministic test texts: long contexts (2 to 10 windows) and non-ASCII contexts."""

from __future__ import annotations

import functools
import random

_WORDS = (
    "the river city north south museum opened century built bridge king queen army war treaty signed "
    "population million people university founded science art music painter novel poem written famous "
    "river flows through valley mountain highest peak lake island coast harbour trade ship merchant "
    "railway station line opened engineer design tower church cathedral stone wall gate market square "
    "school students teacher library book printed language spoken official capital province region "
    "in of and to a was is by for with on at from as that which it its were are has had"
).split()
_NAMES = ["Paris", "Warsaw", "Denver", "Kyoto", "Lagos", "Turing", "Curie", "Nile", "Amazon", "Danube"]


def long_context_cases(tokenizer, seed: int = 7) -> list[tuple[str, str]]:
    """Questions over contexts long enough for 2 to 10 windows (5 of each), checked with ``tokenizer``."""
    return list(_long_context_cases(tokenizer, seed))


@functools.cache  # several test files ask for them in one worker
def _long_context_cases(tokenizer, seed: int) -> tuple[tuple[str, str], ...]:
    rng = random.Random(seed)
    cases = []
    for windows in range(2, 11):
        for _ in range(5):
            target_tokens = 256 * (windows - 1) + rng.randint(150, 250)
            sentences, tokens = [], 0
            while tokens < target_tokens:
                words = rng.choices(_WORDS, k=rng.randint(6, 16))
                words.insert(rng.randrange(len(words)), rng.choice(_NAMES))
                words.insert(rng.randrange(len(words)), str(rng.randint(1, 2024)))
                sentences.append(" ".join(words).capitalize() + rng.choice([".", ".", ",", ";", "!"]))
                # WordPiece splits on whitespace first: the context's tokens are its sentences' tokens.
                tokens += len(tokenizer(sentences[-1], add_special_tokens=False)["input_ids"])
            context = " ".join(sentences)
            question = " ".join(rng.choices(_WORDS + _NAMES, k=rng.randint(3, 9))) + "?"
            cases.append((question, context))
    return tuple(cases)


_FRAGMENTS = [
    "café",
    "naïve",
    "Ångström",
    "résumé",
    "Zürich",
    "São Paulo",
    "Dvořák",
    "Łódź",
    "İstanbul",
    "ΟΔΟΣ",
    "Москва",
    "Ελλάδα",
    "مرحبا",
    "שלום",
    "한국어",
    "東京タワー",
    "北京大学",
    "中文",
    "日本語",
    "กรุงเทพ",
    "😀",
    "👍🏽",
    "🥲",
    "🇫🇷",
    "👩‍🔬",
    "e\u0301",
    "a\u0308bc",
    "n\u0303o",
    "2½",
    "ﬁne",
    "①",
    "™",
    "³",
    "x\u00a0y",
    "\u3000",
    "\u2003",
    "\u200b",
    "\u200d",
    "\u00ad",
    "\u0007",
    "\t",
    "\r\n",
    "\u2028",
    "x\u0000y",
    "\ufeff",
    "\ufffd",
    "\ue000",
    "Ⅻ",
    "ℌ",
    "ǅ",
    "ß",
    "ﬀ",
    "Ǆ",
    "\u0130",
    "K\u212a",
    "«quoted»",
    "“smart”",
    "—dash—",
    "¿qué?",
    "¡sí!",
    "…",
    "§4.2",
    "€10",
    "¥5",
    "°C",
    "µm",
]


def non_ascii_cases(seed: int = 11, count: int = 120) -> list[tuple[str, str]]:
    """Contexts mixing ASCII words with accents, CJK, emoji, combining marks, unusual spaces and controls."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(15, 60)):
            parts.append(rng.choice(_FRAGMENTS) if rng.random() < 0.45 else rng.choice(_WORDS + _NAMES))
            parts.append(rng.choice([" ", " ", " ", "", ", ", ". "]))
        context = "".join(parts).strip() or "café"
        question = " ".join(rng.choice(_FRAGMENTS + _WORDS) for _ in range(rng.randint(2, 6))) + "?"
        cases.append((question, context))
    return cases


_SPECIAL = ["[SEP]", "[MASK]", "[UNK]", "[PAD]", "[CLS]", "[sep]", "[[SEP]]", "x[SEP]y", "[MASK]s"]


def special_token_cases(seed: int = 13, count: int = 40) -> list[tuple[str, str]]:
    """Texts with special tokens written in them (a fast tokenizer makes each one token). The questions have no
    ``[CLS]``: the pipeline unmasks every [CLS] of a window, so one in the question becomes an answer candidate
    (a difference tf-qa keeps; see docs/signatures.md)."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        context = " ".join(
            rng.choice(_SPECIAL) if rng.random() < 0.2 else rng.choice(_WORDS + _NAMES)
            for _ in range(rng.randint(10, 50))
        )
        question = " ".join(rng.choice([s for s in _SPECIAL if "[CLS]" not in s] + _WORDS) for _ in range(4)) + "?"
        cases.append((question, context))
    return cases
