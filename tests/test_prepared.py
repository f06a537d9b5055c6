"""The prepared registry index is kept between runs and reused only for the same registry, rules and code."""

from __future__ import annotations

import logging
import shutil

import pandas as pd

from pipeline.link.prepared import PREFIX, cache_key, prepared_index, wait_for_writes
from pipeline.reconcile import link, normalise
from pipeline.rules import default_rules, load_rules

from .test_link import REG, RUN


def _rows():
    raw = pd.DataFrame([("Nguyễn Văn Hưng", "04/05/1980", "Nam", "001080000001"),
                        ("Le Thi Lan", "14/02/1990", "Nữ", None),
                        ("Nguyễn Văn Hùng", "09/07/2012", "Nam", "001212000009")],
                       columns=["full_name", "date_of_birth", "sex", "id_number"])
    for c in ("phone", "ward", "district", "address", "dose_date", "dose_number", "vaccine", "lot_number", "site"):
        raw[c] = None
    return raw.astype("string[pyarrow]")


def _linked(index, rules):
    norm = normalise(_rows(), rules, RUN, index.tone_style, index.lexicon(rules))
    return link(norm, index, rules).rows[["decision", "best_row", "match_score", "match_reason"]]


def test_prepared_index_is_written_then_loaded_and_links_the_same(tmp_path, caplog):
    registry = tmp_path / "registry.parquet"
    REG.to_parquet(registry)
    rules, cache = default_rules(), tmp_path / "cache"
    built = prepared_index(registry, [registry], rules, cache)
    wait_for_writes()
    files = list(cache.glob(f"{PREFIX}*"))
    assert [f.name for f in files] == [f"{PREFIX}{cache_key([registry], rules)}.pickle"]
    with caplog.at_level(logging.INFO, logger="pipeline.link.prepared"):
        loaded = prepared_index(registry, [registry], rules, cache)
    assert "loaded from" in caplog.text
    pd.testing.assert_frame_equal(loaded.people, built.people)
    assert loaded.chance_agreement == built.chance_agreement
    assert set(loaded._lookups) == set(built._lookups)
    assert loaded._lookups["codes"].name_fold.equals(built._lookups["codes"].name_fold)   # restored from the frame
    assert len(loaded._lookups["codes"].name_fold) == len(REG)
    expected = _linked(built, rules)
    assert (expected["decision"] == "linked").sum() == 2
    pd.testing.assert_frame_equal(_linked(loaded, rules), expected)
    # household numbers are kept as codes only: no text column, no dictionary of them
    assert "household_id" not in loaded.people.columns
    assert "household_id" not in loaded._lookups["codes"].dictionaries
    assert len(loaded._lookups["codes"].codes["household_id"]) == len(REG)


def test_another_registry_or_rules_version_is_built_afresh_and_replaces_the_old(tmp_path):
    registry = tmp_path / "registry.parquet"
    REG.to_parquet(registry)
    rules_dir = tmp_path / "rules"
    shutil.copytree(default_rules().source_dir, rules_dir)
    rules, cache = load_rules(rules_dir), tmp_path / "cache"
    prepared_index(registry, [registry], rules, cache)
    wait_for_writes()
    first = cache_key([registry], rules)

    (rules_dir / "matching.yaml").write_text((rules_dir / "matching.yaml").read_text(encoding="utf-8")
                                             .replace("link_threshold: 0.99", "link_threshold: 0.995"), encoding="utf-8")
    changed = load_rules(rules_dir)
    second = cache_key([registry], changed)
    assert second != first
    REG.iloc[::-1].reset_index(drop=True).to_parquet(registry)   # other content: another key again
    assert cache_key([registry], changed) not in (first, second)
    index = prepared_index(registry, [registry], changed, cache)
    wait_for_writes()
    assert index.size == len(REG)
    assert [f.name for f in cache.glob(f"{PREFIX}*")] == [f"{PREFIX}{cache_key([registry], changed)}.pickle"]


def test_a_damaged_prepared_index_is_rebuilt_not_trusted(tmp_path, caplog):
    registry = tmp_path / "registry.parquet"
    REG.to_parquet(registry)
    rules, cache = default_rules(), tmp_path / "cache"
    cache.mkdir()
    (cache / f"{PREFIX}{cache_key([registry], rules)}.pickle").write_bytes(b"\x80\x05not a pickle")
    with caplog.at_level(logging.WARNING, logger="pipeline.link.prepared"):
        index = prepared_index(registry, [registry], rules, cache)
    wait_for_writes()
    assert "unusable" in caplog.text
    assert index.size == len(REG)
    reloaded = prepared_index(registry, [registry], rules, cache)   # the rebuilt one was written over it
    assert reloaded.size == len(REG)


def test_another_pandas_version_gives_another_key(tmp_path, monkeypatch):
    """A pickle holds pandas, numpy and Arrow objects: another version of them must not load it."""
    registry = tmp_path / "registry.parquet"
    REG.head(10).to_parquet(registry)
    rules = default_rules()
    before = cache_key([registry], rules)
    monkeypatch.setattr(pd, "__version__", "0.0.0-other")
    assert cache_key([registry], rules) != before


def test_file_digest_hashes_a_large_file_once_and_sees_it_change(tmp_path, monkeypatch):
    import hashlib

    from pipeline import output

    def digest_of(data: bytes) -> str:
        return hashlib.blake2b(data).hexdigest()[:32]

    calls = []
    real = hashlib.file_digest
    monkeypatch.setattr(hashlib, "file_digest", lambda fh, name: calls.append(name) or real(fh, name))
    small = tmp_path / "rules.yaml"
    for text in (b"threshold: 0.99\n", b"threshold: 0.98\n"):   # same size, rewritten at once: never remembered
        small.write_bytes(text)
        assert output.file_digest(small) == digest_of(text)
    big = tmp_path / "registry.parquet"
    data = bytearray(output.MEMO_BYTES)
    big.write_bytes(data)
    calls.clear()
    assert output.file_digest(big) == output.file_digest(big) == digest_of(bytes(data))
    assert len(calls) == 1
    data[12345] = 1
    big.write_bytes(data)                       # same size, new content
    assert output.file_digest(big) == digest_of(bytes(data))
    assert len(calls) == 2
