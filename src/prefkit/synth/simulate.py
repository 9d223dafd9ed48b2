"""`simulate`: a preference dataset drawn from a known latent reward, with planted truth.

Pipeline: draw the annotator panel (:mod:`~prefkit.synth.teachers`), the latent world of
prompts and responses (:mod:`~prefkit.synth.world`), then the feedback of the requested
kind — pairwise judgments or battles through the B-Pref teacher pipeline, Plackett–Luce
rankings, or attribute ratings — plus cyclic triads and exact/near duplicate prompts.
Everything is vectorised with numpy and drawn from one ``numpy.random.Generator`` seeded
with ``config.seed``, so the same config gives identical tables. Every planted value is
recorded in ``Dataset.manifest.planted`` (summaries) and in meta columns (per row).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from prefkit.dataset import Dataset, Manifest
from prefkit.schema import A_WINS, B_WINS, TIE
from prefkit.synth.assemble import (
    Copies,
    Layout,
    attributes_column,
    format_ids,
    list_column,
    messages_column,
    prompt_table,
    render_with_copies,
    tiers_column,
)
from prefkit.synth.config import RATING_MAX, SynthConfig
from prefkit.synth.teachers import (
    Panel,
    base_weights,
    judge,
    make_panel,
    myopic_weights,
    rank,
    sample_distinct,
)
from prefkit.synth.text import SentencePool
from prefkit.synth.world import ELO_TO_NAT, World, build_world

#: What each planted meta column means (also written to ``manifest.planted["columns"]``).
COLUMNS = {
    "prompts.duplicate_of": "prompt id this prompt was copied from (null for originals)",
    "prompts.duplicate_kind": "'exact' or 'near' for copies, null for originals",
    "prompts.cyclic_triad": "true for prompts whose 3 responses are judged in a cycle",
    "responses.true_reward": "latent reward: quality + length_bias * length_z",
    "responses.quality": "latent quality without the length term",
    "responses.n_words": "words in the response",
    "responses.latent": "segment-mean latent attribute vector (order of 'attributes')",
    "responses.duplicate_of": "response id this response was copied from (null for originals)",
    "judgments.margin": "r_a - r_b as the judging annotator's group perceives it",
    "judgments.myopic_margin": "r_a - r_b with myopic segment weights (only when gamma < 1)",
    "judgments.flipped": "the epsilon-mistake teacher reversed the answer",
    "judgments.position_biased": "the answer was forced to 'a' by position bias",
    "judgments.cyclic": "the judgment belongs to a planted cyclic triad",
    "rankings.flipped": "the mistake teacher swapped one adjacent pair",
    "annotators.group": "annotator group (index into group_weights)",
    "annotators.flip_rate": "the annotator's epsilon-mistake rate",
    "annotators.bad": "planted bad annotator (flip rate = bad_flip_rate)",
}


@dataclass
class Events:
    """Judgments or rankings as arrays over world prompts; ``slots`` index a prompt's responses."""

    prompt: np.ndarray
    slots: np.ndarray
    annotator: np.ndarray
    columns: dict[str, np.ndarray]

    def take(self, rows: np.ndarray, prompt: np.ndarray) -> Events:
        return Events(
            prompt,
            self.slots[rows],
            self.annotator[rows],
            {k: v[rows] for k, v in self.columns.items()},
        )


def simulate(config: SynthConfig | None = None, **overrides: Any) -> Dataset:
    """Simulate a preference dataset with known ground truth.

    Parameters
    ----------
    config
        All knobs; defaults to ``SynthConfig()``.
    **overrides
        Knobs to change on top of ``config`` (e.g. ``kind="battles", n_models=5``).

    Returns
    -------
    Dataset
        The tables, with planted ground truth in meta columns (see :data:`COLUMNS`) and in
        ``manifest.planted`` (the config, group weights, bad annotators, duplicate pairs,
        cyclic triads, model skills, counts of skipped/flipped/tied judgments).
    """
    cfg = config or SynthConfig()
    if overrides:
        cfg = cfg.replace(**overrides)
    rng = np.random.default_rng(cfg.seed)
    pool = SentencePool.build(rng)
    panel = make_panel(cfg, rng)
    n_base, n_triads = cfg.n_base_prompts, cfg.n_cyclic_triads
    per_prompt = np.concatenate(
        [np.full(n_base, cfg.responses_per_prompt), np.full(n_triads, 3)]
    ).astype(np.int64)
    world = build_world(cfg, rng, pool, panel, per_prompt)
    events, skipped = None, 0
    if cfg.kind in ("pairwise", "battles"):
        events, skipped = _judgments(cfg, rng, world, panel, n_base)
        if n_triads:
            events = _concat(events, _triads(cfg, rng, world, panel, n_base))
    elif cfg.kind == "rankings":
        events, skipped = _rankings(cfg, rng, world, panel, n_base)
    extra: dict[str, np.ndarray] = _ratings(cfg, rng, world) if cfg.kind == "ratings" else {}
    # Originals are distinct while there are enough of them; past that, some repeat.
    n_copies = cfg.n_exact_copies + cfg.n_near_copies
    originals = rng.choice(n_base, n_copies, replace=n_copies > n_base)
    copies = Copies(
        np.sort(originals[: cfg.n_exact_copies]), np.sort(originals[cfg.n_exact_copies :])
    )
    layout = Layout(world, copies)
    tables = _tables(cfg, rng, pool, world, panel, layout, events, extra)
    planted = _planted(cfg, world, panel, tables, layout)
    planted["counts"]["skipped"] = skipped
    manifest = Manifest(planted=planted, source={"synth": cfg.kind, "seed": cfg.seed})
    ds = Dataset(tables, manifest)
    ds.manifest.lineage.append(
        {"step": "synth.simulate", "params": cfg.to_dict(), "output": ds.fingerprint()}
    )
    return ds


def _judgments(
    cfg: SynthConfig, rng: np.random.Generator, world: World, panel: Panel, n_base: int
) -> tuple[Events, int]:
    """Pairs of each original prompt judged by distinct annotators; also the skip count."""
    pairs = np.array(list(combinations(range(cfg.responses_per_prompt), 2)))  # (C, 2)
    m = cfg.pairs_per_prompt or len(pairs)
    if m < len(pairs):
        chosen = np.sort(sample_distinct(rng, n_base, m, len(pairs)), axis=1)
        slots = pairs[chosen].reshape(-1, 2)
    else:
        slots = np.tile(pairs, (n_base, 1))
    prompt = np.repeat(np.arange(n_base), m)
    j = cfg.judgments_per_pair
    annotator = sample_distinct(rng, len(slots), j, len(panel)).ravel()
    prompt, slots = np.repeat(prompt, j), np.repeat(slots, j, axis=0)
    swap = rng.random(len(prompt)) < 0.5
    slots = np.where(swap[:, None], slots[:, ::-1], slots)
    a, b = world.offsets[prompt] + slots[:, 0], world.offsets[prompt] + slots[:, 1]
    group = panel.group[annotator]
    r_a, r_b = world.perceived[a, group], world.perceived[b, group]
    myopic = world.myopic[a, group] - world.myopic[b, group]
    verdict = judge(rng, cfg, r_a, r_b, myopic, panel.flip_rate[annotator])
    keep = verdict.kept
    columns = {
        "outcome": verdict.outcome,
        "margin": r_a - r_b,
        "flipped": verdict.flipped,
        "position_biased": verdict.position_biased,
        "cyclic": np.zeros(len(a), bool),
    }
    if cfg.gamma < 1:
        columns["myopic_margin"] = myopic
    events = Events(prompt, slots, annotator, columns)
    return events.take(np.flatnonzero(keep), prompt[keep]), int((~keep).sum())


def _triads(
    cfg: SynthConfig, rng: np.random.Generator, world: World, panel: Panel, n_base: int
) -> Events:
    """Cyclic triads: slot 0 beats 1, 1 beats 2 and 2 beats 0, whatever the rewards."""
    cycle = np.array([[0, 1], [1, 2], [2, 0]])  # (winner, loser)
    n_triads, j = cfg.n_cyclic_triads, cfg.judgments_per_pair
    prompt = np.repeat(n_base + np.arange(n_triads), 3 * j)
    winner_loser = np.repeat(np.tile(cycle, (n_triads, 1)), j, axis=0)
    annotator = sample_distinct(rng, 3 * n_triads, j, len(panel)).ravel()
    swap = rng.random(len(prompt)) < 0.5
    slots = np.where(swap[:, None], winner_loser[:, ::-1], winner_loser)
    a, b = world.offsets[prompt] + slots[:, 0], world.offsets[prompt] + slots[:, 1]
    group = panel.group[annotator]
    columns = {
        "outcome": np.where(swap, B_WINS, A_WINS).astype(np.int8),
        "margin": world.perceived[a, group] - world.perceived[b, group],
        "flipped": np.zeros(len(a), bool),
        "position_biased": np.zeros(len(a), bool),
        "cyclic": np.ones(len(a), bool),
    }
    if cfg.gamma < 1:
        columns["myopic_margin"] = world.myopic[a, group] - world.myopic[b, group]
    return Events(prompt, slots, annotator, columns)


def _concat(first: Events, second: Events) -> Events:
    return Events(
        np.concatenate([first.prompt, second.prompt]),
        np.concatenate([first.slots, second.slots]),
        np.concatenate([first.annotator, second.annotator]),
        {k: np.concatenate([v, second.columns[k]]) for k, v in first.columns.items()},
    )


def _rankings(
    cfg: SynthConfig, rng: np.random.Generator, world: World, panel: Panel, n_base: int
) -> tuple[Events, int]:
    """One Plackett–Luce ranking per prompt and judging annotator; also the skip count."""
    r, j = cfg.responses_per_prompt, cfg.judgments_per_pair
    annotator = sample_distinct(rng, n_base, j, len(panel)).ravel()
    prompt = np.repeat(np.arange(n_base), j)
    rows = world.offsets[prompt][:, None] + np.arange(r)  # (n, R)
    group = panel.group[annotator][:, None]
    orders = rank(
        rng,
        cfg,
        world.perceived[rows, group],
        world.myopic[rows, group],
        panel.flip_rate[annotator],
    )
    keep = np.flatnonzero(orders.kept)
    events = Events(
        prompt,
        orders.order,
        annotator,
        {"tier_break": orders.tier_break, "flipped": orders.flipped},
    )
    return events.take(keep, prompt[keep]), len(prompt) - len(keep)


def _ratings(cfg: SynthConfig, rng: np.random.Generator, world: World) -> dict[str, np.ndarray]:
    """Integer 0–4 attribute ratings and an overall score (0–4 in half points)."""
    assert world.latent is not None
    mid = RATING_MAX / 2
    noise = rng.normal(size=world.latent.shape)
    attrs = np.clip(
        np.rint(mid + cfg.rating_scale * world.latent + cfg.rating_noise * noise), 0, RATING_MAX
    )
    overall = (
        mid + cfg.rating_scale * world.true_reward + cfg.rating_noise * rng.normal(size=len(noise))
    )
    score = np.clip(np.rint(2 * overall) / 2, 0, RATING_MAX)
    return {"attributes": attrs, "score": score}


def _tables(
    cfg: SynthConfig, rng: np.random.Generator, pool: SentencePool, world: World, panel: Panel,
    layout: Layout, events: Events | None, extra: dict[str, np.ndarray],
) -> dict[str, pa.Table]:  # fmt: skip
    copies, n = layout.copies, layout.n_prompts
    prompt_ids = format_ids("p", np.arange(n))
    prompt_text = render_with_copies(
        rng, pool, world.prompts, copies.exact, copies.near, cfg.near_duplicate_edits
    )
    tables = {
        "prompts": prompt_table(
            layout, prompt_ids, prompt_text, cfg.n_cyclic_triads, cfg.n_base_prompts
        )
    }
    src, resp_prompt = layout.response_src, layout.response_prompt
    slot = np.arange(len(src)) - layout.offsets[resp_prompt]
    width = max(8, len(str(n - 1)))
    response_ids = _response_ids(resp_prompt, slot, width)
    response_text = render_with_copies(
        rng, pool, world.texts, layout.response_rows(copies.exact),
        layout.response_rows(copies.near), cfg.near_duplicate_edits,
    )  # fmt: skip
    is_copy = np.arange(len(src)) >= world.offsets[-1]
    responses: dict[str, Any] = {
        "response_id": response_ids,
        "prompt_id": prompt_ids.take(pa.array(resp_prompt)),
        "messages": messages_column("assistant", response_text),
    }
    if world.model is not None and world.models is not None:
        names = pa.array(world.models.names, pa.string())
        responses["source"] = names.take(pa.array(world.model[src]))
    if extra:
        responses["score"] = pa.array(extra["score"][src])
        responses["attributes"] = attributes_column(cfg.attributes, extra["attributes"][src])
    responses["true_reward"] = pa.array(world.true_reward[src])
    responses["quality"] = pa.array(world.quality[src])
    responses["n_words"] = pa.array(world.n_words[src])
    if world.latent is not None:
        responses["latent"] = list_column(world.latent[src])
    responses["duplicate_of"] = pc.if_else(
        pa.array(is_copy), response_ids.take(pa.array(src)), pa.scalar(None, pa.string())
    )
    tables["responses"] = pa.table(responses)
    if events is None:
        return tables
    annotator_ids = format_ids("a", np.arange(len(panel)))
    tables["annotators"] = pa.table(
        {
            "annotator_id": annotator_ids,
            "group": pa.array(panel.group.astype(np.int64)),
            "flip_rate": pa.array(panel.flip_rate.astype(float)),
            "bad": pa.array(panel.bad),
        }
    )
    rows, final_prompt = layout.copy_events(events.prompt)
    ev = events.take(rows, final_prompt)
    resp = layout.offsets[ev.prompt][:, None] + ev.slots  # final response rows
    common = {
        "prompt_id": prompt_ids.take(pa.array(ev.prompt)),
        "annotator_id": annotator_ids.take(pa.array(ev.annotator)),
    }
    if cfg.kind == "rankings":
        tables["rankings"] = pa.table(
            {
                "ranking_id": format_ids("k", np.arange(len(rows))),
                **common,
                "tiers": tiers_column(response_ids, resp, ev.columns["tier_break"]),
                "flipped": pa.array(ev.columns["flipped"]),
            }
        )
        return tables
    judgments: dict[str, Any] = {
        "judgment_id": format_ids("j", np.arange(len(rows))),
        "prompt_id": common["prompt_id"],
        "a": response_ids.take(pa.array(resp[:, 0])),
        "b": response_ids.take(pa.array(resp[:, 1])),
        "outcome": pa.array(ev.columns["outcome"], pa.int8()),
        "annotator_id": common["annotator_id"],
        "annotator_kind": pa.repeat(cfg.annotator_kind, len(rows)),
    }
    for name, values in ev.columns.items():
        if name != "outcome":
            judgments[name] = pa.array(values)
    tables["judgments"] = pa.table(judgments)
    return tables


def _response_ids(prompt: np.ndarray, slot: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(prompt), pa.string()), width, "0")
    return pc.binary_join_element_wise("r", digits, "-", pc.cast(pa.array(slot), pa.string()), "")


def _planted(
    cfg: SynthConfig, world: World, panel: Panel, tables: dict[str, pa.Table], layout: Layout
) -> dict[str, Any]:
    """The JSON-serialisable summary of what was planted."""
    prompt_ids = tables["prompts"].column("prompt_id")
    n_world, n_exact = world.n_prompts, len(layout.copies.exact)

    def pairs(lo: int, hi: int) -> list[list[str]]:
        originals = prompt_ids.take(pa.array(layout.prompt_src[lo:hi])).to_pylist()
        return [list(p) for p in zip(originals, prompt_ids[lo:hi].to_pylist(), strict=True)]

    out: dict[str, Any] = {
        "generator": "prefkit.synth.simulate",
        "config": cfg.to_dict(),
        "kind": cfg.kind,
        "attributes": list(cfg.attributes),
        "attribute_weights": base_weights(cfg).tolist(),
        "myopic_weights": myopic_weights(cfg).tolist(),
        "length": {"mean_words": world.length_mean, "std_words": world.length_std},
        "duplicates": {
            "exact": pairs(n_world, n_world + n_exact),
            "near": pairs(n_world + n_exact, layout.n_prompts),
        },
        "columns": {k: v for k, v in COLUMNS.items() if _has(tables, k)},
    }
    counts = {"prompts": layout.n_prompts, "responses": tables["responses"].num_rows}
    if "annotators" in tables:
        ids = tables["annotators"].column("annotator_id").to_pylist()
        out["group_weights"] = panel.weights.tolist()
        out["annotators"] = {
            "group": dict(zip(ids, panel.group.tolist(), strict=True)),
            "flip_rate": dict(zip(ids, panel.flip_rate.tolist(), strict=True)),
            "bad": [i for i, bad in zip(ids, panel.bad.tolist(), strict=True) if bad],
        }
    if "judgments" in tables:
        j = tables["judgments"]
        outcome = np.asarray(j.column("outcome"))
        counts.update(
            judgments=j.num_rows,
            ties=int((outcome == TIE).sum()),
            flipped=int(np.asarray(j.column("flipped")).sum()),
            position_biased=int(np.asarray(j.column("position_biased")).sum()),
        )
        response_ids = tables["responses"].column("response_id")
        first = cfg.n_base_prompts
        out["cyclic_triads"] = [
            {
                "prompt_id": prompt_ids[p].as_py(),
                "cycle": response_ids[
                    int(layout.offsets[p]) : int(layout.offsets[p]) + 3
                ].to_pylist(),
            }
            for p in range(first, first + cfg.n_cyclic_triads)
        ]
    if "rankings" in tables:
        counts.update(
            rankings=tables["rankings"].num_rows,
            flipped=int(np.asarray(tables["rankings"].column("flipped")).sum()),
        )
    if world.models is not None:
        models = world.models
        out["models"] = {
            "skills": dict(zip(models.names, models.elo.tolist(), strict=True)),
            "popularity": dict(zip(models.names, models.popularity.tolist(), strict=True)),
            "tie_nu": cfg.tie_nu,
            "nat_per_elo": ELO_TO_NAT,
        }
    out["counts"] = counts
    return out


def _has(tables: dict[str, pa.Table], key: str) -> bool:
    table, column = key.split(".")
    return table in tables and column in tables[table].column_names


__all__ = ["COLUMNS", "simulate"]
