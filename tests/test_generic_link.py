"""The generic linker: configured by a rules file, no schema of its own."""

from __future__ import annotations

import pandas as pd

from pipeline.link.generic import link_tables

SPEC = {
    "id_column": "id",
    "blocking": [{"keys": ["city"], "max_block": 50}, {"keys": ["birth"], "max_block": 50}],
    "comparisons": {"name": {"type": "string", "thresholds": [85], "tf": True},
                    "birth": {"type": "string", "thresholds": []}, "city": {"type": "string", "thresholds": []}},
    "em_iterations": 10, "absent_share": 0.01, "link_threshold": 0.9, "one_to_one": True,
}


def test_links_typos_and_leaves_strangers_alone():
    names = [f"person{i:03d} name" for i in range(200)]
    births = [f"19{50 + i % 40}{1 + i % 12:02d}{1 + i % 28:02d}" for i in range(200)]
    cities = [f"city{i % 20}" for i in range(200)]
    right = pd.DataFrame({"id": [f"r{i}" for i in range(200)], "name": names, "birth": births, "city": cities})
    left = right.copy()
    left["id"] = [f"l{i}" for i in range(200)]
    left.loc[5, "name"] = "persn005 name"           # a typo: still the same person
    left.loc[7, "birth"] = "18000101"               # a wrong date: name and city still agree
    left.loc[199] = ["l199", "someone else", "20010101", "city99"]   # nobody in `right`
    out = link_tables(left, right, SPEC).set_index("left_id")
    linked = out[out["linked"]]
    assert linked.loc["l5", "right_id"] == "r5"
    assert "l7" not in linked.index or linked.loc["l7", "right_id"] == "r7"  # never someone else
    assert "l199" not in linked.index
    assert len(linked) >= 198
    assert (linked["right_id"].str[1:] == linked.index.str[1:]).all()
