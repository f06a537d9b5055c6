"""The registry side of linking, prepared once per registry version and kept on disk.

Everything linking needs from the registry (its index, the integer codes of
every comparison key, every blocking rule's sorted keys, the ID lookups and the
name lexicon) depends only on the registry's content, the rules and this code (and the
versions of Python, numpy, pandas and pyarrow, whose objects the file holds).
Building it for 10 million people takes over a minute; the registry changes far
less often than the exports are reconciled. So the prepared index is written
once, as a pickle named by a digest of those inputs, and the next run (or
a Dask worker) loads it in seconds. Any change to the registry file, a rules
file or the pipeline's source gives another digest, hence a fresh build; a
cache file that cannot be read is rebuilt, never trusted. Only the newest
prepared index is kept in the folder.

The cache folder is written by this pipeline only (it sits in the run's output
folder): a pickle is code, and is loaded from nowhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pickle
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

import pipeline
from pipeline.link.candidates import drop_codes, prepare_parts, prepare_rules
from pipeline.link.encoded import RegistryCodes, name_fold_text
from pipeline.link.index import RegistryIndex, load_index
from pipeline.memory import release
from pipeline.output import atomic_write, file_digest, tree_digest
from pipeline.rules import Rules

log = logging.getLogger(__name__)
PREFIX, SUFFIX = "registry-", ".pickle"
_writers: list[threading.Thread] = []


def source_digest() -> str:
    """A digest of the pipeline package's source: a code change invalidates prepared indexes."""
    root = Path(pipeline.__file__).parent
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def libraries() -> str:
    """The versions of Python and of the libraries whose objects (and hashes) prepared registries hold."""
    return f"{sys.version}|{np.__version__}|{pd.__version__}|{pa.__version__}"


def rules_digest(rules: Rules) -> str:
    """A digest of the names and contents of the rules' files."""
    return tree_digest(sorted(p for p in rules.source_dir.rglob("*") if p.is_file()), rules.source_dir)


def cache_key(registry_files: list[Path], rules: Rules) -> str:
    """Digest of the registry's content, the rules' files, the pipeline's source and the versions of
    Python and of the libraries whose objects the pickle holds."""
    h = hashlib.blake2b(digest_size=16)
    h.update(libraries().encode() + b"\n")
    for path in sorted(registry_files):
        h.update(file_digest(path).encode() + b"\n")
    h.update(rules_digest(rules).encode())
    h.update(source_digest().encode())
    return h.hexdigest()


def prepare(index: RegistryIndex, rules: Rules) -> RegistryIndex:
    """Build everything linking reads from the registry, then drop the columns only the build needed."""
    blocking = rules.matching["blocking"]
    RegistryCodes.of(index)
    index.lexicon(rules)
    # Every rule column as integer codes, then the text columns they came from dropped and their
    # memory returned, before the rules' keys are sorted (the build's largest step).
    prepare_parts(index, blocking)
    index.compact(blocking)
    release()
    prepare_rules(index, blocking)
    drop_codes(index)
    for column in ("person_id", "old_id"):
        index.id_lookup(column)
    for key in [k for k in index._lookups if isinstance(k, tuple) and k[0] == "digit_keys"]:
        del index._lookups[key]     # the codes and lookups hold them now
    return index


def _for_disk(index: RegistryIndex) -> RegistryIndex:
    """What is written: the lookups as they are, but the scoring codes without their copy of the
    folded names (a pickle would write them twice; `_from_disk` shares the frame's again)."""
    lookups = dict(index._lookups)
    lookups["codes"] = dataclasses.replace(lookups["codes"], name_fold=pa.chunked_array([], pa.string()))
    return RegistryIndex(index.people, index.tone_style, index.chance_agreement, lookups)


def _from_disk(index: RegistryIndex) -> RegistryIndex:
    index._lookups["codes"] = dataclasses.replace(index._lookups["codes"], name_fold=name_fold_text(index.people))
    return index


def prepared_index(registry: Path, registry_files: list[Path], rules: Rules, cache_dir: Path | None) -> RegistryIndex:
    """The prepared registry index: loaded from `cache_dir` when it holds this version, else built
    (and written there in a background thread, so the run goes on meanwhile)."""
    if cache_dir is None:
        return prepare(load_index(registry, rules), rules)
    t0 = time.perf_counter()
    path = cache_dir / f"{PREFIX}{cache_key(registry_files, rules)}{SUFFIX}"
    if path.exists():
        try:
            with open(path, "rb") as fh:
                index = pickle.load(fh)
            if not isinstance(index, RegistryIndex):
                raise TypeError(f"holds a {type(index).__name__}")
            index = _from_disk(index)
            log.info("registry index of %d people loaded from %s in %.1f s", index.size, path.name,
                     time.perf_counter() - t0)
            return index
        except Exception as exc:  # a damaged or foreign file: rebuild, never fail the run on the cache
            log.warning("prepared registry index %s unusable (%s): building it again", path, exc)
    index = prepare(load_index(registry, rules), rules)
    # A snapshot of the lookups: the run goes on using the index while the copy is written.
    writer = threading.Thread(target=_save, args=(_for_disk(index), path), name="save-registry-index")
    writer.start()
    _writers.append(writer)
    return index


def _save(index: RegistryIndex, path: Path) -> None:
    try:
        t0 = time.perf_counter()
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:       # streamed: large arrays go to the file without a copy
                pickle.dump(index, fh, protocol=5)

        atomic_write(path, write)
        for old in path.parent.glob(f"{PREFIX}*{SUFFIX}"):
            if old != path:
                old.unlink(missing_ok=True)
        log.info("registry index written to %s in %.1f s", path, time.perf_counter() - t0)
    except Exception as exc:  # a full disk costs the next run a rebuild, not this run
        log.warning("could not write the prepared registry index %s: %s", path, exc)


def wait_for_writes() -> None:
    """Let any prepared index still being written finish (before the process exits)."""
    while _writers:
        _writers.pop().join()
