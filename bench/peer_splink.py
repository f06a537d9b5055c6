"""Splink 5 (DuckDB) on the same rows: run by bench/peers.py in a separate environment.

    <peers-venv>/bin/python bench/peer_splink.py PREPARED_DIR

Reads PREPARED_DIR/exports.parquet and registry.parquet (cleanly decoded rows
written by bench/peers.py), links with the settings Splink's documentation
recommends for a link-only job (blocking on ID and on name + date of birth;
name with term-frequency adjustment, date of birth, ID, sex; u by random
sampling, m by EM), and writes PREPARED_DIR/splink_links.parquet (best registry
person per export row at match probability >= 0.9) and splink.json (timings).
This file imports nothing from vaxrecon: Splink's environment has its own pandas.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    folder = Path(sys.argv[1])
    t0 = time.perf_counter()
    exports = pd.read_parquet(folder / "exports.parquet")
    registry = pd.read_parquet(folder / "registry.parquet")
    t_read = time.perf_counter()
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="uid",
        blocking_rules_to_generate_predictions=[block_on("person_id"), block_on("name_fold", "dob")],
        comparisons=[
            cl.NameComparison("name_fold").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.LevenshteinAtThresholds("person_id", [1, 2]),
            cl.ExactMatch("sex"),
        ],
    )
    db = DuckDBAPI()
    left = db.register(exports, table_name="exports")
    right = db.register(registry, table_name="registry")
    linker = Linker([left, right], settings)
    linker.training.estimate_probability_two_random_records_match([block_on("person_id")], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name_fold", "dob"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("person_id"))
    t_train = time.perf_counter()
    pred = linker.inference.predict(threshold_match_probability=0.9).as_pandas_dataframe()
    t_pred = time.perf_counter()
    left_uid, right_uid = "uid_l", "uid_r"
    if "source_dataset_l" in pred.columns and len(pred) and pred["source_dataset_l"].iloc[0] != "exports":
        left_uid, right_uid = right_uid, left_uid
    pred = pred.sort_values("match_probability", ascending=False).drop_duplicates(left_uid)
    links = pd.DataFrame({"row": pred[left_uid].astype("int64"), "registry_row": pred[right_uid].astype("int64"),
                          "match_probability": pred["match_probability"]})
    links.to_parquet(folder / "splink_links.parquet")
    timings = {"read": t_read - t0, "train": t_train - t_read, "predict": t_pred - t_train, "total": t_pred - t0}
    (folder / "splink.json").write_text(json.dumps(timings), encoding="utf-8")


if __name__ == "__main__":
    main()
