"""UKPConvArg1: full XML (crowd labels), Strict CSV (gold pairs), Ranking CSV (scores)."""

from __future__ import annotations

import gzip
import os
import re
from collections import Counter
from pathlib import Path

import pytest

import prefkit
from prefkit.errors import InputError, PrefkitError
from prefkit.io.api import detect_format, save
from prefkit.io.formats import ukp
from prefkit.io.formats.base import REGISTRY, Sample
from prefkit.io.formats.ukp import debate_of

REPO = Path(__file__).resolve().parents[3]
UKP = Path(os.environ.get("PREFKIT_SHARED_DATA", REPO.parent / "shared" / "data")) / "ukp_convarg1"
XML_DIR = UKP / "UKPConvArg1-full-XML"
STRICT_DIR = UKP / "UKPConvArg1Strict-CSV"
RANKING_DIR = UKP / "UKPConvArg1-Ranking-CSV"
TV_BOOKS = "tv-is-better-than-books_books"


def _need_data() -> None:
    if not UKP.is_dir():
        pytest.skip(f"shared data not found at {UKP}")


@pytest.fixture(scope="module")
def full() -> prefkit.Dataset:
    """The whole full-XML corpus, loaded once from the corpus root (sniffed)."""
    _need_data()
    return prefkit.load(UKP)


@pytest.fixture(scope="module")
def strict() -> prefkit.Dataset:
    _need_data()
    return prefkit.load(STRICT_DIR)


def _xml_text(path: Path) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read()


def _raw_xml() -> dict[str, str]:
    return {p.name.split(".")[0]: _xml_text(p) for p in sorted(XML_DIR.glob("*.xml.gz"))}


def _tsv(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    return [line.split("\t") for line in lines[1:] if line.strip()]


def _xml_pair(
    tmp_path: Path, value: str = "a1", body: str | None = None, name: str = "d_s.xml"
) -> Path:
    pair = (
        body
        or f"""
  <annotatedArgumentPair>
    <id>arg1_arg2</id>
    <arg1><author>x</author><voteUpCount>1</voteUpCount><voteDownCount>0</voteDownCount>
      <stance>Yes</stance><text>First argument.</text><id>arg1</id></arg1>
    <arg2><author>y</author><stance>Yes</stance><text>Second
argument.</text><id>arg2</id></arg2>
    <debateMetaData><title>Debate</title><url>http://example.org</url></debateMetaData>
    <mTurkAssignments>
      <mTurkAssignment><turkID>W1</turkID><value>{value}</value><reason>because</reason>
        <turkRank>3</turkRank><turkCompetence>0.5</turkCompetence></mTurkAssignment>
      <mTurkAssignment><turkID>W2</turkID><value>equal</value><workerStance>same</workerStance>
      </mTurkAssignment>
    </mTurkAssignments>
    <goldLabel>a1</goldLabel>
  </annotatedArgumentPair>"""
    )
    path = tmp_path / name
    path.write_text(f'<?xml version="1.0"?>\n<list>{pair}\n</list>\n', encoding="utf-8")
    return path


# --- full XML, real data -----------------------------------------------------------------------
@pytest.mark.shared_data
def test_full_xml_counts(full: prefkit.Dataset):
    raw = "".join(_raw_xml().values())
    pairs = re.findall(r"<annotatedArgumentPair>\s*<id>([^<]+)</id>", raw)
    values = Counter(re.findall(r"<value>([^<]*)</value>", raw))
    workers = Counter(re.findall(r"<turkID>([^<]+)</turkID>", raw))
    assert len(pairs) == 16927 and sum(values.values()) == 84445 and len(workers) == 3815
    assert values == {"a1": 32849, "a2": 32491, "equal": 19105}

    j = full.judgments
    assert full.manifest.source["format"] == "ukp-convarg"
    assert full.counts()["judgments"] == sum(values.values())
    assert len(set(j["pair_id"].to_pylist())) == len(set(pairs))
    outcomes = Counter(j["outcome"].to_pylist())
    assert outcomes == {1: values["a1"], -1: values["a2"], 0: values["equal"]}
    assert set(j["tie_kind"].to_pylist()) == {None}
    assert set(j["annotator_kind"].to_pylist()) == {"human"}
    assert Counter(j["annotator_id"].to_pylist()) == workers
    assert full.counts()["prompts"] == 32
    # Responses are content-keyed: one per distinct argument text within a debate side
    # (the corpus has a few reposts of one text under two argument ids).
    texts = {
        (side, t) for side, x in _raw_xml().items() for t in re.findall(r"<text>([^<]*)</text>", x)
    }
    assert full.counts()["responses"] == len(texts) == 1038

    ann = {r["annotator_id"]: r for r in full.annotators.to_pylist()}
    assert len(ann) == len(workers)
    assert {a: r["n_assignments"] for a, r in ann.items()} == dict(workers)
    # SOURCE.md example worker.
    assert ann["A1RJIVKK5GNIVL"]["turk_competence"] == pytest.approx(0.9993454967074477)
    assert ann["A1RJIVKK5GNIVL"]["turk_rank"] == 15


@pytest.mark.shared_data
def test_full_xml_gold_labels(full: prefkit.Dataset):
    raw = "".join(_raw_xml().values())
    gold = Counter(re.findall(r"<goldLabel>([^<]*)</goldLabel>", raw))
    assert gold == {"a1": 6398, "a2": 6394, "equal": 3289}
    per_pair = dict(
        zip(
            full.judgments["pair_id"].to_pylist(),
            full.judgments["gold_label"].to_pylist(),
            strict=True,
        )
    )
    got = Counter(per_pair.values())
    assert got == {**gold, None: 846}


@pytest.mark.shared_data
def test_full_xml_known_pair(full: prefkit.Dataset):
    """The SOURCE.md example pair, checked field by field."""
    rows = [r for r in full.judgments.to_pylist() if r["pair_id"] == "arg317750_arg213472"]
    assert [r["annotator_id"] for r in rows] == [
        "A1RJIVKK5GNIVL",
        "A1W0X7O0LU6IUW",
        "A3NY8GOZ62FOCI",
        "A23XM9DGWLJ2O6",
        "A1VGZ2K3HF66TE",
    ]
    assert [r["outcome"] for r in rows] == [-1, 0, 1, -1, -1]
    first = rows[0]
    assert first["rationale"].startswith("A2 provides more examples")
    assert first["worker_stance"] == "same" and first["turk_rank"] == 15
    assert first["gold_label"] == "a2" and first["hit_id"] == "3PUOXASB57F6DRFRQGCWHQT2V9MZ97"
    assert first["assignment_id"] == "3GU1KF0O4JDY90PBRTXS5IIYX9DBPX"
    assert first["hit_comment"].startswith("Very interesting!")
    assert rows[3]["worker_stance"] is None
    responses = {r["response_id"]: r for r in full.responses.to_pylist()}
    a, b = responses[first["a"]], responses[first["b"]]
    assert a["arg_id"] == "arg317750" and a["author"] == "zion" and a["vote_up"] == 2
    assert a["messages"][0]["content"].startswith("I thick that book are better than TV")
    assert a["source"] is None and a["stance"] == "Books"
    assert b["messages"][0]["content"].count("\n") == 4
    prompt = next(p for p in full.prompts.to_pylist() if p["prompt_id"] == first["prompt_id"])
    assert prompt["messages"] == [{"role": "user", "content": "TV is better than Books"}]
    assert dict(prompt["context"]) == {"stance": "Books"}
    assert prompt["debate_side"] == TV_BOOKS
    assert prompt["debate_url"] == "http://www.createdebate.com/debate/show/TV_is_better_than_Books"
    assert prompt["description"].startswith("TV is better than books because")


@pytest.mark.shared_data
def test_single_xml_file_and_folder(tmp_path: Path):
    _need_data()
    path = XML_DIR / f"{TV_BOOKS}.xml.gz"
    raw = _xml_text(path)
    ds = prefkit.load(path, format="ukp-convarg")
    assert ds.counts()["judgments"] == len(re.findall(r"<mTurkAssignment>", raw))
    assert ds.counts()["prompts"] == 1
    # An uncompressed copy in a folder of its own reads the same.
    folder = tmp_path / "xml"
    folder.mkdir()
    (folder / f"{TV_BOOKS}.xml").write_text(raw, encoding="utf-8")
    assert detect_format(folder).name == "ukp-convarg"
    plain = prefkit.load(folder)
    assert plain.judgments["a"].to_pylist() == ds.judgments["a"].to_pylist()
    assert plain.judgments["outcome"].to_pylist() == ds.judgments["outcome"].to_pylist()
    # Records name the line their pair starts on.
    starts = [i + 1 for i, line in enumerate(raw.split("\n")) if "<annotatedArgumentPair>" in line]
    assert [r.where for r in ukp.iter_pairs(path)] == [f"line {n}" for n in starts]


# --- Strict and Ranking CSV, real data ---------------------------------------------------------
@pytest.mark.shared_data
def test_strict_counts_and_labels(strict: prefkit.Dataset):
    rows = {p.stem: _tsv(p) for p in sorted(STRICT_DIR.glob("*.csv"))}
    n = sum(len(r) for r in rows.values())
    labels = Counter(f[1] for r in rows.values() for f in r)
    assert n == 11650 and set(labels) == {"a1", "a2"}
    assert strict.manifest.source["format"] == "ukp-strict"
    j = strict.judgments
    assert strict.counts()["judgments"] == n
    assert Counter(j["outcome"].to_pylist()) == {1: labels["a1"], -1: labels["a2"]}
    assert set(j["annotator_id"].to_pylist()) == {None} and set(j["gold"].to_pylist()) == {True}
    assert set(j["annotator_kind"].to_pylist()) == {"human"}
    responses = {r["response_id"]: r for r in strict.responses.to_pylist()}
    first = j.slice(0, 1).to_pylist()[0]
    raw_first = rows[sorted(STRICT_DIR.glob("*.csv"))[0].stem][0]
    assert first["pair_id"] == raw_first[0]
    assert responses[first["a"]]["messages"][0]["content"] == raw_first[2].replace(" <br/> ", "\n")
    assert not any("<br/>" in r["messages"][0]["content"] for r in responses.values())


@pytest.mark.shared_data
def test_strict_and_ranking_join_the_xml(full: prefkit.Dataset, strict: prefkit.Dataset):
    """Same debate side -> same prompt id; same argument -> same response id in all three."""
    assert set(strict.prompts["prompt_id"].to_pylist()) == set(
        full.prompts["prompt_id"].to_pylist()
    )
    xml_pairs = {
        r["pair_id"]: (r["prompt_id"], r["a"], r["b"])
        for r in full.judgments.select(["pair_id", "prompt_id", "a", "b"]).to_pylist()
    }
    for r in strict.judgments.select(["pair_id", "prompt_id", "a", "b"]).to_pylist():
        assert xml_pairs[r["pair_id"]] == (r["prompt_id"], r["a"], r["b"])
    ranking = prefkit.load(RANKING_DIR)
    assert set(ranking.prompts["prompt_id"].to_pylist()) == set(
        full.prompts["prompt_id"].to_pylist()
    )
    assert set(ranking.responses["response_id"].to_pylist()) == set(
        full.responses["response_id"].to_pylist()
    )


@pytest.mark.shared_data
def test_ranking_tiers_and_scores():
    _need_data()
    ds = prefkit.load(RANKING_DIR)
    assert ds.manifest.source["format"] == "ukp-ranking"
    files = {p.stem: _tsv(p) for p in sorted(RANKING_DIR.glob("*.csv"))}
    assert sum(len(v) for v in files.values()) == 1052
    assert ds.counts()["rankings"] == len(files) == 32
    responses = {r["response_id"]: r for r in ds.responses.to_pylist()}
    for ranking in ds.rankings.to_pylist():
        lines = files[ranking["debate_side"]]
        ids = [rid for tier in ranking["tiers"] for rid in tier]
        # Every line is in the ranking, or listed as a repost of an argument already in it.
        assert len(ids) == len(set(ids))
        assert len(ids) + len(ranking["merged_arg_ids"]) == len(lines)
        scores = [responses[rid]["score"] for rid in ids]
        assert scores == sorted(scores, reverse=True)
        by_id = {f[0]: float(f[1]) for f in lines}
        for rid in ids:
            assert responses[rid]["score"] == by_id[responses[rid]["arg_id"]]
        for tier in ranking["tiers"]:
            assert len({responses[rid]["score"] for rid in tier}) == 1
    top = next(r for r in ds.rankings.to_pylist() if r["debate_side"] == TV_BOOKS)["tiers"][0][0]
    assert responses[top]["arg_id"] == "arg135650" and responses[top]["score"] == pytest.approx(
        0.33296
    )


@pytest.mark.shared_data
def test_sniffing_the_layouts():
    _need_data()
    assert detect_format(UKP).name == "ukp-convarg"
    assert detect_format(XML_DIR).name == "ukp-convarg"
    assert detect_format(STRICT_DIR).name == "ukp-strict"
    assert detect_format(RANKING_DIR).name == "ukp-ranking"
    assert detect_format(next(STRICT_DIR.glob("*.csv"))).name == "ukp-strict"


# --- synthetic files: mapping details and bad input ---------------------------------------------
def test_debate_of_known_and_unknown_sides():
    assert debate_of(TV_BOOKS) == ("TV is better than Books", "Books")
    common = "Advancing the Common Good"
    for spelling in ("comnong", "commond", "common"):
        assert (
            debate_of(
                f"personal-pursuit-or-advancing-the-common-good-_advancing-the-{spelling}-good"
            )[1]
            == common
        )
    assert debate_of("my-debate_pro-side") == ("my debate", "pro side")
    assert debate_of("plain") == ("plain", None)


def test_xml_synthetic_mapping(tmp_path: Path):
    ds = prefkit.load(_xml_pair(tmp_path), format="ukp-convarg")
    j = ds.judgments.to_pylist()
    assert [(r["outcome"], r["annotator_id"], r["gold_label"]) for r in j] == [
        (1, "W1", "a1"),
        (0, "W2", "a1"),
    ]
    assert j[0]["turk_competence"] == 0.5 and j[1]["turk_competence"] is None
    b = next(r for r in ds.responses.to_pylist() if r["arg_id"] == "arg2")
    assert b["messages"][0]["content"] == "Second\nargument." and b["vote_up"] is None
    ann = {r["annotator_id"]: r["n_assignments"] for r in ds.annotators.to_pylist()}
    assert ann == {"W1": 1, "W2": 1}


@pytest.mark.parametrize("block", [5, 23, 24, 25, 64, 1 << 16])
def test_xml_record_lines_whatever_the_block_size(tmp_path: Path, monkeypatch, block: int):
    good = _xml_pair(tmp_path).read_text().split("<list>")[1].split("</list>")[0]
    path = tmp_path / "many_side.xml"
    path.write_text(
        "<list>" + good * 4 + "<annotatedArgumentPair><id>x</id></annotatedArgumentPair>\n</list>"
    )
    expected = [
        i + 1
        for i, line in enumerate(path.read_text().split("\n"))
        if "<annotatedArgumentPair>" in line
    ]
    monkeypatch.setattr(ukp, "BLOCK_BYTES", block)
    assert [r.where for r in ukp.iter_pairs(path)] == [f"line {n}" for n in expected]


def test_xml_bad_value_names_file_line_field(tmp_path: Path):
    path = _xml_pair(tmp_path, value="a3")
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="ukp-convarg")
    err = info.value
    assert (err.file, err.where, err.field) == (str(path), "line 3", "mTurkAssignments[0].value")
    assert "a1, a2, equal" in err.message


def test_xml_malformed_names_line(tmp_path: Path):
    path = tmp_path / "broken_side.xml"
    path.write_text(
        '<?xml version="1.0"?>\n<list>\n  <annotatedArgumentPair>\n    <id>x</i>\n</list>\n'
    )
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="ukp-convarg")
    assert info.value.file == str(path) and info.value.where == "line 4"
    assert "malformed XML" in info.value.message
    cut = tmp_path / "cut_side.xml.gz"
    cut.write_bytes(gzip.compress(_xml_pair(tmp_path).read_bytes())[:-30])
    with pytest.raises(InputError) as info:
        prefkit.load(cut, format="ukp-convarg")
    assert info.value.file == str(cut)


def test_xml_quarantine_reconciles(tmp_path: Path):
    good = _xml_pair(tmp_path).read_text().split("<list>")[1].split("</list>")[0]
    bad = good.replace("<title>Debate</title>", "")
    path = tmp_path / "mixed_side.xml"
    path.write_text(f"<list>{good}{bad}{good}</list>", encoding="utf-8")
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="ukp-convarg")
    assert info.value.field == "debateMetaData.title"
    ds = prefkit.load(
        path, format="ukp-convarg", on_error="quarantine", quarantine=tmp_path / "q.jsonl"
    )
    q = ds.manifest.quarantine
    assert (q["read"], q["kept"], q["quarantined"]) == (3, 2, 1)
    assert ds.counts()["judgments"] == 4
    assert "debateMetaData.title" in (tmp_path / "q.jsonl").read_text()


def test_strict_synthetic_and_bad_rows(tmp_path: Path):
    path = tmp_path / f"{TV_BOOKS}.csv"
    lines = [
        "#id\tlabel\ta1\ta2",
        'a1_a2\ta2\t"Quoted" start <br/> next line\tplain',
        "a3_a4\tA1\tx\ty",
        "a5_a6\ta1\tonly three fields",
        "b1_b2\tequal\tx\ty",
        "a7\ta1\tx\ty",
        "a8_a9\ta1\tx\ty",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="ukp-strict")
    assert (info.value.where, info.value.field) == ("line 3", "label")
    ds = prefkit.load(path, format="ukp-strict", on_error="quarantine")
    q = ds.manifest.quarantine
    assert (q["read"], q["kept"], q["quarantined"]) == (6, 3, 3)
    assert any("3 tab-separated fields" in reason for reason in q["reasons"])
    j = ds.judgments.to_pylist()
    # "equal" is the corpus's tie label: not in the Strict files, but read if present.
    assert [r["outcome"] for r in j] == [-1, 0, 1]
    texts = {r["arg_id"]: r["messages"][0]["content"] for r in ds.responses.to_pylist()}
    assert texts["a1"] == '"Quoted" start\nnext line'
    prompt = ds.prompts.to_pylist()[0]
    assert prompt["messages"][0]["content"] == "TV is better than Books"
    bad_header = tmp_path / "h_x.csv"
    bad_header.write_text("id\tlabel\ta1\ta2\nx_y\ta1\tp\tq\n")
    with pytest.raises(InputError) as info:
        prefkit.load(bad_header, format="ukp-strict")
    assert info.value.where == "line 1" and "header" in info.value.message


def test_strict_invalid_utf8_line_is_a_bad_record(tmp_path: Path):
    path = tmp_path / f"{TV_BOOKS}.csv"
    path.write_bytes(b"#id\tlabel\ta1\ta2\na1_a2\ta1\tx\ty\na3_a4\ta2\t\xff\tz\na5_a6\ta2\tu\tv\n")
    with pytest.raises(InputError) as info:
        prefkit.load(path, format="ukp-strict")
    assert info.value.where == "line 3" and "UTF-8" in info.value.message
    q = prefkit.load(path, format="ukp-strict", on_error="quarantine").manifest.quarantine
    assert (q["read"], q["kept"], q["quarantined"]) == (3, 2, 1)


def test_ranking_synthetic_ties(tmp_path: Path):
    path = tmp_path / "d_s.csv"
    path.write_text("#id\trank\targument\nx\t0.5\tA\ny\t0.9\tB\nz\t0.5\tC\nw\t0.1\tB\nv\tnan?\tD\n")
    ds = prefkit.load(path, format="ukp-ranking", on_error="quarantine")
    assert ds.manifest.quarantine["quarantined"] == 1
    text = {r["response_id"]: r["messages"][0]["content"] for r in ds.responses.to_pylist()}
    (ranking,) = ds.rankings.to_pylist()
    assert [sorted(text[r] for r in tier) for tier in ranking["tiers"]] == [["B"], ["A", "C"]]
    assert ranking["merged_arg_ids"] == ["w"]


def test_ukp_formats_are_read_only(tmp_path: Path):
    ds = prefkit.load(_xml_pair(tmp_path), format="ukp-convarg")
    for name in ("ukp-convarg", "ukp-strict", "ukp-ranking"):
        assert REGISTRY[name].write is None
        with pytest.raises(PrefkitError, match="cannot be written"):
            save(ds, tmp_path / f"out-{name}.csv", name)


def test_sniffers_on_synthetic_files(tmp_path: Path):
    strict = tmp_path / "a_b.csv"
    strict.write_text("#id\tlabel\ta1\ta2\nx_y\ta1\tp\tq\n")
    ranking = tmp_path / "c_d.csv"
    ranking.write_text("#id\trank\targument\nx\t0.1\tp\n")
    other = tmp_path / "e.csv"
    other.write_text("prompt,chosen,rejected\np,c,r\n")
    for name, good in (("ukp-strict", strict), ("ukp-ranking", ranking)):
        sniff = REGISTRY[name].sniff
        assert sniff(Sample(good, [], "csv")) >= 0.9
        assert sniff(Sample(other, [], "csv")) == 0
        assert sniff(Sample(tmp_path / "missing.csv", [], "csv")) == 0
    folder = tmp_path / "xml"
    folder.mkdir()
    _xml_pair(folder)
    sniff = REGISTRY["ukp-convarg"].sniff
    assert sniff(Sample(folder, [], None)) >= 0.9
    assert sniff(Sample(tmp_path / "missing", [], None)) == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sniff(Sample(empty, [], None)) == 0
