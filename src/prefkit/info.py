"""`summarize`: what a dataset holds, as a typed record for `prefkit info`.

Counts per table, feedback kinds, the outcome and tie mix, how many judges per pair,
annotators and their kinds, response sources, ranking shapes, score and attribute
ranges, and where the data came from. Pure queries; rendering lives in the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from prefkit.engine import connect, row, scalar

if TYPE_CHECKING:
    from prefkit.dataset import Dataset

TOP = 10


@dataclass
class Info:
    """Summary of one dataset (see :func:`summarize`)."""

    counts: dict[str, int]
    kinds: list[str]
    fingerprint: str
    outcomes: dict[str, int] = field(default_factory=dict)
    judges_per_pair: dict[str, float] = field(default_factory=dict)
    annotators: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    n_sources: int = 0
    rankings: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    attributes: dict[str, dict[str, float]] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(ds: Dataset) -> Info:
    """Summarise ``ds`` (runs in DuckDB; Parquet tables are not loaded into memory)."""
    con = connect()
    for name in ("prompts", "responses", "judgments", "rankings", "annotators"):
        con.register(f"_{name}", ds.relation(con, name))
    info = Info(counts=ds.counts(), kinds=ds.kinds(), fingerprint=ds.fingerprint())
    if info.counts["judgments"]:
        a, b, good, bad, plain = row(
            con,
            """SELECT count(*) FILTER (outcome > 0), count(*) FILTER (outcome < 0),
                      count(*) FILTER (outcome = 0 AND tie_kind = 'good'),
                      count(*) FILTER (outcome = 0 AND tie_kind = 'bad'),
                      count(*) FILTER (outcome = 0 AND tie_kind IS NULL) FROM _judgments""",
        )
        info.outcomes = {"a_wins": a, "b_wins": b, "tie_good": good, "tie_bad": bad, "tie": plain}
        pairs, mean, mx = row(
            con,
            """SELECT count(*), avg(n), max(n) FROM (SELECT count(*) AS n FROM _judgments
               GROUP BY prompt_id, least(a, b), greatest(a, b))""",
        )
        info.judges_per_pair = {"pairs": pairs, "mean": round(float(mean), 3), "max": mx}
        kinds = con.execute(
            "SELECT coalesce(annotator_kind, 'unknown'), count(*) FROM _judgments GROUP BY ALL ORDER BY 2 DESC"
        ).fetchall()
        info.annotators = {
            "distinct_in_judgments": scalar(
                con, "SELECT count(DISTINCT annotator_id) FROM _judgments"
            ),
            "in_table": info.counts["annotators"],
            "judgments_with_annotator": scalar(con, "SELECT count(annotator_id) FROM _judgments"),
            "kinds": dict(kinds),
        }
    info.n_sources = scalar(con, "SELECT count(DISTINCT source) FROM _responses")
    info.sources = dict(
        con.execute(
            f"""SELECT source, count(*) FROM _responses WHERE source IS NOT NULL
                GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT {TOP}"""
        ).fetchall()
    )
    if info.counts["rankings"]:
        mean_len, with_ties, mean_tiers = row(
            con,
            """SELECT avg(len(flatten(tiers))), avg((len(flatten(tiers)) > len(tiers))::INT),
                      avg(len(tiers)) FROM _rankings""",
        )
        info.rankings = {
            "mean_responses": round(float(mean_len), 3),
            "mean_tiers": round(float(mean_tiers), 3),
            "share_with_ties": round(float(with_ties), 4),
        }
    n, lo, hi, mean = row(
        con, "SELECT count(score), min(score), max(score), avg(score) FROM _responses"
    )
    if n:
        info.scores = {"n": n, "min": lo, "max": hi, "mean": round(float(mean), 4)}
    for name, n, lo, hi, mean in con.execute(
        """SELECT k, count(v), min(v), max(v), avg(v) FROM
             (SELECT unnest(map_keys(attributes)) AS k, unnest(map_values(attributes)) AS v FROM _responses)
           GROUP BY k ORDER BY k"""
    ).fetchall():
        info.attributes[name] = {"n": n, "min": lo, "max": hi, "mean": round(float(mean), 4)}
    con.close()
    m = ds.manifest
    info.origin = {
        "source": m.source,
        "lineage": [s.get("step") for s in m.lineage],
        "quarantine": m.quarantine,
        "planted": sorted(m.planted) if m.planted else [],
    }
    return info
