"""Coverage and contamination: how the training prompts relate to an eval set (``--against``).

Two findings.

**Contamination.** Eval prompts whose word n-grams occur in training prompts: a reward
model or policy trained on them is later scored on items it has seen, so the benchmark
over-states it. The test is GPT-3's (Brown et al. 2020, *Language Models are Few-Shot
Learners*, §4 and Appendix C): an eval prompt is contaminated when it shares a 13-gram
with a training prompt, or, when shorter than 13 words, when it equals one (after
normalisation; GPT-3 looks for the short example *inside* training documents, we ask for
equality, see :mod:`prefkit.diagnostics.ngrams`). ``n=8, min_share=0.7`` gives the PaLM
rule (Chowdhery et al. 2022, *PaLM: Scaling Language Modeling with Pathways*, §8), counted
per training prompt. Every training prompt is scanned (streamed, no sampling). Responses
are scanned too when ``responses=True``: an eval prompt quoted inside a response is a
weaker leak (the model sees the text, not as an instruction), so it is reported apart.

**Coverage.** For each eval prompt, its nearest training prompt by cosine similarity of
sentence embeddings (all-MiniLM-L6-v2; Reimers and Gurevych 2019, *Sentence-BERT*) when the
``embed`` extra is installed, else of TF-IDF vectors over hashed word unigrams and bigrams
(Salton and Buckley 1988, *Term-weighting approaches in automatic text retrieval*:
sublinear tf, smoothed idf, L2 norm; hashing trick of Weinberger et al. 2009). TF-IDF
rather than MinHash: it grades topical similarity of short prompts that share a few
content words, where MinHash Jaccard over shingles is near 0 for anything but
near-copies, and its exact nearest neighbour is one sparse product. Eval prompts far from
every training prompt measure what the preference data does not teach.

Sampling (coverage only): embedding runs at roughly 100-300 prompts/s on two CPU cores, so
at most ``max_train`` training prompts (a seeded uniform sample) are compared, plus every
training prompt that the n-gram scan matched. With a sample the nearest similarity is a
lower bound and coverage is under-estimated; the finding says so.

Parameters (``ctx.param("coverage", key, default)``)
----------------------------------------------------
n (13)
    Words per n-gram.
min_share (0.0)
    Share of the eval prompt's distinct n-grams that one training prompt must hold (and
    at least one n-gram).
responses (False)
    Also scan response texts.
threshold (0.8 embeddings / 0.5 lexical)
    An eval prompt is *covered* when its nearest training prompt is at least this similar.
far (0.5 embeddings / 0.2 lexical)
    An eval prompt is *far* from training when its nearest similarity is below this.
max_train (5,000 embeddings / 50,000 lexical)
    Training prompts compared for coverage (seeded sample above it).
max_eval (2,000)
    Eval prompts compared for coverage (seeded sample above it).
max_chars (512)
    Characters of each text given to the encoder (MiniLM reads at most 256 word pieces).

Severities
----------
Contamination: ``error`` when at least 5% of the eval prompts are contaminated (enough to
move a benchmark score by points), ``warning`` for any contaminated eval prompt, ``ok``
for none. Coverage: ``warning`` when at least half of the eval prompts are far from every
training prompt, ``info`` from 20%, ``ok`` below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from prefkit.diagnostics.context import Context
from prefkit.diagnostics.findings import Finding, Plot, Table, skipped, snippet
from prefkit.diagnostics.ngrams import DEFAULT_N, EvalIndex, Overlap, find_overlaps, hashed_counts
from prefkit.diagnostics.registry import Check, register

NAME = "coverage"
TITLE = "Coverage and contamination"
#: Contaminated share of the eval set from which contamination is an error.
ERROR_SHARE = 0.05
#: Far share of the eval set from which coverage is a warning / info.
FAR_WARNING, FAR_INFO = 0.5, 0.2
#: Defaults per similarity method: (threshold, far, max_train).
DEFAULTS = {"embedding": (0.8, 0.5, 5_000), "lexical": (0.5, 0.2, 50_000)}
HASH_DIM = 1 << 20
SNIPPET = 120
ENCODE_BATCH = 256
#: Most entries of one dense block of eval x training similarities (bounds memory).
SIM_BLOCK = 4_000_000


# --- helpers ---------------------------------------------------------------------------------
def _snippet(text: str | None) -> str:
    return snippet(text, SNIPPET)


@dataclass
class _Pool:
    """Training prompts compared for coverage: ids and texts."""

    ids: list[str]
    texts: list[str]


def _sampling(
    batches: Iterator[tuple[pa.Array, pa.Array]], chosen: np.ndarray, pool: _Pool
) -> Iterator[tuple[pa.Array, pa.Array]]:
    """Pass batches through, keeping the rows at global positions ``chosen`` (sorted)."""
    offset = 0
    for ids, texts in batches:
        lo, hi = np.searchsorted(chosen, [offset, offset + len(ids)])
        if hi > lo:
            take = pa.array(chosen[lo:hi] - offset)
            pool.ids.extend(pc.take(ids, take).to_pylist())
            pool.texts.extend(pc.fill_null(pc.take(texts, take), "").to_pylist())
        offset += len(ids)
        yield ids, texts


# --- contamination ----------------------------------------------------------------------------
def _contamination(
    ctx: Context, eval_ids: list[str], eval_texts: list[str], over: Overlap, resp: Overlap | None
) -> Finding:
    e = len(eval_texts)
    bad = over.contaminated
    n_bad = int(bad.sum())
    share = n_bad / e
    flagged = list(dict.fromkeys(over.flagged_ids))
    metrics: dict[str, object] = {
        "contaminated": n_bad,
        "contaminated_share": share,
        "eval_prompts": e,
        "training_prompts_flagged": len(flagged),
        "fully_contained": int((over.best_share >= 1.0).sum()),
        "n": over.n,
        "min_share": over.min_share,
        "short_eval_prompts": int(over.short.sum()),
        "training_prompts_scanned": over.scanned,
        "pairs": over.n_pairs,
    }
    ids: dict[str, list[str]] = {"prompt_id": flagged} if flagged else {}
    if resp is not None:
        r_flagged = list(dict.fromkeys(resp.flagged_ids))
        metrics["contaminated_via_responses"] = int((resp.contaminated & ~bad).sum())
        metrics["responses_flagged"] = len(r_flagged)
        if r_flagged:
            ids["response_id"] = r_flagged
    order = np.lexsort((-over.matches, -over.best_share))
    rows = [
        [
            eval_ids[i],
            _snippet(eval_texts[i]),
            over.best_id[i],
            _snippet(over.best_text[i]),
            int(over.best_shared[i]),
            round(float(over.best_share[i]), 3),
            int(over.matches[i]),
        ]
        for i in order[: ctx.options.top]
        if bad[i]
    ]
    tables = []
    if rows:
        tables.append(
            Table(
                "Contaminated eval prompts",
                [
                    "eval prompt",
                    "text",
                    "training prompt_id",
                    "training text",
                    "shared n-grams",
                    "overlap share",
                    "training prompts",
                ],
                rows,
                note=f"overlap share: the eval prompt's distinct {over.n}-grams found in that "
                "training prompt (1 for a short prompt equal to it)",
            )
        )
    s = over.best_share
    buckets = {
        "none": int((~bad).sum()),
        "< 25%": int((bad & (s < 0.25)).sum()),
        "25-50%": int((bad & (s >= 0.25) & (s < 0.5)).sum()),
        "50-100%": int((bad & (s >= 0.5) & (s < 1.0)).sum()),
        "all n-grams": int((bad & (s >= 1.0)).sum()),
    }
    plots = [
        Plot(
            "bar",
            f"Eval prompts by their largest {over.n}-gram overlap with one training prompt",
            list(buckets),
            {"eval prompts": [float(v) for v in buckets.values()]},
            xlabel="share of the eval prompt's n-grams in one training prompt",
            ylabel="eval prompts",
        )
    ]
    if n_bad == 0:
        severity = "ok"
        verdict = (
            f"No eval prompt shares a {over.n}-gram with a training prompt (nor equals one): "
            "no sign of the eval set leaking into this preference data."
        )
    else:
        severity = "error" if share >= ERROR_SHARE else "warning"
        verdict = (
            f"{n_bad} of {e} eval prompts ({share:.1%}) appear in the training prompts "
            f"({len(flagged)} training prompts concerned); scores on them would be inflated, "
            "so drop those training prompts or report the eval set without them."
        )
    return Finding(
        NAME,
        "Contamination with the eval prompts",
        severity,
        verdict,
        metrics,
        tables,
        plots,
        ids,
    )


# --- coverage -------------------------------------------------------------------------------------
def _embed_similarity(
    ctx: Context, encode: Callable[[Sequence[str]], np.ndarray], ev: list[str], pool: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    max_chars = ctx.param(NAME, "max_chars", 512)

    def cut(texts: list[str]) -> list[str]:
        return pc.utf8_slice_codeunits(pa.array(texts, pa.string()), 0, max_chars).to_pylist()

    q = encode(cut(ev))  # (E, d), unit rows
    best = np.full(len(ev), -np.inf, np.float32)
    arg = np.zeros(len(ev), np.int64)
    starts = range(0, len(pool), ENCODE_BATCH)
    for lo in ctx.track(starts, "coverage: embedding training prompts", len(starts)):
        x = encode(cut(pool[lo : lo + ENCODE_BATCH]))  # (B, d)
        sim = q @ x.T  # (E, B)
        j = sim.argmax(axis=1)
        s = sim[np.arange(len(ev)), j]
        better = s > best
        best[better], arg[better] = s[better], j[better] + lo
    return best.astype(np.float64), arg


def _tfidf(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    x = counts.copy()
    x.data = (1.0 + np.log(x.data)) * idf[x.indices]
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ x


def _lexical_similarity(ev: list[str], pool: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ce = hashed_counts(ev, HASH_DIM)
    cp = hashed_counts(pool, HASH_DIM)
    n_docs = ce.shape[0] + cp.shape[0]
    df = np.bincount(ce.indices, minlength=HASH_DIM) + np.bincount(cp.indices, minlength=HASH_DIM)
    idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0  # smoothed idf
    xe, xp = _tfidf(ce, idf), _tfidf(cp, idf).T.tocsr()
    best = np.zeros(len(ev))
    arg = np.zeros(len(ev), np.int64)
    rows = max(1, SIM_BLOCK // max(1, len(pool)))
    for lo in range(0, len(ev), rows):
        sim = (xe[lo : lo + rows] @ xp).toarray()  # (rows, P)
        arg[lo : lo + rows] = sim.argmax(axis=1)
        best[lo : lo + rows] = sim.max(axis=1)
    return best, arg


def _coverage(
    ctx: Context,
    eval_ids: list[str],
    eval_texts: list[str],
    pool: _Pool,
    n_train: int,
    sampled: bool,
    method: str,
    encode: Callable[[Sequence[str]], np.ndarray] | None,
) -> Finding:
    threshold0, far0, _ = DEFAULTS[method]
    threshold = ctx.param(NAME, "threshold", threshold0)
    far = ctx.param(NAME, "far", far0)
    max_eval = max(1, ctx.param(NAME, "max_eval", 2_000))
    chosen = np.arange(len(eval_texts))
    if len(chosen) > max_eval:
        chosen = np.sort(
            ctx.rng("coverage:eval-sample").choice(len(chosen), size=max_eval, replace=False)
        )
    ev = [eval_texts[i] for i in chosen]
    if encode is not None:
        best, arg = _embed_similarity(ctx, encode, ev, pool.texts)
    else:
        best, arg = _lexical_similarity(ev, pool.texts)
    covered = best >= threshold
    distant = best < far
    m = len(ev)
    covered_share, far_share = float(covered.mean()), float(distant.mean())
    label = "all-MiniLM-L6-v2 embeddings" if method == "embedding" else "TF-IDF (word 1-2 grams)"
    metrics: dict[str, object] = {
        "covered_share": covered_share,
        "far_share": far_share,
        "median_nearest_similarity": float(np.median(best)),
        "mean_nearest_similarity": float(best.mean()),
        "threshold": threshold,
        "far": far,
        "method": method,
        "eval_prompts_compared": m,
        "training_prompts_compared": len(pool.texts),
        "training_prompts": n_train,
        "sampled": sampled,
    }
    order = np.argsort(best, kind="stable")
    rows = [
        [
            eval_ids[chosen[i]],
            _snippet(ev[i]),
            pool.ids[arg[i]],
            _snippet(pool.texts[arg[i]]),
            round(float(best[i]), 3),
        ]
        for i in order[: ctx.options.top]
    ]
    edges = np.linspace(0.0, 1.0, 21)
    counts, _ = np.histogram(np.clip(best, 0.0, 1.0), bins=edges)
    plots = [
        Plot(
            "hist",
            f"Similarity of each eval prompt to its nearest training prompt ({label})",
            [round(float(x), 2) for x in edges],
            {"eval prompts": [float(c) for c in counts]},
            xlabel="cosine similarity to the nearest training prompt",
            ylabel="eval prompts",
        )
    ]
    note = f"nearest among {len(pool.texts):,} training prompts ({label})"
    if sampled:
        note += (
            f", a seeded sample of the {n_train:,} (plus the n-gram matches): similarities "
            "are lower bounds"
        )
    if m < len(eval_texts):
        note += f"; {m:,} of {len(eval_texts):,} eval prompts sampled"
    tables = [
        Table(
            "Least covered eval prompts",
            ["eval prompt", "text", "nearest training prompt_id", "training text", "similarity"],
            rows,
            note=note,
        )
    ]
    severity = "warning" if far_share >= FAR_WARNING else "info" if far_share >= FAR_INFO else "ok"
    verdict = (
        f"{covered_share:.0%} of the eval prompts have a training prompt with similarity ≥ "
        f"{threshold:g} and {far_share:.0%} are far from all of them (< {far:g}, {label})"
    )
    if severity == "ok":
        verdict += ": the preference data covers the eval set's topics."
    else:
        verdict += (
            ": the preference data teaches little about much of the eval set, so expect "
            "weaker gains there."
        )
    if sampled:
        verdict += (
            f" Compared with a sample of {len(pool.texts):,} of {n_train:,} training prompts."
        )
    return Finding(NAME, "Coverage of the eval prompts", severity, verdict, metrics, tables, plots)


# --- entry point ---------------------------------------------------------------------------------
def run(ctx: Context) -> list[Finding]:
    against = ctx.options.against
    if not against:
        return [skipped(NAME, TITLE, "no eval prompts given (--against)")]
    n_train = ctx.count("prompts")
    if n_train == 0:
        return [skipped(NAME, TITLE, "the dataset has no prompts to compare with the eval set")]
    eval_texts = [t if isinstance(t, str) else "" for t in against]
    given = ctx.options.against_ids
    eval_ids = (
        [str(i) for i in given]
        if given and len(given) == len(eval_texts)
        else [f"#{i + 1}" for i in range(len(eval_texts))]
    )

    encode = ctx.embedder()
    method = "embedding" if encode is not None else "lexical"
    max_train = max(1, ctx.param(NAME, "max_train", DEFAULTS[method][2]))
    sampled = n_train > max_train
    chosen = (
        np.sort(ctx.rng("coverage:train-sample").choice(n_train, size=max_train, replace=False))
        if sampled
        else np.arange(n_train)
    )
    pool = _Pool([], [])

    n = ctx.param(NAME, "n", DEFAULT_N)
    min_share = ctx.param(NAME, "min_share", 0.0)
    index = EvalIndex.build(eval_texts, n)
    batches = ctx.track(
        _sampling(ctx.texts("prompts"), chosen, pool),
        "coverage: n-grams in prompts",
        ctx.n_batches("prompts"),
    )
    over = find_overlaps(index, batches, min_share)
    resp = None
    if ctx.param(NAME, "responses", False) and ctx.count("responses"):
        resp = find_overlaps(
            index,
            ctx.track(
                ctx.texts("responses"),
                "coverage: n-grams in responses",
                ctx.n_batches("responses"),
            ),
            min_share,
        )
    findings = [_contamination(ctx, eval_ids, eval_texts, over, resp)]

    # the n-gram matches join the sample so that a leaked prompt is its own nearest neighbour
    seen = set(pool.ids)
    for bid, btext in zip(over.best_id, over.best_text, strict=True):
        if bid is not None and bid not in seen:
            seen.add(bid)
            pool.ids.append(bid)
            pool.texts.append(btext or "")
    findings.append(_coverage(ctx, eval_ids, eval_texts, pool, n_train, sampled, method, encode))
    return findings


register(
    Check(
        name=NAME,
        title=TITLE,
        summary="eval prompts leaking into training (13-gram overlap) and how close training "
        "prompts come to each eval prompt (embeddings or TF-IDF)",
        run=run,
        needs_against=True,
    )
)
