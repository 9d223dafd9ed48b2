"""Reading eval prompts for `inspect --against`: every accepted input, and clear errors.

Expected prompts and ids are written by hand next to each input file (or, for the real
files, read with plain ``json`` in the test).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from realdata import SHARED_DATA

import prefkit
from prefkit.diagnostics.evalset import PROMPT_FIELDS, EvalPrompts, read_prompts
from prefkit.errors import InputError
from prefkit.views import prompt_text


def _jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_text_file_one_prompt_per_non_empty_line(tmp_path: Path) -> None:
    p = tmp_path / "eval.txt"
    p.write_text("\ufeffWhat is 2+2?\n\n   \n  Name a prime.  \nLast one")
    got = read_prompts(p)
    assert isinstance(got, EvalPrompts)
    assert got.texts == ["What is 2+2?", "Name a prime.", "Last one"]
    assert got.ids == ["line 1", "line 4", "line 5"]
    assert len(got) == 3
    gz = tmp_path / "eval.txt.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    assert read_prompts(gz).texts == got.texts


def test_jsonl_default_fields_ids_and_explicit_field(tmp_path: Path) -> None:
    p = _jsonl(
        tmp_path / "q.jsonl",
        [
            {"question_id": 7, "question": "Why is the sky blue?", "answer": "Rayleigh"},
            {"question_id": 8, "question": "What is DNA?", "answer": "a molecule"},
        ],
    )
    got = read_prompts(p)
    assert got.texts == ["Why is the sky blue?", "What is DNA?"]
    assert got.ids == ["7", "8"]
    assert read_prompts(p, field="answer").texts == ["Rayleigh", "a molecule"]
    # the first present field of PROMPT_FIELDS wins ("prompt" before "text")
    q = _jsonl(tmp_path / "p.jsonl", [{"text": "no", "prompt": "yes"}])
    assert PROMPT_FIELDS.index("prompt") < PROMPT_FIELDS.index("text")
    assert read_prompts(q).texts == ["yes"]
    assert read_prompts(q).ids == ["line 1"]


def test_json_csv_tsv_parquet_and_gzip(tmp_path: Path) -> None:
    rows = [{"instruction": "Sort a list."}, {"instruction": "Reverse a string."}]
    want = ["Sort a list.", "Reverse a string."]
    (tmp_path / "a.json").write_text(json.dumps(rows, indent=2))
    (tmp_path / "a.csv").write_text('instruction\n"Sort a list."\nReverse a string.\n')
    (tmp_path / "a.tsv").write_text("id\tinstruction\nx\tSort a list.\ny\tReverse a string.\n")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    for name in ["a.json", "a.csv", "a.tsv", "a.parquet", "a.jsonl.gz"]:
        assert read_prompts(tmp_path / name).texts == want, name
    assert read_prompts(tmp_path / "a.json").ids == ["item 1", "item 2"]
    assert read_prompts(tmp_path / "a.tsv").ids == ["x", "y"]
    assert read_prompts(tmp_path / "a.parquet").ids == ["row 1", "row 2"]


def test_mt_bench_turns_give_the_first_turn(tmp_path: Path) -> None:
    p = _jsonl(
        tmp_path / "question.jsonl",
        [
            {
                "question_id": 81,
                "category": "writing",
                "turns": ["Write a blog post.", "Rewrite it."],
            }
        ],
    )
    got = read_prompts(p)
    assert got.texts == ["Write a blog post."]
    assert got.ids == ["81"]


def test_bad_records_name_file_line_and_field(tmp_path: Path) -> None:
    p = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok"}, {"other": "x"}])
    with pytest.raises(InputError) as err:
        read_prompts(p)
    assert err.value.file == str(p) and err.value.where == "line 2" and err.value.field == "prompt"
    assert "no prompt field" in str(err.value)

    q = _jsonl(tmp_path / "nonstr.jsonl", [{"prompt": "ok"}, {"prompt": "fine"}, {"prompt": 3}])
    with pytest.raises(
        InputError, match=r"nonstr\.jsonl, line 3, field 'prompt': .*string, got int"
    ):
        read_prompts(q)

    r = _jsonl(tmp_path / "empty_prompt.jsonl", [{"question": "  "}])
    with pytest.raises(InputError, match=r"line 1, field 'question': the prompt is empty"):
        read_prompts(r)

    s = _jsonl(tmp_path / "named.jsonl", [{"prompt": "a"}])
    with pytest.raises(InputError, match=r"line 1, field 'query'"):
        read_prompts(s, field="query")

    t = _jsonl(tmp_path / "nofield.jsonl", [{"foo": "a"}])
    with pytest.raises(InputError, match="no prompt field"):
        read_prompts(t)

    u = tmp_path / "broken.jsonl"
    u.write_text('{"prompt": "a"}\n{"prompt": \n')
    with pytest.raises(InputError, match=r"line 2: malformed JSON"):
        read_prompts(u)


def test_empty_inputs_are_errors(tmp_path: Path) -> None:
    for name, content in [
        ("e.txt", ""),
        ("blank.txt", "\n  \n"),
        ("e.jsonl", ""),
        ("b.jsonl", "\n\n"),
    ]:
        (tmp_path / name).write_text(content)
        with pytest.raises(InputError, match="empty"):
            read_prompts(tmp_path / name)
    with pytest.raises(InputError, match="no such file"):
        read_prompts(tmp_path / "missing.txt")


def test_datasets_give_their_prompts(tmp_path: Path) -> None:
    ds = prefkit.synth.simulate(kind="pairwise", n_prompts=5, seed=1)
    prefkit.save(ds, tmp_path / "ds")
    got = read_prompts(tmp_path / "ds")
    assert got.ids == ds.table("prompts").column("prompt_id").to_pylist()
    want = prompt_text(ds.table("prompts").column("messages").combine_chunks())
    assert got.texts == want.to_pylist()

    # a file in a registered format (HH-RLHF chosen/rejected) through prefkit.load
    hh = _jsonl(
        tmp_path / "hh.jsonl",
        [
            {
                "chosen": "\n\nHuman: How do I bake bread?\n\nAssistant: Knead the dough.",
                "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: No idea.",
            }
        ],
    )
    texts = read_prompts(hh).texts
    assert len(texts) == 1 and "How do I bake bread?" in texts[0]


def test_a_folder_of_record_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _jsonl(tmp_path / "b.jsonl", [{"prompt": "second file"}])
    _jsonl(tmp_path / "sub" / "a.jsonl", [{"prompt": "in sub"}, {"prompt": "in sub 2"}])
    got = read_prompts(tmp_path)
    assert got.texts == ["second file", "in sub", "in sub 2"]
    assert got.ids == ["b.jsonl:line 1", "sub/a.jsonl:line 1", "sub/a.jsonl:line 2"]


@pytest.mark.shared_data
def test_real_eval_sets() -> None:
    if not SHARED_DATA.is_dir():
        pytest.skip("shared data not found")
    llmbar = read_prompts(SHARED_DATA / "llmbar")
    files = sorted((SHARED_DATA / "llmbar").rglob("dataset.json"))
    want = [r["input"] for f in files for r in json.loads(f.read_text())]
    assert llmbar.texts == want and len(want) == 619
    vicuna = read_prompts(
        SHARED_DATA / "vicuna80_human_battles" / "prompts" / "vicuna_questions.jsonl"
    )
    assert vicuna.ids == [str(i) for i in range(1, 81)]
    assert vicuna.texts[0] == "How can I improve my time management skills?"
    # a dataset folder in a registered format: the 80 distinct questions of the battles
    battles = read_prompts(SHARED_DATA / "vicuna80_human_battles")
    assert sorted(battles.texts) == sorted(vicuna.texts)
