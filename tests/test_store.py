"""A registry partitioned by blocking key gives each province what the whole registry gives it."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.ingest import read_export
from pipeline.link.index import (
    RegistryError,
    RegistryIndex,
    build_index,
    load_index,
    registry_people,
)
from pipeline.link.profiles import build_profiles
from pipeline.link.store import RegistryStore, build_store
from pipeline.reconcile import (
    apply_decisions,
    assemble,
    case_keys,
    find_candidates,
    link,
    normalise,
    reject_reasons,
)
from pipeline.rules import load_rules
from pipeline.state import Decision

from .conftest import RUN_DATE, SAMPLE
from .test_flow import _same_outputs
from .test_link import REG, RUN, export_rows

SAMPLE_PEOPLE = pq.read_metadata(SAMPLE / "registry.parquet").num_rows


def _province_rows(code: str, rules) -> pd.DataFrame:
    frames = []
    for path in sorted((SAMPLE / "exports" / code).iterdir()):
        try:
            frame = read_export(path, rules).frame
        except Exception:   # the sample's unreadable files
            continue
        frames.append(frame.assign(source_file=f"{code}/{path.name}"))
    return pd.concat(frames, ignore_index=True)


def _reached(norm: pd.DataFrame, store: RegistryStore) -> RegistryIndex:
    """The index of the people that the export persons of `norm` reach in `store`."""
    return store.index_for(build_profiles(norm[reject_reasons(norm).isna().to_numpy()])[0])


def test_a_run_against_the_partitioned_registry_writes_what_the_whole_registry_gives(sample_run, tmp_path):
    """In slices of 400 export persons (the sample's provinces have 230 to 1,511), each of which
    reads its own part of the registry."""
    code, reference = sample_run
    store = tmp_path / "store"
    assert main(["partition-registry", "--registry", str(SAMPLE / "registry.parquet"), "--store", str(store),
                 "--chunk-rows", str(SAMPLE_PEOPLE // 3 + 1)]) == 0
    assert len(json.loads((store / "store.json").read_text(encoding="utf-8"))["parts"]) == 3
    assert registry_people(store) == SAMPLE_PEOPLE
    out = tmp_path / "out"
    assert main(["run", "--registry", str(store), "--exports", str(SAMPLE / "exports"), "--out", str(out),
                 "--run-date", RUN_DATE.isoformat(), "--slice-persons", "400"]) == code
    _same_outputs(reference, out, ("01", "66", "79"))
    ran, ref = (json.loads((d / "run.json").read_text(encoding="utf-8")) for d in (out, reference))
    assert ran["registry"]["people"] == ref["registry"]["people"] == SAMPLE_PEOPLE
    for key in ("rows_by_status", "rows_by_code", "review_cases", "validation_failures"):
        assert {c: p[key] for c, p in ran["provinces"].items()} == {c: p[key] for c, p in ref["provinces"].items()}


def test_a_province_reads_part_of_the_registry_with_the_whole_registrys_statistics(tmp_path, rules):
    store = tmp_path / "store"
    build_store(SAMPLE / "registry.parquet", store, rules, chunk_rows=SAMPLE_PEOPLE // 4 + 1)
    whole = load_index(SAMPLE / "registry.parquet", rules)
    opened = RegistryStore.open(store, rules)
    assert opened.size == whole.size
    assert opened.tone_style == whole.tone_style
    assert opened.lexicon(rules) == whole.lexicon(rules)
    assert opened.meta["chance_agreement"] == whole.chance_agreement

    raw = _province_rows("66", rules)
    norm = normalise(raw, rules, RUN_DATE, whole.tone_style, whole.lexicon(rules))
    part = _reached(norm, opened)
    assert part.population == whole.size
    assert 0 < part.size < whole.size / 10     # a part of the registry: some 300 of its 8,000 people
    theirs = link(norm, whole, rules)
    for slice_persons in (None, 40):    # all at once, and 40 export persons at a time (each reads its part)
        ours = link(norm, opened, rules, slice_persons=slice_persons)
        assert ours.n_pairs == theirs.n_pairs
        pd.testing.assert_frame_equal(assemble(raw, ours, ours.index, "66"), assemble(raw, theirs, whole, "66"))


def test_a_block_the_whole_registry_skips_is_skipped_though_the_part_holds_few_of_its_people(tmp_path, rules):
    # 50 namesakes born in 1985 (over name_year's max_block of 40; 30 share the sex: over name_sex's
    # 25), 3 of them on the export person's day. A second export person wrote the ID of one more
    # of them, who is thus in the part read, though not reachable by the first one's blocks.
    sons = [(f"0010850{i:05d}", None, "Trịnh Văn Sơn", "1985-03-03" if i < 3 else f"1985-{1 + i % 12:02d}-{10 + i % 18}",
             1985, "M" if i < 30 else "F", "01", "Quận 9", f"Phường {i}", f"HKS{i}", None) for i in range(50)]
    reg = pd.concat([REG, REG.iloc[:0].pipe(lambda e: pd.DataFrame(sons, columns=e.columns))], ignore_index=True)
    reg["date_of_birth"] = pd.to_datetime(reg["date_of_birth"]).astype("datetime64[s]")
    reg["birth_year"] = reg["birth_year"].astype("Int16")
    path = tmp_path / "registry.parquet"
    reg.to_parquet(path)
    store = tmp_path / "store"
    build_store(path, store, rules, chunk_rows=1000)
    raw = pd.DataFrame({"full_name": ["Trịnh Văn Sơn", "Lò Văn Sáu"], "date_of_birth": ["03/03/1985", "01/01/1960"],
                        "sex": ["Nam", "Nam"], "id_number": [None, sons[40][0]]})
    for c in ("phone", "ward", "district", "address", "dose_date", "dose_number", "vaccine", "lot_number", "site"):
        raw[c] = None
    raw = raw.astype("string[pyarrow]").assign(source_file="01/t.csv", source_row=[2, 3])
    whole = build_index(reg, rules)
    norm = normalise(raw, rules, RUN, whole.tone_style, whole.lexicon(rules))
    part = _reached(norm, RegistryStore.open(store, rules))
    assert sons[40][0] in set(part.people["person_id"])

    def pairs(index):
        found = find_candidates(norm, index, rules).pairs
        ids = index.people["person_id"].to_numpy()[found["row"].to_numpy()]
        return sorted(zip(found["profile"], ids, found["via"].astype(str), strict=True))

    assert pairs(part) == pairs(whole)
    assert len({p for p in pairs(whole) if p[0] == pairs(whole)[0][0]}) == 3     # the three born that day
    del part._lookups["block_sizes"]      # judged by the part's own block sizes instead:
    assert pairs(part) != pairs(whole)    # name_year's block of 4 would not be skipped


def test_export_persons_linked_one_at_a_time_are_decided_as_all_at_once(tmp_path, rules):
    """What spans export persons is decided over all of them, whichever slice each is linked in:
    two claiming one person, the rows of one person pooled, namesakes' candidates, a reviewer's
    decision naming a person no row reaches; against the whole registry and a partitioned one."""
    raw = export_rows([("Nguyễn Văn Hưng", "04/05/1980", "Nam", "001080000001", None, None),
                       ("Nguyễn Văn Hưn", "04/05/1981", "Nam", "001080000001", None, None),  # claims him too
                       ("Lê Thị Lan", "14/02/1990", "Nữ", "001190000003", None, "Phường 3"),
                       ("Lê Thị Lan", "14/02/1990", "Nữ", None, None, "Phường 3"),   # follows the row above
                       ("Lê Thị Lan", "14/02/1990", "Nữ", None, None, "Phường 7"),   # two namesakes
                       ("Đoàn Thị Mai", "03/11/1957", "Nữ", None, None, None)])      # no one: a reviewer's
    whole = build_index(REG, rules)
    norm = normalise(raw, rules, RUN, whole.tone_style, whole.lexicon(rules))
    REG.to_parquet(tmp_path / "registry.parquet")
    build_store(tmp_path / "registry.parquet", tmp_path / "store", rules, chunk_rows=1000)
    opened = RegistryStore.open(tmp_path / "store", rules)
    case = case_keys(norm).iloc[5]
    decisions = {case: Decision("01", case, "001175000005", (), "officer", "2022-05-30T10:00:00", "01.xlsx")}

    def linked(registry, slice_persons):
        result = link(norm, registry, rules, pd.Series(["001175000005"]), slice_persons)
        assert result.n_profiles == 6
        applied = apply_decisions(result, decisions, result.index)
        return assemble(raw, result, result.index, "01"), applied

    expected, applied = linked(whole, None)
    assert expected["match_reason"].iloc[1].startswith("hai người khác nhau cùng nhận một người")
    assert expected["match_reason"].iloc[3].startswith("cùng người")
    assert expected["status"].iloc[4] == "review" and len(expected["candidate_ids"].iloc[4]) == 2
    assert expected["person_id"].iloc[5] == "001175000005" and applied["applied"] == 1
    for registry, slice_persons in ((whole, 1), (whole, 4), (opened, None), (opened, 1), (opened, 4)):
        got, got_applied = linked(registry, slice_persons)
        pd.testing.assert_frame_equal(got, expected)
        assert got_applied == applied


def test_a_partitioned_registry_is_known_by_the_registry_it_was_built_from(tmp_path, rules):
    """A night's inputs digest (what decides whether a province is reused) names the registry a
    store was built from, not the folder's files: two builds of one registry are one registry, and
    a registry that differs in one person's phone is another."""
    from flows.reconcile import run_inputs_digest

    other = pq.read_table(SAMPLE / "registry.parquet").to_pandas()
    other.loc[0, "phone"] = "0912345678" if other.loc[0, "phone"] != "0912345678" else "0987654321"
    other.to_parquet(tmp_path / "other.parquet")       # one person's phone changed: the same name counts
    for name, source in (("a", SAMPLE / "registry.parquet"), ("b", SAMPLE / "registry.parquet"),
                         ("c", tmp_path / "other.parquet")):
        build_store(source, tmp_path / name, rules, chunk_rows=SAMPLE_PEOPLE // 2 + 1)
    a, b, c = (run_inputs_digest(tmp_path / name, rules.source_dir, True) for name in "abc")
    assert a == b != c


def test_a_partitioned_registry_built_with_other_rules_or_libraries_is_refused(tmp_path, rules, monkeypatch):
    store = tmp_path / "store"
    build_store(SAMPLE / "registry.parquet", store, rules, chunk_rows=SAMPLE_PEOPLE)
    with monkeypatch.context() as patched:      # its hashes come from pandas: another version may hash otherwise
        patched.setattr("pipeline.link.store.libraries", lambda: "python 3.11.7, numpy 2.0.0, pandas 2.0.0, pyarrow 1")
        with pytest.raises(RegistryError, match="other versions of Python, numpy, pandas or pyarrow"):
            RegistryStore.open(store, rules)
    RegistryStore.open(store, rules)
    changed = tmp_path / "rules"
    shutil.copytree(rules.source_dir, changed)
    with open(changed / "matching.yaml", "a", encoding="utf-8") as fh:
        fh.write("\n# changed\n")
    with pytest.raises(RegistryError, match="built with other rules"):
        RegistryStore.open(store, load_rules(changed))
    out = tmp_path / "out"
    assert main(["run", "--registry", str(store), "--exports", str(SAMPLE / "exports"), "--out", str(out),
                 "--rules", str(changed), "--no-validate"]) == 1
    assert not (out / "corrected").exists()


def test_partition_registry_refuses_what_it_cannot_use(tmp_path, capsys):
    assert main(["partition-registry", "--registry", str(tmp_path / "none.parquet"), "--store", str(tmp_path / "s")]) == 1
    pd.DataFrame({"person_id": ["1"]}).to_parquet(tmp_path / "bad.parquet")
    assert main(["partition-registry", "--registry", str(tmp_path / "bad.parquet"), "--store", str(tmp_path / "s")]) == 1
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.building").exists()
    assert main(["partition-registry", "--registry", str(SAMPLE / "registry.parquet"), "--store", str(tmp_path / "s"),
                 "--chunk-rows", "0"]) == 2
    capsys.readouterr()
    assert main(["partition-registry", "--help"]) == 0
    assert "--registry STORE" in capsys.readouterr().out
