"""The one atomic file write: a uniquely named temporary file in the same folder, then one os.replace.

Readers never see half a file, and concurrent writers of the same path never share a temporary name
(pid + uuid), so the last complete write wins instead of two writers corrupting one temporary file.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` to write to; it replaces `path` when the block completes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The suffix is kept: some writers (numpy, pandas, PyAV) choose the format from it.
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: str | bytes, fsync: bool = False) -> Path:
    """Write text (UTF-8) or bytes to `path` atomically; `fsync` also flushes it to disk before the rename
    (the embedding store asks for that: a power cut must not leave a renamed but empty shard)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
    return Path(path)
