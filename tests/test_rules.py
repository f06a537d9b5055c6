from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.rules import ALL_CODES, STATUSES, RulesError, load_rules

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_rules_load(rules):
    assert len(rules.provinces) == 63
    assert rules.provinces["79"] == "TP Hồ Chí Minh"
    assert len(rules.legacy_charsets) == 134
    assert set(rules.labels_codes) >= set(ALL_CODES)
    assert set(rules.labels_statuses) >= set(STATUSES)
    assert rules.vaccine_aliases["astrazeneca"] == "AstraZeneca"
    assert rules.header_aliases["hovaten"] == "full_name"


def test_bad_rules_report_every_problem_at_once(tmp_path):
    bad = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", bad)
    (bad / "vaccines.yaml").write_text("vaccines:\n  X:\n    aliases: [X]\n", encoding="utf-8")
    (bad / "provinces.csv").write_text("code,name\n7,Bad\n", encoding="utf-8")
    text = (bad / "matching.yaml").read_text(encoding="utf-8").replace("link_threshold: 0.99", "link_threshold: 0.1")
    (bad / "matching.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as err:
        load_rules(bad)
    problems = err.value.problems
    assert any("vaccines.yaml: X" in p for p in problems)
    assert any("provinces.csv: bad code '7'" in p for p in problems)
    assert any("review_threshold < link_threshold" in p for p in problems)
    assert len(problems) >= 3
