"""Reconcile one province's normalised rows against the registry index (tables in, tables out)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.codes import code_lists
from pipeline.correct import corrected_values, person_flags
from pipeline.link.candidates import candidate_pairs
from pipeline.link.decide import decide, resolve_conflicts
from pipeline.link.encoded import RegistryCodes
from pipeline.link.index import RegistryIndex
from pipeline.link.keys import place_key
from pipeline.link.persons import pool_export_persons
from pipeline.link.profiles import build_profiles
from pipeline.link.scoring import (
    add_counts,
    apply_weights,
    compare_pairs,
    confident_counts,
    m_from_counts,
)
from pipeline.link.store import RegistryStore
from pipeline.normalize.records import normalize_exports
from pipeline.rules import PERSON_CODES, Rules
from pipeline.state import Decision

log = logging.getLogger(__name__)
REJECT_REASON = "không có họ tên và không có số giấy tờ hợp lệ: không thể đối chiếu"
NOT_A_DOSE_REASON = ("có họ tên nhưng không có số giấy tờ, ngày sinh, số điện thoại hay thông tin mũi tiêm "
                     "(ngày tiêm, vắc xin, mũi số): không phải dòng tiêm chủng (dòng tổng cộng, chữ ký?)")


@dataclass(frozen=True)
class LinkResult:
    """Row-level outcome of linking, before dose checks."""

    rows: pd.DataFrame          # normalised rows + link columns, same index as the raw rows
    n_profiles: int
    n_pairs: int
    index: RegistryIndex        # the index whose rows `best_row` and `candidate_rows` number


def normalise(raw: pd.DataFrame, rules: Rules, run_date: dt.date, style: str,
              lexicon: frozenset[str] | None = None) -> pd.DataFrame:
    """Normalised person and dose fields for raw rows, plus place keys."""
    norm = normalize_exports(raw, rules, run_date=run_date, style=style, lexicon=lexicon)
    norm["dob"] = norm["dob_date"].where(norm["dob_precision"] == "day")
    norm["place_fold"] = place_key(raw["district"], raw["ward"])
    # why the reader could not read a row safely (null where it could): such rows are rejected
    norm["read_problem"] = raw["read_problem"] if "read_problem" in raw else pd.Series(
        pd.NA, index=raw.index, dtype="string[pyarrow]")
    return norm


@dataclass(frozen=True)
class Candidates:
    """Export persons of usable rows and their candidate pairs."""

    rejected: np.ndarray        # rows that cannot be linked (`reject_reasons`)
    reasons: pd.Series          # why, for those rows (null for the others)
    profiles: pd.DataFrame
    profile_of_row: pd.Series
    pairs: pd.DataFrame


def reject_reasons(norm: pd.DataFrame) -> pd.Series:
    """Why each row cannot be linked (null where it can): the reader's reason; neither a name nor a
    usable ID; or a name alone, with no ID, birth date or phone to tell the person by and nothing
    of a dose (a readable dose date, a known vaccine or dose number): a total line, a signature
    under the list, a note."""
    no_name = norm["name_fold"].isna() & ~norm["id_kind"].isin(["personal", "old"])
    dose = norm["dose_date"].notna() | norm["vaccine_known"].fillna(False) | norm["dose_number_known"].fillna(False)
    name_only = ((norm["id_kind"] == "missing") & norm["dob_precision"].isna() & norm["phone"].isna()
                 & ~dose.astype(bool))
    reason = pd.Series(pd.NA, index=norm.index, dtype="string[pyarrow]")
    reason = reason.mask(name_only.fillna(False).astype(bool), NOT_A_DOSE_REASON).mask(no_name, REJECT_REASON)
    return norm["read_problem"].fillna(reason)


def find_candidates(norm: pd.DataFrame, index: RegistryIndex, rules: Rules) -> Candidates:
    """Group usable rows into export persons and join them to the registry through the blocking rules."""
    reasons, rejected, profiles, profile_of_row = _export_persons(norm)
    return Candidates(rejected, reasons, profiles, profile_of_row, _pairs(profiles, index, rules))


def _export_persons(norm: pd.DataFrame) -> tuple[pd.Series, np.ndarray, pd.DataFrame, pd.Series]:
    """Why rows cannot be linked (`reject_reasons`), which, and the export persons of the others
    with each row's (`build_profiles`)."""
    reasons = reject_reasons(norm)
    rejected = reasons.notna().to_numpy()
    return reasons, rejected, *build_profiles(norm[~rejected])


def _pairs(profiles: pd.DataFrame, index: RegistryIndex, rules: Rules) -> pd.DataFrame:
    """The candidate pairs of `profiles` in `index`; adds their registry household codes."""
    profiles["id_household"] = id_households(profiles, index)
    return candidate_pairs(profiles, index, rules.matching["blocking"])


def link(norm: pd.DataFrame, registry: RegistryIndex | RegistryStore, rules: Rules,
         named: pd.Series | None = None, slice_persons: int | None = None) -> LinkResult:
    """Group rows into export persons, find candidates, score, decide; map back to rows.

    The export persons are linked `slice_persons` at a time (all at once by default): candidates
    and comparison levels per slice; the m probabilities from the confident pairs of every slice;
    then weights and decisions per slice. Against a partitioned registry (`pipeline.link.store`),
    each slice reads only the people it reaches. What spans export persons (two claiming one
    registry person; the rows of one person pooled) is decided over all of them together, so the
    result does not depend on the slices. `named`: person IDs that reviewers' decisions name
    (read from a partitioned registry, so that `apply_decisions` finds them).
    """
    model = rules.matching
    reasons, rejected, profiles, profile_of_row = _export_persons(norm)
    step = max(int(slice_persons or len(profiles)), 1)
    starts = range(0, len(profiles), step) if len(profiles) else range(1)
    single = len(starts) == 1
    compared: list[tuple[int, pd.DataFrame]] = []    # each slice's first export person and levels
    counts: dict[str, dict[str, int]] = {}
    n_pairs = 0
    index: RegistryIndex | None = None
    for number, start in enumerate(starts, 1):
        part = profiles.iloc[start:start + step].copy()
        # the part of a partitioned registry that a single slice reads holds the reviewers' persons too
        index = registry if isinstance(registry, RegistryIndex) else registry.index_for(part, named if single else None)
        pairs = _pairs(part, index, rules)
        levels = compare_pairs(pairs, part, index, model)
        if index.store_rows is not None:    # a part of a partitioned registry: its rows as the registry's
            levels["row"] = index.store_rows[levels["row"].to_numpy()]
        counts = add_counts(counts, confident_counts(levels))
        compared.append((start, levels))
        n_pairs += len(pairs)
        if not single:
            log.info("link: slice %d of %d: %d export persons, %d candidate pairs", number, len(starts), len(part),
                     len(pairs))
            index = None
        del part, pairs
    if isinstance(registry, RegistryIndex):
        registry.compact(model["blocking"])   # the registry's key-only columns are not needed any more
    comparisons = m_from_counts(counts, model)
    floor = float(model.get("tf_floor", 1e-7))
    decided = []
    while compared:    # each slice's levels freed once decided
        start, levels = compared.pop(0)
        decided.append(decide(profiles.iloc[start:start + step],
                              apply_weights(levels, comparisons, registry.chance_agreement, floor), model,
                              registry.population))
        del levels
    decisions = pd.concat(decided) if len(decided) > 1 else decided[0]
    decisions = resolve_conflicts(decisions, profiles)
    if isinstance(registry, RegistryIndex):
        index = registry
    else:    # the people the decisions name: the one slice's part, or read now
        index = index if index is not None else _named_people(registry, decisions, named)
        assert index.store_rows is not None
        _renumber(decisions, index.store_rows)
    decisions = pool_export_persons(profiles, decisions, index)
    log.info("link: %d rows, %d export persons, %d candidate pairs", len(norm), len(profiles), n_pairs)
    rows = norm.copy()
    rows["rejected"] = rejected
    rows["profile"] = profile_of_row.reindex(rows.index).astype("Int64")
    d = decisions.reindex(rows["profile"].fillna(-1).to_numpy())
    d.index = rows.index
    rows["decision"] = d["status"].fillna("unmatched").where(~rejected, "rejected")
    rows["best_row"] = d["best_row"]
    rows["match_score"] = d["match_score"].fillna(0.0).where(~rejected, 0.0)
    rows["match_reason"] = d["reason"].fillna("không tìm thấy ai phù hợp trong CSDL dân cư")
    rows.loc[rejected, "match_reason"] = reasons[rejected]
    rows["match_reason"] = _written_with_extras(rows, rejected)
    rows["candidate_rows"] = d["candidate_rows"]
    rows["case_key"] = case_keys(rows)
    return LinkResult(rows, len(profiles), n_pairs, index)


def _named_people(store: RegistryStore, decisions: pd.DataFrame, named: pd.Series | None) -> RegistryIndex:
    """The people of a partitioned registry that the decisions name (best rows and review
    candidates, as registry rows) or that the `named` IDs name, as one index."""
    best = decisions["best_row"].dropna().to_numpy(dtype=np.int64)
    _, candidates, _ = _candidate_rows(decisions)
    ids = store.rows_with_ids(named) if named is not None and len(named) else np.array([], np.int64)
    return store.index_of(np.unique(np.concatenate([best, candidates, ids])), for_linking=False)


def _candidate_rows(decisions: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decisions that list review candidates (a mask), every such candidate's registry row in
    one array (by Arrow, from the lists), and where each decision's candidates end in it."""
    listed = decisions["candidate_rows"].notna().to_numpy()
    lists = pa.array(decisions["candidate_rows"].to_numpy(dtype=object)[listed], type=pa.list_(pa.int64()))
    ends = np.asarray(lists.offsets)[1:]
    return listed, np.asarray(lists.flatten(), dtype=np.int64), ends


def _renumber(decisions: pd.DataFrame, rows: np.ndarray) -> None:
    """The decisions' registry rows (best row, review candidates) as rows of an index of the
    registry rows `rows` (sorted; every one the decisions name among them), in place."""
    renumbered = np.searchsorted(rows, decisions["best_row"].fillna(0).to_numpy(dtype=np.int64))
    decisions["best_row"] = pd.Series(renumbered, index=decisions.index, dtype="Int64").where(
        decisions["best_row"].notna())
    listed, candidates, ends = _candidate_rows(decisions)
    renumbered = np.searchsorted(rows, candidates).tolist()    # one search for every candidate
    decisions.loc[listed, "candidate_rows"] = pd.Series(
        [renumbered[a:b] for a, b in zip(np.r_[0, ends][:-1].tolist(), ends.tolist(), strict=True)],
        index=decisions.index[listed], dtype=object)


WRITTEN_WITH_EXTRAS = {"id_recovered": "số giấy tờ ghi kèm chữ hoặc ký hiệu thừa; ",
                       "name_noted": "họ tên ghi kèm ghi chú hoặc ký hiệu thừa; "}


def _written_with_extras(rows: pd.DataFrame, rejected: np.ndarray) -> pd.Series:
    """The match reason, led by what the linker read past in the ID or the name (a label, a stray
    mark, a note), so that it agrees with the ID_INVALID or NAME_WRONG such a row carries."""
    reason = rows["match_reason"].astype("string[pyarrow]")
    for column, lead in reversed(WRITTEN_WITH_EXTRAS.items()):
        flagged = rows[column].fillna(False).to_numpy(dtype=bool) & ~rejected
        reason = reason.mask(flagged, lead + reason)
    return reason


def apply_decisions(result: LinkResult, decisions: dict[str, Decision], index: RegistryIndex) -> dict[str, int]:
    """Reviewers' decisions override the model, in place; return what was applied and what was stale.

    A decision naming a registry person who no longer exists, or a case no
    longer in the exports, is counted and not applied.
    """
    rows = result.rows
    if not decisions:
        return {"applied": 0, "stale_person": 0, "stale_case": 0}
    table = pd.DataFrame([d.__dict__ for d in decisions.values()]).set_index("case_key")
    person_rows = index.rows_of(table["decision"].where(table["decision"] != "none", ""), "person_id")
    table["row"] = person_rows
    stale_person = (table["decision"] != "none") & (table["row"] < 0)
    for key in table.index[stale_person]:
        log.warning("review decision for case %s names person %s, who is not in the registry: not applied",
                    key, table.loc[key, "decision"])
    usable = table[~stale_person]
    hit = rows["case_key"].isin(usable.index) & ~rows["rejected"]
    d = usable.reindex(rows.loc[hit, "case_key"])
    d.index = rows.index[hit]
    reason = ("theo quyết định của " + d["decided_by"] + " ngày " + d["decided_at"].str[:10]
              + " (tệp " + d["source_file"] + ")")
    none = d["decision"] == "none"
    rows.loc[d.index, "decision"] = np.where(none, "unmatched", "linked")
    rows.loc[d.index, "best_row"] = d["row"].where(~none).astype("Int64")
    rows.loc[d.index, "match_score"] = np.where(none, 0.0, 1.0)
    rows.loc[d.index, "match_reason"] = np.where(none, reason + ": không khớp với ai", reason)
    present = set(rows["case_key"].dropna())
    return {"applied": int(hit.sum()), "stale_person": int(stale_person.sum()),
            "stale_case": int(sum(k not in present for k in usable.index))}


def id_households(profiles: pd.DataFrame, index: RegistryIndex) -> pd.Series:
    """Household of the registry person whose personal or old number the export person wrote, as
    the registry's household code (int64, -1 where there is none): a code, not the text, so the
    registry keeps no dictionary of household numbers."""
    rows = np.where(profiles["id_personal"].notna(), index.rows_of(profiles["id_personal"], "person_id"),
                    index.rows_of(profiles["id_old"], "old_id"))
    return pd.Series(RegistryCodes.of(index).household_codes(rows), index=profiles.index)


def case_keys(rows: pd.DataFrame) -> pd.Series:
    """A stable key for the export person a row describes (the same in every province and run).

    A hash of the normalised name, date of birth and ID: it names no one.
    """
    desc = (rows["name_key"].fillna("") + "|" + rows["dob_date"].astype("string").fillna("")
            + "|" + rows["dob_year"].astype("string").fillna("") + "|" + rows["id_number"].fillna(""))
    codes, uniques = pd.factorize(desc)
    # Each distinct description once; its UTF-8 bytes taken from Arrow as a list (iterating the
    # pandas array one value at a time cost as much as the hashing).
    blake2b = hashlib.blake2b
    encoded = pa.array(uniques).cast(pa.binary()).to_pylist()
    hashed = pa.array(["X" + blake2b(u, digest_size=8).hexdigest() for u in encoded], pa.string())
    return pd.Series(hashed.take(codes), index=rows.index, dtype="string[pyarrow]")


def identity_keys(rows: pd.DataFrame, person_id: pd.Series) -> pd.Series:
    """person_id for linked rows; for others the export-person key; null for rejected rows."""
    out = person_id.astype("string[pyarrow]").fillna(rows["case_key"])
    return out.mask(rows["rejected"].to_numpy())


def assemble(raw: pd.DataFrame, result: LinkResult, index: RegistryIndex, province: str) -> pd.DataFrame:
    """The corrected table for a province, without the dose-level codes yet."""
    rows = result.rows
    linked = (rows["decision"] == "linked").to_numpy()
    reg_rows = rows["best_row"].where(pd.Series(linked, index=rows.index))
    at = reg_rows.fillna(-1).astype("int64").to_numpy()
    reg = index.people.reindex(at)
    reg.index = rows.index
    reg["name_key"] = RegistryCodes.of(index).text("name_key", at).array   # the index keeps it as codes only
    reg.loc[~linked] = None
    flags = person_flags(rows, reg, linked)
    values = corrected_values(rows, reg, linked)
    has_code = np.column_stack([flags[c] for c in PERSON_CODES]).any(axis=1)
    status = np.select([rows["rejected"].to_numpy(), linked & has_code, linked, (rows["decision"] == "review").to_numpy()],
                       ["rejected", "corrected", "matched", "review"], "unmatched")
    cands = np.empty(len(rows), dtype=object)
    cands.fill([])   # one shared empty list, never mutated
    lists = rows["candidate_rows"].to_numpy(dtype=object)
    listed = [i for i in np.flatnonzero(status == "review") if isinstance(lists[i], list)]  # a few per cent of rows
    if listed:   # one Arrow take of every listed registry row, then split per review row
        flat = np.concatenate([np.asarray(lists[i], dtype=np.int64) for i in listed])
        ids = index.people["person_id"].iloc[flat].to_numpy()
        ends = np.cumsum([len(lists[i]) for i in listed])
        for i, part in zip(listed, np.split(ids, ends[:-1]), strict=True):
            cands[i] = list(part)
    out = pd.DataFrame({
        "source_file": raw["source_file"].astype("string[pyarrow]"),
        "source_row": raw["source_row"].astype("int64"),
        "province_code": province,
        "status": status,
        "person_id": values["person_id"],
        "candidate_ids": cands,
        "match_score": rows["match_score"].astype("float64").where(status != "rejected", 0.0),
        "match_reason": rows["match_reason"].astype("string[pyarrow]"),
        "full_name": values["full_name"], "date_of_birth": values["date_of_birth"],
        "birth_year": values["birth_year"], "sex": values["sex"], "id_number": values["id_number"],
        "original_full_name": raw["full_name"], "original_date_of_birth": raw["date_of_birth"],
        "original_sex": raw["sex"], "original_id_number": raw["id_number"],
        "dose_date": rows["dose_date"], "dose_number": rows["dose_number"].astype("Int16"),
        "vaccine": rows["vaccine"], "original_vaccine": raw["vaccine"],
        "lot_number": raw["lot_number"], "site": raw["site"], "phone": rows["phone"],
        "id_kind": rows["id_kind"], "name_encoding": rows["name_encoding"], "case_key": rows["case_key"],
    }, index=rows.index)
    out["identity"] = identity_keys(rows, values["person_id"])
    out.attrs["person_codes"] = code_lists(flags, len(out))
    return out


CORRECTED_SCHEMA = pa.schema([
    ("source_file", pa.string()), ("source_row", pa.int64()), ("province_code", pa.string()),
    ("status", pa.string()), ("person_id", pa.string()), ("candidate_ids", pa.list_(pa.string())),
    ("match_score", pa.float64()), ("match_reason", pa.string()), ("error_codes", pa.list_(pa.string())),
    ("full_name", pa.string()), ("date_of_birth", pa.date32()), ("birth_year", pa.int16()),
    ("sex", pa.string()), ("id_number", pa.string()),
    ("original_full_name", pa.string()), ("original_date_of_birth", pa.string()),
    ("original_sex", pa.string()), ("original_id_number", pa.string()),
    ("dose_date", pa.date32()), ("dose_number", pa.int16()), ("vaccine", pa.string()),
    ("original_vaccine", pa.string()), ("lot_number", pa.string()), ("site", pa.string()),
    ("phone", pa.string()), ("id_kind", pa.string()), ("name_encoding", pa.string()), ("case_key", pa.string()),
])


def to_arrow(frame: pd.DataFrame | pa.Table, error_codes: pa.ListArray) -> pa.Table:
    """The corrected table in the contract's Arrow types, sorted by source_file, source_row.

    Columns are cast by Arrow (timestamps to dates, large strings to strings), not through Python objects.
    """
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    arrays = []
    for field in CORRECTED_SCHEMA:
        if field.name == "error_codes":
            arrays.append(error_codes)
            continue
        col = table.column(field.name)
        if pa.types.is_date32(field.type) and pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp(col.type.unit))   # drop a time zone before taking the date
        arrays.append(col.cast(field.type) if col.type != field.type else col)
    out = pa.Table.from_arrays(arrays, schema=CORRECTED_SCHEMA)
    return out.sort_by([("source_file", "ascending"), ("source_row", "ascending")])


def named_persons(decisions: dict[str, Decision]) -> pd.Series:
    """The person IDs that reviewers' decisions name."""
    return pd.Series([d.decision for d in decisions.values() if d.decision != "none"], dtype="string[pyarrow]")
