"""Pool the evidence of one person's rows: the same name, birth date and place (or phone).

A dose row that lost its ID is decided with the rows of the same person
that kept it: an undecided export person adopts the link of another export
person with the same normalised name and full date of birth who also shares
the place (district and ward) or the phone, provided nothing conflicts: no
other ID, no other sex, and only one registry person linked in that group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.link.index import RegistryIndex
from pipeline.link.profiles import combined_codes

ADOPTED = "cùng người với các dòng khác đã khớp (cùng họ tên, ngày sinh và {what})"


def pool_export_persons(profiles: pd.DataFrame, decisions: pd.DataFrame, index: RegistryIndex) -> pd.DataFrame:
    """Decisions with undecided export persons linked through their other rows (see module doc)."""
    out = decisions.copy()
    for column, what in (("place_fold", "nơi ở"), ("phone", "số điện thoại")):
        parts = ["name_key", "dob", column]
        complete = profiles[parts].notna().all(axis=1).to_numpy()
        key = np.where(complete, combined_codes(profiles, parts), -1)
        frame = pd.DataFrame({
            "key": key,
            "status": out["status"], "row": out["best_row"], "kind": profiles["id_kind"],
            "id": profiles["id_number"], "sex": profiles["sex"], "score": out["match_score"]}, index=profiles.index)
        frame = frame[frame["key"] >= 0]
        linked = frame[frame["status"] == "linked"]
        targets = linked.groupby("key")["row"].agg(["nunique", "first"])
        targets = targets[targets["nunique"] == 1]["first"]
        score = linked.groupby("key")["score"].max()
        todo = frame[(frame["status"] != "linked") & frame["key"].isin(targets.index)]
        if todo.empty:
            continue
        row = targets.reindex(todo["key"]).to_numpy().astype(np.int64)
        person = index.people.iloc[row]
        ids = todo["id"].reset_index(drop=True)
        own_id = todo["kind"].isin(["personal", "old"]).to_numpy()
        same_id = ((ids == person["person_id"].reset_index(drop=True)).fillna(False)
                   | (ids == person["old_id"].reset_index(drop=True)).fillna(False)).to_numpy(dtype=bool)
        sex = todo["sex"].reset_index(drop=True)
        sex_ok = (sex.isna() | (sex == person["sex"].reset_index(drop=True)).fillna(False)).to_numpy(dtype=bool)
        ok = (~own_id | same_id) & sex_ok
        idx = todo.index[ok]
        out.loc[idx, "status"] = "linked"
        out.loc[idx, "best_row"] = row[ok]
        out.loc[idx, "match_score"] = score.reindex(todo.loc[idx, "key"]).to_numpy()
        out.loc[idx, "reason"] = ADOPTED.format(what=what)
        out.loc[idx, "candidate_rows"] = None
    return out
