"""Link accuracy on exports made by a second generator, written apart from `pipeline.synth`.

    python -m bench.independent [--rows 20000] [--seed 1] [--legacy]

`bench.accuracy` measures the tool on data from our own generator, whose damage the code was
written against. This one draws registry people from the same cached 300,000-person registry
but writes their doses with a damage mix of its own, applied independently per row and field:

- names: no diacritics, upper case, a typo (a letter dropped, inserted or two swapped), the given
  name first, the middle names left out, NFD, extra spaces; with `--legacy` also family and middle
  names run together, a doubled letter, Ð for Đ, and TCVN3 / VNI legacy fonts;
- dates of birth: missing, year only, day and month swapped, a day off, a year off, five formats;
- IDs: missing, the old CMND number, a mistyped digit, lost leading zeros, placeholders, spaces;
- sex flipped; 8% of rows are people absent from the registry;
- files: XLSX with title lines (with `--legacy`, IDs as numbers and dates as date cells), UTF-8
  CSV with BOM, Windows-1258 CSV with semicolons.

It prints link precision, recall and review rate, then recall by damage for every row that
carries it and for rows that carry it alone.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import random
import tempfile
import time
import unicodedata
from pathlib import Path

import openpyxl
import pandas as pd

from bench.common import dataset
from flows.nightly import nightly_reconciliation
from pipeline.normalize.encodings import encode_legacy
from pipeline.text import strip_marks

HEADER = ["STT", "Họ và tên", "Ngày sinh", "Giới tính", "Số CMND/CCCD", "Ngày tiêm", "Mũi tiêm", "Tên vắc xin"]
PROVINCES = ("01", "79", "48", "66", "92")
SEX_TEXT = {"M": ["Nam", "nam", "NAM", "M", "Male"], "F": ["Nữ", "nữ", "Nu", "F", "NỮ"]}
VACCINES = ["AstraZeneca", "Astra Zeneca", "Pfizer", "Vero Cell", "Moderna", "Sputnik V", "AZ", "Comirnaty"]


def windows_1258(text: str) -> bytes:
    """Text as Windows-1258 bytes: letters it lacks precomposed are written base + tone mark."""
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", ch)
            tones = "".join(c for c in decomposed if c in "\u0300\u0301\u0303\u0309\u0323")
            base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in tones))
            out += (base + tones).encode("cp1258")   # UnicodeEncodeError: the file is written as UTF-8
    return bytes(out)


class Damage:
    """One row's damage, drawn from its own random stream."""

    def __init__(self, rng: random.Random, legacy: bool):
        self.rng, self.legacy, self.tags = rng, legacy, []

    def name(self, name: str) -> str:
        rng, words, r = self.rng, name.split(), self.rng.random()
        if r < 0.25:
            return self._tag("nodiac", strip_marks(name).replace("đ", "d").replace("Đ", "D"))
        if r < 0.32:
            return self._tag("upper", name.upper())
        if r < 0.37:
            i = rng.randrange(len(words))
            w = words[i]
            if len(w) >= 3:
                j, kind = rng.randrange(1, len(w) - 1), rng.random()
                w = (w[:j] + w[j + 1:] if kind < 0.4 else w[:j] + rng.choice("nhmtcglr") + w[j:] if kind < 0.7
                     else w[:j - 1] + w[j] + w[j - 1] + w[j + 1:])
                words[i] = w
                return self._tag("typo", " ".join(words))
            return name
        if r < 0.41:
            return self._tag("given_first", " ".join(words[-1:] + words[:-1]))
        if r < 0.44 and len(words) > 2:
            return self._tag("middle_left_out", f"{words[0]} {words[-1]}")
        if r < 0.50:
            return self._tag("nfd", unicodedata.normalize("NFD", name))
        if r < 0.53:
            return self._tag("spaces", "  " + name.lower().replace(" ", "   ") + " ")
        if self.legacy:
            if r < 0.58 and len(words) > 2:
                return self._tag("joined", " ".join([words[0] + words[1].lower(), *words[2:]]))
            if r < 0.62:
                i = rng.randrange(len(words))
                j = rng.randrange(len(words[i]))
                words[i] = words[i][:j] + words[i][j] + words[i][j:]
                return self._tag("doubled", " ".join(words))
            if r < 0.66 and "Đ" in name:
                return self._tag("eth", name.replace("Đ", "Ð"))
            if r < 0.74:
                font = "tcvn3" if rng.random() < 0.5 else "vni"
                return self._tag(font, encode_legacy(name, font))
        return name

    def dob(self, dob: dt.date | None, year: int) -> str:
        rng, r = self.rng, self.rng.random()
        if dob is None:
            return self._tag("registry_year_only", str(year))
        if r < 0.05:
            return self._tag("no_dob", "")
        if r < 0.10:
            return self._tag("year_only", str(dob.year))
        if r < 0.14 and dob.day <= 12 and dob.day != dob.month:
            return self._tag("day_month_swapped", f"{dob.month:02d}/{dob.day:02d}/{dob.year}")
        if r < 0.17:
            return self._tag("day_off", (dob + dt.timedelta(days=rng.choice([-1, 1]))).strftime("%d/%m/%Y"))
        if r < 0.20:
            return self._tag("year_off", f"{dob.day:02d}/{dob.month:02d}/{dob.year + rng.choice([-1, 1])}")
        fmt = rng.choice(["%d/%m/%Y", "%d-%m-%Y", "%Y-%m-%d", "{d}/{m}/%Y", "%d/%m/%y"])
        return dob.strftime(fmt.format(d=dob.day, m=dob.month))

    def id(self, pid: str, old: str | None) -> str:
        rng, r = self.rng, self.rng.random()
        if r < 0.08:
            return self._tag("no_id", "")
        if r < 0.14 and old:
            return self._tag("old_id", old)
        if r < 0.18:
            j = rng.randrange(6, 12)
            return self._tag("id_typo", pid[:j] + str((int(pid[j]) + rng.randint(1, 9)) % 10) + pid[j + 1:])
        if r < 0.21:
            return self._tag("lost_zeros", pid.lstrip("0"))
        if r < 0.23:
            return self._tag("placeholder", rng.choice(["000000000000", "111111111111", "123456789"]))
        if r < 0.25:
            return self._tag("id_spaces", f"{pid[:3]} {pid[3:6]} {pid[6:]}")
        return pid

    def sex(self, sex: str) -> str:
        if self.rng.random() < 0.02:
            sex = {"M": "F", "F": "M"}[sex]
            self.tags.append("sex_flipped")
        return self.rng.choice(SEX_TEXT[sex])

    def _tag(self, tag: str, value: str) -> str:
        self.tags.append(tag)
        return value


def make_exports(registry: pd.DataFrame, out: Path, rows: int, seed: int, legacy: bool) -> pd.DataFrame:
    """Write out/exports/<PP>/site_<k>.(xlsx|csv) and return the truth per (source_file, source_row)."""
    rng = random.Random(seed)
    picked = registry.sample(n=rows, random_state=seed, replace=True).reset_index(drop=True)
    known = set(zip(registry["full_name"], registry["date_of_birth"], strict=True))
    registry_ids = set(registry["person_id"])
    words = registry["full_name"].str.split()
    families, givens = words.str[0].tolist(), words.str[-1].tolist()
    middles = [m for m in words.str[1:-1].str.join(" ").tolist() if m]
    records, truth = [], []
    for person in picked.itertuples(index=False):
        row_rng = random.Random(rng.getrandbits(64))
        damage = Damage(row_rng, legacy)
        if row_rng.random() < 0.08:   # someone the registry does not hold
            name = f"{row_rng.choice(families)} {row_rng.choice(middles)} {row_rng.choice(givens)}"
            dob = dt.date(row_rng.randint(1940, 2010), row_rng.randint(1, 12), row_rng.randint(1, 28))
            sex = row_rng.choice("MF")
            pid = f"0{row_rng.choice(PROVINCES)}{row_rng.randint(0, 3)}{dob.year % 100:02d}{row_rng.randint(0, 999_999):06d}"
            if (name, dob) in known or pid in registry_ids:
                continue
            old, true_id, year = None, None, dob.year
            province = row_rng.choice(PROVINCES)
            damage.tags.append("absent")
        else:
            name, sex, pid, true_id, year = person.full_name, person.sex, person.person_id, person.person_id, person.birth_year
            dob = person.date_of_birth if pd.notna(person.date_of_birth) else None
            old = person.old_id if isinstance(person.old_id, str) else None
            province = person.province_code if person.province_code in PROVINCES else "79"
        dose = dt.date(2021, 7, 1) + dt.timedelta(days=row_rng.randint(0, 300))
        records.append((province, [damage.name(name), damage.dob(dob, year), damage.sex(sex), damage.id(pid, old),
                                   dose.strftime("%d/%m/%Y"), str(row_rng.randint(1, 3)), row_rng.choice(VACCINES)]))
        truth.append((true_id, ",".join(damage.tags)))
    placed = []
    for province in PROVINCES:
        mine = [k for k, (p, _) in enumerate(records) if p == province]
        thirds = [mine[: len(mine) // 3], mine[len(mine) // 3: 2 * len(mine) // 3], mine[2 * len(mine) // 3:]]
        folder = out / "exports" / province
        folder.mkdir(parents=True, exist_ok=True)
        for j, part in enumerate(thirds):
            cells = [records[k][1] for k in part]
            if j == 0:
                name, first = f"{province}/site_0.xlsx", _write_xlsx(folder / "site_0.xlsx", cells, rng, legacy)
            else:
                name, first = f"{province}/site_{j}.csv", 2
                _write_csv(folder / f"site_{j}.csv", cells, cp1258=j == 2)
            placed += [(name, first + i, k) for i, k in enumerate(part)]
    frame = pd.DataFrame(placed, columns=["source_file", "source_row", "k"])
    frame["true_person_id"] = [truth[k][0] for k in frame["k"]]
    frame["tags"] = [truth[k][1] for k in frame["k"]]
    return frame.drop(columns="k")


def _write_xlsx(path: Path, cells: list[list[str]], rng: random.Random, legacy: bool) -> int:
    """A workbook with two title lines; returns the row number of the first data row."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["DANH SÁCH TIÊM CHỦNG VẮC XIN COVID-19"])
    sheet.append([])
    sheet.append(HEADER)
    for i, row in enumerate(cells):
        values: list[object] = list(row)
        if legacy:   # what spreadsheets do to numbers and dates typed into them
            if row[3].isdigit() and rng.random() < 0.5:
                values[3] = int(row[3])
            for col in (1, 4):
                try:
                    if rng.random() < 0.5:
                        values[col] = dt.datetime.strptime(row[col], "%d/%m/%Y")
                except ValueError:
                    pass
        sheet.append([i + 1, *values])
    book.save(path)
    return 4


def _write_csv(path: Path, cells: list[list[str]], cp1258: bool) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";" if cp1258 else ",")
    writer.writerow(HEADER)
    for i, row in enumerate(cells):
        writer.writerow([i + 1, *row])
    try:
        data = windows_1258(buf.getvalue()) if cp1258 else buf.getvalue().encode("utf-8-sig")
    except UnicodeEncodeError:   # legacy-font look-alikes that Windows-1258 cannot hold
        data = buf.getvalue().encode("utf-8-sig")
    path.write_bytes(data)


def score(truth: pd.DataFrame, out: Path) -> None:
    corrected = pd.concat([pd.read_parquet(p) for p in sorted((out / "corrected").glob("*.parquet"))])
    m = truth.merge(corrected[["source_file", "source_row", "status", "person_id"]],
                    on=["source_file", "source_row"], how="left", validate="one_to_one")
    assert len(corrected) == len(truth) and m["status"].notna().all(), "every row once in the output"
    linked = m["person_id"].notna()
    right = linked & (m["person_id"] == m["true_person_id"]).fillna(False)
    held = m["true_person_id"].notna()
    print(f"rows {len(m):,}  linked {int(linked.sum()):,}  wrong links {int((linked & ~right).sum())}  "
          f"precision {right.sum() / max(linked.sum(), 1):.5f}  recall {right.sum() / held.sum():.5f}  "
          f"review rate {(m['status'] == 'review').mean():.4f}")
    m["right"], m["review"] = right, m["status"] == "review"
    m["tag"] = m["tags"].str.split(",")
    per = m.explode("tag")
    per = per[per["tag"].fillna("") != ""]
    alone = m[~m["tags"].str.contains(",") & (m["tags"] != "")]
    table = pd.DataFrame({
        "rows": per.groupby("tag").size(),
        "recall": per[per["true_person_id"].notna()].groupby("tag")["right"].mean(),
        "wrong": per.assign(w=per["person_id"].notna() & ~per["right"]).groupby("tag")["w"].sum(),
        "alone": alone.groupby("tags").size(),
        "recall alone": alone[alone["true_person_id"].notna()].groupby("tags")["right"].mean(),
    }).fillna({"alone": 0})
    clean = m[m["tags"] == ""]
    print(f"undamaged rows: {len(clean):,}, recall {clean['right'].mean():.5f}")
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000, help="dose rows to write (default 20,000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--legacy", action="store_true", help="add legacy fonts, run-together names, spreadsheet cells")
    ap.add_argument("--keep", type=Path, help="write exports, truth and outputs here (kept) instead of a temporary folder")
    args = ap.parse_args()
    data = dataset(300_000, 150_000, seed=1)
    registry = pd.read_parquet(data / "registry.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        t = time.perf_counter()
        truth = make_exports(registry, work, args.rows, args.seed, args.legacy)
        truth.to_parquet(work / "truth.parquet")
        print(f"exports: {len(truth):,} rows in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        nightly_reconciliation(data / "registry.parquet", work / "exports", work / "out", run_date=dt.date(2026, 11, 26))
        print(f"vaxrecon run: {time.perf_counter() - t:.1f} s")
        score(truth, work / "out")


if __name__ == "__main__":
    main()
