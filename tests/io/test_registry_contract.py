"""The format registry's contract, checked for every entry.

Every format has a summary, kinds and a docs page that documents its options; its sniffer
scores any sample in [0, 1] without raising and recognises the format's own minimal
example; a writer round-trips that example, and a format without one says why. The
minimal examples (one small valid input per format, written in the format's native
layout) live here and are reused by ``test_fuzz.py``: a new format needs an entry in
``EXAMPLES`` and ``LAYOUTS``, and the contract test below fails until it has one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from click.testing import CliRunner

import prefkit
from prefkit.cli.main import cli
from prefkit.dataset import KINDS
from prefkit.errors import PrefkitError
from prefkit.io.api import _sample, detect_format
from prefkit.io.formats.base import REGISTRY, Sample

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "formats"
FORMATS = sorted(REGISTRY)

#: Placeholder a serialiser turns into bytes that are not UTF-8 (for fuzzing).
BAD_UTF8 = "@@BAD-UTF8@@"
BAD_UTF8_BYTES = b"\xff\xfe\x80"

# --- one minimal valid input per format ----------------------------------------------------------
_HH = "\n\nHuman: hi there\n\nAssistant: "
_STANCE_FILE = "tv-is-better-than-books_books"
_PRD_RATINGS = "answer_m1-vs-answer_m2-human-reviewer_threeclass.jsonl"


def _turns(question: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _argument(arg_id: str, text: str) -> dict[str, Any]:
    return {
        "author": "x",
        "voteUpCount": "1",
        "voteDownCount": "0",
        "stance": "Books",
        "text": text,
        "id": arg_id,
    }


#: Valid records per format, from the examples in docs/formats/<name>.md. Fuzzing mutates
#: one field of one of them; ``LAYOUTS`` writes them in the format's own layout.
EXAMPLES: dict[str, list[Any]] = {
    "arena": [
        {
            "question_id": 81,
            "model_a": "alpaca-13b",
            "model_b": "gpt-3.5-turbo",
            "winner": "model_b",
            "judge": "author_2",
            "turn": 1,
            "conversation_a": _turns("Compose a travel blog post.", "I recently had the pleasure."),
            "conversation_b": _turns("Compose a travel blog post.", "Aloha! I recently had."),
        }
    ],
    "generic": [
        {"input": "Summarize this.", "output_1": "Short.", "output_2": "Long.", "label": 1}
    ],
    "helpsteer": [
        {
            "prompt": "c#",
            "response": "C# is a high-level, object-oriented programming language.",
            "helpfulness": 3,
            "correctness": 4,
            "coherence": 4,
            "complexity": 2,
            "verbosity": 1,
        },
        {
            "prompt": "Define signal.",
            "response_1": "A signal is a form of energy.",
            "response_2": "A signal is a message.",
            "preference_strength": 1,
            "preference_statement": "@Response 2 is better.",
            "all_preferences_unprocessed": [{"strength": 1, "justification": "clearer"}],
        },
    ],
    "hh-rlhf": [{"chosen": _HH + "Hello!", "rejected": _HH + "Go away."}],
    "imagereward": [
        {
            "id": "005658-0040",
            "prompt": "deathly portal to the abyss",
            "generations": ["part/0040/a.webp", "part/0040/b.webp", "part/0040/c.webp"],
            "ranking": [1, 2, 1],
        }
    ],
    "likert": [
        {
            "dataset": "BAGEL",
            "system": "Dusek",
            "mr_type": "inform",
            "mr": "inform(name=none,area=citycentre)",
            "sys_ref": "there is no information matching.",
            "TER": 0.83,
            "informativeness": 6,
            "naturalness": 4,
            "quality": 5,
            "domain": "REST",
        }
    ],
    "oasst": [
        {
            "message_tree_id": "ea201f57",
            "tree_state": "ready_for_export",
            "prompt": {
                "message_id": "ea201f57",
                "text": "How to protect my eyes?",
                "role": "prompter",
                "lang": "en",
                "review_count": 3,
                "deleted": False,
                "synthetic": False,
                "replies": [
                    {
                        "message_id": "2318748d",
                        "parent_id": "ea201f57",
                        "text": "Your eyes are not designed for screens.",
                        "role": "assistant",
                        "rank": 0,
                        "synthetic": False,
                        "replies": [],
                    },
                    {
                        "message_id": "8a325ada",
                        "parent_id": "ea201f57",
                        "text": "You should rest your eyes.",
                        "role": "assistant",
                        "rank": 1,
                        "synthetic": False,
                        "replies": [],
                    },
                ],
            },
        }
    ],
    "prd-battles": [
        # One rating line plus the prompt and both answers it refers to (side files).
        {
            "rating": {"question_id": 1, "text": "How can I manage time?", "score": 1},
            "question": {"question_id": 1, "text": "How can I manage time?", "category": "generic"},
            "answer_m1": {"answer_id": "a1", "question_id": 1, "model_id": "m1", "text": "Plan."},
            "answer_m2": {"answer_id": "a2", "question_id": 1, "model_id": "m2", "text": "Rush."},
        }
    ],
    "shp": [
        {
            "post_id": "himc90",
            "domain": "askacademia_train",
            "upvote_ratio": 0.99,
            "history": "Why do physicists keep working?",
            "c_root_id_A": "fuwbxfe",
            "c_root_id_B": "fuwbbi1",
            "created_at_utc_A": 1593551585,
            "created_at_utc_B": 1593550347,
            "score_A": 52,
            "score_B": 10,
            "human_ref_A": "Because they like it.",
            "human_ref_B": "Money.",
            "labels": 1,
            "seconds_difference": 1238.0,
            "score_ratio": 5.2,
        }
    ],
    "trl": [
        # Plain prompt/chosen/rejected strings first: the file is read on the fast path.
        {"prompt": "What colour is the sky?", "chosen": "Blue.", "rejected": "Green."},
        {
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
            "score_chosen": 9.0,
            "score_rejected": 2.0,
            "source": "demo",
        },
    ],
    "ukp-convarg": [
        {
            "id": "arg1_arg2",
            "arg1": _argument("arg1", "Books make you think."),
            "arg2": _argument("arg2", "Reading is\nslow."),
            "debateMetaData": {"title": "TV is better than Books", "url": "http://example.org"},
            "mTurkAssignments": [
                {
                    "turkID": "W1",
                    "value": "a1",
                    "reason": "because",
                    "turkRank": "3",
                    "turkCompetence": "0.5",
                },
                {"turkID": "W2", "value": "equal", "workerStance": "same"},
            ],
            "goldLabel": "a1",
        }
    ],
    "ukp-ranking": [
        {"id": "arg1", "rank": "0.33", "argument": "If you read a book, no debate."},
        {"id": "arg2", "rank": "0.21", "argument": "TV is <br/> faster."},
    ],
    "ukp-strict": [
        {"id": "arg1_arg2", "label": "a2", "a1": "TV is fun.", "a2": "Books <br/> improve grammar."}
    ],
    "ultrafeedback": [
        {
            "source": "false_qa",
            "instruction": "Which animal has two hands, a hyrax or a dog?",
            "models": ["gpt-4", "llama-2-7b-chat"],
            "completions": [
                {
                    "model": "gpt-4",
                    "principle": "helpfulness",
                    "response": "Neither has hands.",
                    "annotations": {
                        "helpfulness": {"Rating": "5", "Rationale": "good"},
                        "honesty": {"Rating": "N/A", "Rationale": "n/a"},
                    },
                    "fine-grained_score": 5.0,
                    "overall_score": 9.0,
                    "critique": "fine",
                },
                {
                    "model": "llama-2-7b-chat",
                    "response": "A dog has two hands.",
                    "annotations": {"helpfulness": {"Rating": "1"}},
                    "overall_score": 2.0,
                },
            ],
            "correct_answers": ["None"],
            "incorrect_answers": ["None"],
        }
    ],
}

#: Format options ``load`` needs to read the example at all (generic has no defaults).
LOAD_OPTIONS: dict[str, dict[str, Any]] = {
    "generic": {
        "prompt": "input",
        "a": "output_1",
        "b": "output_2",
        "label": "label",
        "a_value": "1",
        "b_value": "2",
    },
}


# --- serialising records in each format's layout -------------------------------------------------
def encode_text(text: str) -> bytes:
    """UTF-8, except that each ``BAD_UTF8`` placeholder becomes invalid bytes."""
    return text.encode("utf-8").replace(BAD_UTF8.encode(), BAD_UTF8_BYTES)


def json_lines(records: list[Any]) -> bytes:
    return b"".join(encode_text(json.dumps(r, ensure_ascii=False)) + b"\n" for r in records)


def json_array(records: list[Any]) -> bytes:
    return encode_text(json.dumps(records, ensure_ascii=False))


def _tsv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\t".join(_tsv_value(v) for v in value)  # extra fields
    return str(value)


def tsv_lines(header: tuple[str, ...], records: list[Any]) -> bytes:
    lines = ["#" + "\t".join(header)]
    for r in records:
        if isinstance(r, dict):
            lines.append("\t".join(_tsv_value(r[k]) for k in header if k in r))
        else:
            lines.append(_tsv_value(r))
    return encode_text("\n".join(lines) + "\n")


def _xml(tag: str, value: Any) -> str:
    if value is None:
        return f"<{tag}/>"
    if isinstance(value, dict):
        return f"<{tag}>{''.join(_xml(k, v) for k, v in value.items())}</{tag}>"
    if isinstance(value, list):
        child = "mTurkAssignment" if tag == "mTurkAssignments" else "item"
        return f"<{tag}>{''.join(_xml(child, v) for v in value)}</{tag}>"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def xml_pairs(records: list[Any]) -> bytes:
    pairs = "\n".join(_xml("annotatedArgumentPair", r) for r in records)
    return encode_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<list>\n{pairs}\n</list>\n')


#: A layout writes records under ``root`` and returns (path to load, the main data file).
Layout = Callable[[Path, list[Any]], tuple[Path, Path]]


def _single(name: str, serialise: Callable[[list[Any]], bytes]) -> Layout:
    def layout(root: Path, records: list[Any]) -> tuple[Path, Path]:
        path = root / name
        path.write_bytes(serialise(records))
        return path, path

    return layout


def _prd(root: Path, records: list[Any]) -> tuple[Path, Path]:
    """The PRD folder: ratings-human/, prompts/ and generations/ from composite records."""
    files = {
        "rating": root / "ratings-human" / _PRD_RATINGS,
        "question": root / "prompts" / "vicuna_questions.jsonl",
        "answer_m1": root / "generations" / "answer_m1.jsonl",
        "answer_m2": root / "generations" / "answer_m2.jsonl",
    }
    for key, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        parts = [r[key] for r in records if isinstance(r, dict) and key in r]
        if key == "rating":
            parts += [r for r in records if not isinstance(r, dict) or not r.keys() & files.keys()]
        path.write_bytes(json_lines(parts))
    return root, files["rating"]


def _convarg(root: Path, records: list[Any]) -> tuple[Path, Path]:
    folder = root / "UKPConvArg1-full-XML"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_STANCE_FILE}.xml"
    path.write_bytes(xml_pairs(records))
    return root, path


LAYOUTS: dict[str, Layout] = {
    **{
        name: _single(f"{name}.jsonl", json_lines)
        for name in (
            "arena",
            "generic",
            "helpsteer",
            "hh-rlhf",
            "imagereward",
            "likert",
            "oasst",
            "shp",
            "trl",
            "ultrafeedback",
        )
    },
    "prd-battles": _prd,
    "ukp-convarg": _convarg,
    "ukp-strict": _single(
        f"{_STANCE_FILE}.csv", lambda rs: tsv_lines(("id", "label", "a1", "a2"), rs)
    ),
    "ukp-ranking": _single(
        f"{_STANCE_FILE}.csv", lambda rs: tsv_lines(("id", "rank", "argument"), rs)
    ),
}


def write_example(name: str, root: Path, records: list[Any] | None = None) -> tuple[Path, Path]:
    """Write format ``name``'s example (or ``records`` in its layout) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return LAYOUTS[name](root, EXAMPLES[name] if records is None else records)


def load_example(name: str, path: Path, **kwargs: Any) -> prefkit.Dataset:
    return prefkit.load(path, format=name, **LOAD_OPTIONS.get(name, {}), **kwargs)


# --- what the contract needs per format ----------------------------------------------------------
#: Round trips through each writer: (which example records, output suffix, write options).
#: Default: every record to ``.jsonl`` without options.
WRITE_CASES: dict[str, list[tuple[list[int] | None, str, dict[str, Any]]]] = {
    "arena": [(None, ".jsonl", {"ties": "keep"}), (None, ".parquet", {"ties": "keep"})],
    # A file holds either ratings or preferences, each with its own layout.
    "helpsteer": [([0], ".jsonl", {}), ([1], ".jsonl", {"layout": "preference"})],
    "imagereward": [(None, ".json", {})],
    "likert": [(None, ".csv", {})],
}
#: Options to read a written file back (generic's writer documents these column names).
READ_BACK = {"generic": {"a": "a", "b": "b", "label": "label"}}
NOT_SNIFFED = {"generic"}  # never picked by sniffing: the mapping must come from the user


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each format's example on disk: the path ``load`` takes."""
    root = tmp_path_factory.mktemp("examples")
    return {name: write_example(name, root / name)[0] for name in EXAMPLES}


def _samples(path: Path) -> list[Sample]:
    """What ``detect_format`` hands the sniffers for ``path``."""
    samples = [_sample(path)]
    if path.is_dir():
        samples += [_sample(f) for f in sorted(path.rglob("*")) if f.is_file()]
        samples += [Sample(d, [], None) for d in sorted(path.rglob("*")) if d.is_dir()]
    return samples


#: Samples no format's sniffer may raise on: odd records, a missing path, a file as folder.
def _odd_samples(tmp: Path) -> list[Sample]:
    odd = [
        [],
        [None, 1, "x", [1, 2], 2.5, True],
        [{"chosen": 1, "rejected": None, "prompt": []}],
        [{"instruction": "x", "completions": [1, None, "y"]}],
        [{"instruction": "x", "completions": "not a list"}],
        [{"prompt": None, "replies": 3, "message_tree_id": None, "message_id": 1}],
        [{"prompt": "x", "generations": None, "ranking": None}],
        [{"mr": None, "sys_ref": [], "informativeness": "a"}],
        [{"model_a": 1, "model_b": {}, "winner": []}],
        [{"human_ref_A": None, "human_ref_B": 1, "history": []}],
        [{"prompt": 1, "response": None, "helpfulness": "x"}, {"": None}],
    ]
    missing = tmp / "missing"
    return [
        *(Sample(tmp / "odd.jsonl", recs, c) for recs in odd for c in ("jsonl", None, "csv")),
        Sample(missing, [], None),
        Sample(missing / "x.jsonl", [{"chosen": "a"}], "jsonl"),
    ]


# --- the contract, one test per registry entry ---------------------------------------------------
@pytest.mark.parametrize("name", FORMATS)
def test_has_an_example(name: str):
    """Fuzzing and the contract need one minimal valid input per format."""
    assert name in EXAMPLES and name in LAYOUTS, f"add a minimal example of {name!r} here"


@pytest.mark.parametrize("name", FORMATS)
def test_summary_kinds_and_flags(name: str):
    fmt = REGISTRY[name]
    assert fmt.name == name
    assert fmt.summary.strip() and "\n" not in fmt.summary
    assert fmt.kinds and set(fmt.kinds) <= set(KINDS), fmt.kinds
    assert isinstance(fmt.directory, bool)
    assert callable(fmt.sniff) and callable(fmt.read)


@pytest.mark.parametrize("name", FORMATS)
def test_docs_page_documents_the_format_and_its_options(name: str):
    page = DOCS / f"{name}.md"
    assert page.is_file(), f"{page} is missing"
    text = page.read_text(encoding="utf-8")
    assert f"`{name}`" in text
    assert "## Options" in text
    for option, help_text in REGISTRY[name].options.items():
        assert isinstance(help_text, str) and help_text.strip(), f"option {option!r} has no help"
        assert f"`{option}`" in text, f"{page.name} does not document option {option!r}"


@pytest.mark.parametrize("name", FORMATS)
def test_sniff_scores_every_sample_in_unit_interval(
    name: str, examples: dict[str, Path], tmp_path: Path
):
    sniff = REGISTRY[name].sniff
    samples = [s for path in examples.values() for s in _samples(path)]
    for sample in [*samples, *_odd_samples(tmp_path)]:
        score = sniff(sample)
        assert isinstance(score, float), (sample.path, score)
        assert 0.0 <= score <= 1.0, (sample.path, score)


@pytest.mark.parametrize("name", FORMATS)
def test_own_example_is_detected(name: str, examples: dict[str, Path]):
    path = examples[name]
    if name in NOT_SNIFFED:
        assert all(REGISTRY[name].sniff(s) == 0.0 for s in _samples(path))
        return
    assert detect_format(path).name == name
    assert prefkit.load(path, **LOAD_OPTIONS.get(name, {})).manifest.source["format"] == name


@pytest.mark.parametrize("name", FORMATS)
def test_example_loads(name: str, examples: dict[str, Path]):
    ds = load_example(name, examples[name])
    counts = ds.counts()
    assert counts["prompts"] and counts["responses"]
    assert counts["judgments"] + counts["rankings"] or "scores" in REGISTRY[name].kinds


@pytest.mark.parametrize("name", FORMATS)
def test_writer_round_trips_or_refuses(name: str, examples: dict[str, Path], tmp_path: Path):
    fmt = REGISTRY[name]
    ds = load_example(name, examples[name])
    if fmt.write is None:
        assert fmt.cannot_write.strip(), f"{name} has no writer and does not say why"
        with pytest.raises(PrefkitError) as info:
            prefkit.save(ds, tmp_path / "out.jsonl", format=name)
        assert fmt.cannot_write in str(info.value)
        assert not (tmp_path / "out.jsonl").exists()
        return
    cases = WRITE_CASES.get(name, [(None, ".jsonl", {})])
    for n, (which, suffix, options) in enumerate(cases):
        records = [EXAMPLES[name][i] for i in which] if which is not None else None
        src, _ = write_example(name, tmp_path / f"in{n}", records)
        ds = load_example(name, src)
        out = prefkit.save(ds, tmp_path / f"out{n}{suffix}", format=name, **options)
        again = prefkit.load(out, format=name, **READ_BACK.get(name, {}))
        for table in ("judgments", "rankings", "responses", "prompts"):
            assert again.counts()[table] == ds.counts()[table], (suffix, options, table)
        outcomes = again.judgments["outcome"].to_pylist()
        assert outcomes == ds.judgments["outcome"].to_pylist(), (suffix, options)
        if name not in NOT_SNIFFED:
            assert detect_format(out).name == name, (suffix, options)


def test_cli_formats_json_lists_the_registry():
    result = CliRunner().invoke(cli, ["formats", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert [f["name"] for f in listed] == FORMATS
    for entry in listed:
        fmt = REGISTRY[entry["name"]]
        assert entry["summary"] == fmt.summary
        assert entry["kinds"] == list(fmt.kinds)
        assert entry["write"] is (fmt.write is not None)
        assert entry["options"] == dict(fmt.options)
