"""The one place that writes files: atomically (temp file in the same folder, then rename),
so a killed job never leaves a half-written artifact behind."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; give the result the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_jsonl(rows: list[dict], path: str | Path) -> None:
    atomic_write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), path)


def atomic_write_parquet(rows_or_frame, path: str | Path) -> None:
    """Write a list of dicts or a pandas DataFrame as parquet (no index column)."""
    import pandas as pd

    frame = rows_or_frame if isinstance(rows_or_frame, pd.DataFrame) else pd.DataFrame(rows_or_frame)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
