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
