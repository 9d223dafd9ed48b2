"""Synthetic English-like text whose wording carries a planted quality signal.

Texts are strings of template sentences ("The careful engine measures the river.").
A seeded :class:`SentencePool` holds ``POOL_SIZE`` sentences per tier: *bad*, *neutral*
and *good* sentences are the same sentence with only the adjective slot changed (a bad
marker such as "vague", a plain adjective, or a good marker such as "precise"), so every
tier has exactly the same length distribution and length stays independent of quality.
Each sentence also has a *variant* with one noun replaced, used for near-duplicates, and
a *final* form without the trailing space. A text is a run of sentence codes; rendering
is one Arrow ``take`` over the pool whose concatenated bytes are already the texts, so
millions of texts render in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

POOL_SIZE = 512
N_TIERS = 4
BAD, NEUTRAL, GOOD, QUESTION = range(N_TIERS)
#: Texts per rendered chunk; keeps each Arrow string array well below 2 GiB.
CHUNK = 1 << 19

DETERMINERS = ("the", "a", "this", "that", "every", "each", "one", "our", "their", "some")
NOUNS = (
    "engine", "river", "garden", "model", "answer", "system", "teacher", "market", "window",
    "letter", "village", "method", "signal", "machine", "student", "report", "bridge",
    "forest", "program", "table", "planet", "kitchen", "doctor", "question", "network",
    "museum", "recipe", "station", "painter", "language", "record", "harbor", "library",
    "circuit", "farmer", "camera", "island", "ticket", "council", "battery", "valley",
    "journal", "player", "tower", "lesson", "contract", "sensor", "picture", "engineer",
    "mountain", "account", "budget", "channel", "factory", "pattern", "version", "stream",
)  # fmt: skip
VERBS = (
    "build", "find", "explain", "describe", "improve", "measure", "support", "change",
    "follow", "connect", "open", "test", "share", "plan", "record", "protect", "visit",
    "design", "compare", "collect", "produce", "repair", "review", "select", "prepare",
    "count", "paint", "answer", "hold", "guide", "shape", "read", "clean", "move", "form",
)  # fmt: skip
NEUTRAL_ADJECTIVES = (
    "small", "large", "old", "new", "green", "simple", "local", "quiet", "early", "late",
    "round", "bright", "heavy", "light", "wide", "narrow", "modern", "ancient", "common",
    "public", "private", "warm", "cold", "short", "long", "main", "second", "final",
)  # fmt: skip
GOOD_ADJECTIVES = (
    "precise", "clear", "accurate", "useful", "correct", "reliable", "thorough", "careful",
    "relevant", "detailed", "helpful", "concise", "honest", "consistent",
)  # fmt: skip
BAD_ADJECTIVES = (
    "vague", "wrong", "confusing", "unclear", "incorrect", "sloppy", "irrelevant",
    "doubtful", "misleading", "careless", "useless", "random", "broken", "shallow",
)  # fmt: skip
ADVERBS = ("often", "rarely", "quickly", "slowly", "usually", "finally", "today", "again")
PREPOSITIONS = ("near", "under", "behind", "inside", "across", "beyond", "with", "without")

# Slots: D determiner, A adjective (the first A carries the tier marker), N noun (the
# first N is replaced in the near-duplicate variant), V verb, R adverb, P preposition.
STATEMENTS = (
    "D A N V D N .",
    "D A N V D N P D N .",
    "R , D A N V D N P D N .",
    "D A N R V D N .",
    "D N P D A N V D N .",
    "D A N V D N and V D N P D N .",
    "D A N V .",
    "D A N V D N , but D N V D N P D N .",
    "D A N V D N R .",
)
QUESTIONS = (
    "how does D A N V D N ?",
    "why does D A N V D N P D N ?",
    "explain how D A N V D N .",
    "describe why D A N R V D N .",
    "what makes D A N V D N ?",
    "can you compare D A N with D N ?",
)
_SLOTS = {"D": DETERMINERS, "N": NOUNS, "R": ADVERBS, "P": PREPOSITIONS}


def _third_person(verb: str) -> str:
    return verb + "s"


def _sentence(tokens: list[str]) -> str:
    tokens = [
        "an" if t == "a" and i + 1 < len(tokens) and tokens[i + 1][0] in "aeiou" else t
        for i, t in enumerate(tokens)
    ]
    text = " ".join(tokens).replace(" ,", ",").replace(" .", ".").replace(" ?", "?")
    return text[0].upper() + text[1:]


def _fill(template: str, rng: np.random.Generator, question: bool) -> tuple[list[str], int, int]:
    """Tokens of one sentence, the index of its marker slot and of its variant noun."""
    tokens: list[str] = []
    marker = noun = -1
    for slot in template.split():
        if slot == "A":
            if marker < 0:
                marker = len(tokens)
            tokens.append(NEUTRAL_ADJECTIVES[rng.integers(len(NEUTRAL_ADJECTIVES))])
        elif slot == "V":
            verb = VERBS[rng.integers(len(VERBS))]
            tokens.append(
                verb if question and {"does", "makes"} & set(tokens) else _third_person(verb)
            )
        elif slot in _SLOTS:
            if slot == "N" and noun < 0:
                noun = len(tokens)
            words = _SLOTS[slot]
            tokens.append(words[rng.integers(len(words))])
        else:
            tokens.append(slot)
    return tokens, marker, noun


@dataclass
class SentencePool:
    """Rendered sentences indexed by a code (see :meth:`code`).

    Attributes
    ----------
    pieces
        Arrow string array; ``pieces[code]`` is one sentence, with a trailing space unless
        it is the final form.
    words
        Words per code (int32), the same for the bad, neutral and good tier of a sentence.
    """

    pieces: pa.Array
    words: np.ndarray
    nbytes: np.ndarray

    @classmethod
    def build(cls, rng: np.random.Generator, size: int = POOL_SIZE) -> SentencePool:
        """Draw ``size`` statements (in three tiers) and ``size`` questions."""
        texts: dict[tuple[int, int, int], list[str]] = {}
        for tier in range(N_TIERS):
            for variant in (0, 1):
                for final in (0, 1):
                    texts[tier, variant, final] = []
        for _ in range(size):
            for question, templates in ((False, STATEMENTS), (True, QUESTIONS)):
                template = templates[rng.integers(len(templates))]
                tokens, marker, noun = _fill(template, rng, question)
                alt = list(tokens)
                choices = [n for n in NOUNS if n != tokens[noun]]
                alt[noun] = choices[rng.integers(len(choices))]
                tiers = (QUESTION,) if question else (BAD, NEUTRAL, GOOD)
                good = GOOD_ADJECTIVES[rng.integers(len(GOOD_ADJECTIVES))]
                bad = BAD_ADJECTIVES[rng.integers(len(BAD_ADJECTIVES))]
                for tier in tiers:
                    for variant, toks in ((0, tokens), (1, alt)):
                        toks = list(toks)
                        if tier in (GOOD, BAD):
                            toks[marker] = good if tier == GOOD else bad
                        sentence = _sentence(toks)
                        texts[tier, variant, 0].append(sentence + " ")
                        texts[tier, variant, 1].append(sentence)
        flat: list[str] = []
        for tier in range(N_TIERS):
            for variant in (0, 1):
                for final in (0, 1):
                    flat.extend(texts[tier, variant, final])
        pieces = pa.array(flat, type=pa.string())
        words = np.array([len(t.split()) for t in flat], dtype=np.int32)
        nbytes = np.array([len(t.encode()) for t in flat], dtype=np.int64)
        return cls(pieces=pieces, words=words, nbytes=nbytes)

    @property
    def size(self) -> int:
        return len(self.pieces) // (N_TIERS * 4)

    def code(self, tier: np.ndarray | int, variant: np.ndarray | int, final: np.ndarray | int,
             j: np.ndarray | int) -> np.ndarray:  # fmt: skip
        """Code of sentence ``j`` of ``tier`` in its plain/variant and spaced/final form."""
        return np.asarray(((np.asarray(tier) * 2 + variant) * 2 + final) * self.size + j, np.int32)

    @property
    def mean_words(self) -> float:
        """Mean words per neutral statement."""
        start = self.code(NEUTRAL, 0, 0, 0)
        return float(self.words[start : start + self.size].mean())


@dataclass
class Texts:
    """A batch of texts as runs of sentence codes: text ``i`` is ``codes[offsets[i]:offsets[i+1]]``."""

    codes: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, rows: np.ndarray) -> Texts:
        """The texts at ``rows`` (vectorised gather of their code runs)."""
        index, offsets = gather_runs(self.offsets, rows)
        return Texts(self.codes[index], offsets)

    def word_counts(self, pool: SentencePool) -> np.ndarray:
        """Words in each text."""
        return _sum_runs(pool.words[self.codes].astype(np.int64), self.offsets)

    def render(self, pool: SentencePool) -> pa.ChunkedArray:
        """The texts as an Arrow string column (one chunk per ``CHUNK`` texts)."""
        chunks = []
        for lo in range(0, len(self), CHUNK):
            hi = min(lo + CHUNK, len(self))
            codes = self.codes[self.offsets[lo] : self.offsets[hi]]
            pieces = pool.pieces.take(pa.array(codes))
            # The pieces' bytes are already the texts back to back: keep every offset
            # that falls on a text boundary and reuse the data buffer as is.
            piece_offsets = np.frombuffer(pieces.buffers()[1], np.int32)[: len(pieces) + 1]
            bounds = piece_offsets[self.offsets[lo : hi + 1] - self.offsets[lo]]
            chunks.append(
                pa.StringArray.from_buffers(
                    hi - lo, pa.py_buffer(bounds.copy()), pieces.buffers()[2]
                )
            )
        return pa.chunked_array(chunks, type=pa.string())

    def edited(self, rng: np.random.Generator, pool: SentencePool, n_edits: int) -> Texts:
        """A copy with up to ``n_edits`` sentences per text switched to their variant.

        Each switch replaces exactly one word, so a text with at least ``n_edits``
        sentences differs from its original in exactly ``n_edits`` words.
        """
        codes = self.codes.copy()
        counts = np.diff(self.offsets)
        keys = rng.random(len(codes))
        # Rank the sentences of each text by a random key; the n_edits lowest get edited.
        text_of = np.repeat(np.arange(len(self)), counts)
        order = np.lexsort((keys, text_of))
        rank = np.empty(len(codes), np.int64)
        rank[order] = np.arange(len(codes)) - np.repeat(self.offsets[:-1], counts)
        hit = rank < n_edits
        block = codes[hit] // pool.size
        variant_bit = (block // 2) % 2
        codes[hit] += np.where(variant_bit == 0, 2, -2).astype(np.int32) * pool.size
        return Texts(codes, self.offsets.copy())


def draw_texts(
    rng: np.random.Generator,
    pool: SentencePool,
    n_sentences: np.ndarray,
    segment_quality: np.ndarray | None = None,
    signal: float = 0.0,
    question_last: bool = False,
) -> Texts:
    """Draw texts of ``n_sentences[i]`` sentences each.

    Parameters
    ----------
    segment_quality
        ``(n, S)`` latent quality of each text's S consecutive segments, or None for
        neutral text. A sentence in segment ``s`` is a good-marker sentence with
        probability ``signal * sigmoid(q_s)`` and a bad-marker one with probability
        ``signal * (1 - sigmoid(q_s))``; otherwise it is neutral.
    question_last
        End every text with a question (prompts).
    """
    n_sentences = np.maximum(np.asarray(n_sentences, np.int64), 1)
    offsets = np.zeros(len(n_sentences) + 1, np.int64)
    np.cumsum(n_sentences, out=offsets[1:])
    total = int(offsets[-1])
    final = np.zeros(total, bool)
    final[offsets[1:] - 1] = True
    # Per-sentence arrays are int8/int32/float32: texts run to tens of millions of sentences.
    tier = np.full(total, NEUTRAL, np.int8)
    if segment_quality is not None and signal > 0:
        n_seg = segment_quality.shape[1]
        # Sentence p of n lies in segment floor(p * S / n): segment s holds
        # ceil((s+1) n / S) - ceil(s n / S) sentences, so one repeat spreads p_good.
        bounds = -(-np.outer(n_sentences, np.arange(n_seg + 1)) // n_seg)
        p_good = signal / (1.0 + np.exp(-segment_quality))
        p = np.repeat(p_good.astype(np.float32).ravel(), np.diff(bounds, axis=1).ravel())
        u = rng.random(total, dtype=np.float32)
        tier[u < p] = GOOD
        tier[(u >= p) & (u < signal)] = BAD
    if question_last:
        tier[final] = QUESTION
    j = rng.integers(0, pool.size, total, dtype=np.int32)
    block = tier.astype(np.int32) * 4 + final  # variant 0
    return Texts(block * np.int32(pool.size) + j, offsets)


def sentences_for(words: np.ndarray, pool: SentencePool) -> np.ndarray:
    """Number of sentences that gives about ``words`` words."""
    return np.maximum(np.rint(np.asarray(words, float) / pool.mean_words), 1).astype(np.int64)


def gather_runs(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Element indices of runs ``rows`` of a run-length layout, and the new run offsets.

    Run ``i`` covers elements ``offsets[i]:offsets[i+1]``; the result lists the elements
    of ``rows[0]``, then of ``rows[1]``, ... (rows may repeat).
    """
    rows = np.asarray(rows, np.int64)
    counts = np.diff(offsets)[rows]
    new = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(counts, out=new[1:])
    starts = np.repeat(offsets[:-1][rows] - new[:-1], counts)
    return np.arange(new[-1], dtype=np.int64) + starts, new


def _sum_runs(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    csum = np.zeros(len(values) + 1, values.dtype)
    np.cumsum(values, out=csum[1:])
    return csum[offsets[1:]] - csum[offsets[:-1]]


__all__ = ["SentencePool", "Texts", "draw_texts", "gather_runs", "sentences_for"]
