"""Writers for the run's declared outputs; every file is written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet(table: pa.Table, path: Path) -> None:
    atomic_write(path, lambda p: pq.write_table(table, p, compression="zstd"))


def write_json(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False, default=str)
    atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))


def quarantine(src: Path, exports_root: Path, out: Path, reason: str) -> Path:
    """Copy an unreadable file to OUT/quarantine/<same relative path> with a `.reason.txt` beside it."""
    rel = src.relative_to(exports_root)
    dest = out / "quarantine" / rel
    atomic_write(dest, lambda p: shutil.copyfile(src, p))
    note = f"Tệp / file: {rel.as_posix()}\nLý do / reason: {reason}\n"
    atomic_write(dest.with_name(dest.name + ".reason.txt"), lambda p: p.write_text(note, encoding="utf-8"))
    return dest


def replace_dir(fresh: Path, target: Path) -> None:
    """Put the folder `fresh` in place of `target` (a reader sees the old or the new folder, never half of one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(fresh, target)
    shutil.rmtree(old, ignore_errors=True)


_digests: dict[tuple[str, int, int, int, int], str] = {}
MEMO_BYTES = 64 << 20


def file_digest(path: Path) -> str:
    """BLAKE2b of a file's content (hex).

    A file of 64 MiB or more is hashed once per process while its identity, size and modification
    time stay the same: a run needs the registry's digest twice (the run's inputs, the prepared
    index's name), and a 100-million registry takes seconds to hash. (Writing that much takes
    longer than the clock step of file times, so two versions of such a file do not share one.)"""
    import hashlib

    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    digest = _digests.get(key)
    if digest is None:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "blake2b").hexdigest()[:32]
        if st.st_size >= MEMO_BYTES:
            _digests[key] = digest
    return digest


def tree_digest(paths: list[Path], root: Path) -> str:
    """One digest over the names (relative to `root`) and contents of `paths`."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    for p in sorted(paths):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + file_digest(p).encode() + b"\n")
    return h.hexdigest()


def clean_leftovers(out: Path) -> int:
    """Remove what a killed run left half-written: temporary files and folders of the writers above."""
    if not out.exists():
        return 0
    stale = [p for p in out.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith((".pages-", ".dose-buckets-"))
             or (p.is_dir() and p.name.endswith(".old"))]
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink()
    return len(stale)
