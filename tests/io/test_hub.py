"""Loading through Hugging Face ``datasets`` (``load(..., hub=True)`` and hub ids), offline.

``datasets.load_dataset`` also reads local folders, so every test here uses a folder under
``tmp_path`` and never the network: each test runs with ``HF_HUB_OFFLINE=1`` and
``HF_DATASETS_OFFLINE=1``, the Hugging Face caches pointed into ``tmp_path``, and sockets
refused. ``datasets`` reads those variables once, at import, so the fixture patches its
already-imported config as well.
"""

from __future__ import annotations

import gzip
import json
import socket
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prefkit
from builders import CONVERSATIONAL
from prefkit import Dataset, InputError, PrefkitError
from prefkit.schema import TABLES

hf = pytest.importorskip("datasets")

NO_SUCH = "no-such-org/no-such-dataset-xyz"
STANDARD = [
    {
        "prompt": "What colour is the sky?",
        "chosen": "Blue.",
        "rejected": "Green.",
        "score_chosen": 9.0,
        "score_rejected": 2.0,
        "margin": 1.5,
    },
    {
        "prompt": "2+2?",
        "chosen": "4",
        "rejected": "5",
        "score_chosen": 8.0,
        "score_rejected": 1.0,
        "margin": 0.5,
    },
    {
        "prompt": "Name a fruit.",
        "chosen": "Apple.",
        "rejected": "Chair.",
        "score_chosen": 7.0,
        "score_rejected": 0.0,
        "margin": 2.0,
    },
]
ROWS = {"standard": STANDARD, "conversational": CONVERSATIONAL}


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network, and every Hugging Face cache under ``tmp_path/hf``."""
    home = tmp_path / "hf"
    cache = home / "datasets"
    for key, value in {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(home),
        "HF_DATASETS_CACHE": str(cache),
        "HF_HUB_CACHE": str(home / "hub"),
    }.items():
        monkeypatch.setenv(key, value)
    import datasets.config as hf_config
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hf_config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hf_config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(hf_config, "HF_CACHE_HOME", str(home), raising=False)
    monkeypatch.setattr(hf_config, "HF_DATASETS_CACHE", cache, raising=False)
    monkeypatch.setattr(hf_config, "HF_MODULES_CACHE", home / "modules", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(home / "hub"), raising=False)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return home


def _write(folder: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    """``rows`` as ``folder/name`` (.jsonl or .parquet); the folder is created."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _same_tables(a: Dataset, b: Dataset) -> None:
    assert a.counts() == b.counts()
    assert a.table_fingerprints() == b.table_fingerprints()


# --- a local folder through datasets.load_dataset ------------------------------------------------
@pytest.mark.parametrize("style", sorted(ROWS))
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_trl_folder_through_datasets_matches_the_file(
    tmp_path: Path, offline: Path, suffix: str, style: str
) -> None:
    rows = ROWS[style]
    # File and folder share a stem so that judgment ids (<stem>:<n>) agree too.
    folder = tmp_path / "pairs"
    path = _write(folder, f"pairs{suffix}", rows)
    direct = prefkit.load(path)
    via_hub = prefkit.load(folder, hub=True)
    _same_tables(direct, via_hub)
    assert via_hub.num_rows("judgments") == len(rows)
    assert via_hub.judgments.column("outcome").to_pylist() == [1] * len(rows)
    assert via_hub.manifest.source == {"hub": str(folder), "split": "train", "format": "trl"}
    # It really went through datasets: its cache is the one in tmp_path.
    assert any(offline.rglob("*.arrow"))


def test_trl_folder_with_format_and_options(tmp_path: Path) -> None:
    rows = [{"question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]} for r in STANDARD]
    folder = tmp_path / "pairs"
    path = _write(folder, "pairs.jsonl", rows)
    kw = {"prompt": "question", "chosen": "good", "rejected": "bad"}
    direct = prefkit.load(path, format="trl", **kw)
    via_hub = prefkit.load(folder, "trl", hub=True, **kw)
    _same_tables(direct, via_hub)
    pairs = via_hub.to_pairs().to_pylist()
    assert sorted(p["chosen"] for p in pairs) == sorted(r["chosen"] for r in STANDARD)


def test_split_is_read_and_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "splits"
    _write(folder, "train.jsonl", STANDARD[:2])
    test_file = _write(folder, "test.jsonl", STANDARD[2:])
    ds = prefkit.load(folder, hub=True, split="test")
    assert ds.manifest.source == {"hub": str(folder), "split": "test", "format": "trl"}
    assert ds.num_rows("judgments") == 1
    direct = prefkit.load(test_file)
    # Ids of events follow the file stem (folder name vs "test"); content tables agree.
    for name in ("prompts", "responses"):
        assert ds.table_fingerprints()[name] == direct.table_fingerprints()[name]
    keep = ["prompt_id", "a", "b", "outcome"]
    assert ds.judgments.select(keep).equals(direct.judgments.select(keep))
    assert prefkit.load(folder, hub=True).num_rows("judgments") == 2  # default: train


def test_unknown_split_names_the_source(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    _write(folder, "pairs.jsonl", STANDARD)
    with pytest.raises(PrefkitError, match="validation") as info:
        prefkit.load(folder, hub=True, split="validation")
    assert str(folder) in str(info.value)


def test_folder_datasets_cannot_read_is_a_prefkit_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PrefkitError) as info:
        prefkit.load(empty, hub=True)
    assert str(empty) in str(info.value)
    assert "datasets.load_dataset" in str(info.value)


def test_quarantine_through_datasets_reconciles(tmp_path: Path) -> None:
    rows = [STANDARD[0], {"prompt": "x", "chosen": None, "rejected": "z"}, STANDARD[1]]
    folder = tmp_path / "pairs"
    _write(folder, "pairs.jsonl", rows)
    with pytest.raises(InputError) as info:
        prefkit.load(folder, "trl", hub=True)
    assert info.value.field == "chosen"
    assert info.value.where == "row 2"
    side = tmp_path / "bad.jsonl"
    ds = prefkit.load(folder, "trl", hub=True, on_error="quarantine", quarantine=side)
    q = ds.manifest.quarantine
    assert q is not None
    assert (q["read"], q["kept"], q["quarantined"]) == (3, 2, 1)
    assert ds.num_rows("judgments") == 2
    assert len(side.read_text(encoding="utf-8").splitlines()) == 1


def test_bad_record_error_names_the_hub_source(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    _write(folder, "pairs.jsonl", [{"prompt": "x", "chosen": None, "rejected": "z"}])
    with pytest.raises(InputError) as info:
        prefkit.load(folder, "trl", hub=True)
    assert str(folder) in info.value.file


# --- HH-RLHF from the shared data, through datasets ----------------------------------------------
@pytest.mark.shared_data
def test_hh_rlhf_folder_through_datasets(tmp_path: Path, shared_data: Path) -> None:
    src = shared_data / "hh_rlhf_harmless_test" / "harmless-base_test.jsonl.gz"
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        lines = [next(fh) for _ in range(8)]
    folder = tmp_path / "harmless"
    folder.mkdir()
    path = folder / "harmless.jsonl"
    path.write_text("".join(lines), encoding="utf-8")

    via_hub = prefkit.load(folder, format="hh-rlhf", hub=True)
    direct = prefkit.load(path, format="hh-rlhf")
    _same_tables(direct, via_hub)
    assert via_hub.num_rows("judgments") == len(lines)
    assert set(via_hub.judgments.column("outcome").to_pylist()) == {1}
    assert set(via_hub.judgments.column("annotator_kind").to_pylist()) == {"human"}
    assert via_hub.manifest.source == {"hub": str(folder), "split": "train", "format": "hh-rlhf"}
    # Sniffing works on the hub copy too.
    sniffed = prefkit.load(folder, hub=True).manifest.source
    assert sniffed is not None and sniffed["format"] == "hh-rlhf"
    # The chosen transcripts come back byte for byte through the hh-rlhf writer.
    out = tmp_path / "again.jsonl"
    prefkit.save(via_hub, out, "hh-rlhf")
    original = sorted(json.loads(line)["chosen"] for line in lines)
    again = sorted(json.loads(line)["chosen"] for line in out.read_text().splitlines())
    assert again == original


# --- sources that are neither a path nor loadable -----------------------------------------------
@pytest.mark.parametrize("hub", [None, True])
def test_unloadable_hub_id_is_a_prefkit_error(hub: bool | None) -> None:
    with pytest.raises(PrefkitError) as info:
        prefkit.load(NO_SUCH, hub=hub)
    err = info.value
    assert type(err) is PrefkitError
    assert str(err).startswith(f"{NO_SUCH}: ")
    assert "datasets.load_dataset" in str(err)
    # One clear message, not a chained traceback from datasets.
    assert err.__cause__ is None
    assert err.__suppress_context__


def test_unloadable_hub_id_with_format_and_split() -> None:
    with pytest.raises(PrefkitError, match=NO_SUCH):
        prefkit.load(NO_SUCH, format="hh-rlhf", split="test")


def test_hub_false_never_goes_to_the_hub() -> None:
    with pytest.raises(PrefkitError, match="no such file or folder"):
        prefkit.load(NO_SUCH, hub=False)


def test_hub_dataset_round_trips_through_every_table(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    _write(folder, "pairs.parquet", STANDARD)
    ds = prefkit.load(folder, hub=True)
    assert set(ds.counts()) == set(TABLES)
    saved = ds.save(tmp_path / "canonical")
    again = prefkit.load(saved)
    assert again.fingerprint() == ds.fingerprint()
    assert again.manifest.source == ds.manifest.source
