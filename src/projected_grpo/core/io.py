"""The one place that writes files: atomically (temp file in the same folder, then rename),
so a killed job never leaves a half-written artifact behind; and reads parquet with an
error that names the file."""

from __future__ import annotations

import json
import os
import shutil
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


@contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary folder beside ``path``; it replaces ``path`` only on success (a
    model folder is complete or absent)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


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


class InputFileError(ValueError):
    """An input file that is missing or not what it should be."""


def read_parquet(path: str | Path, what: str = "parquet file"):
    """``pd.read_parquet(path)``, or ``InputFileError`` naming the file and ``what`` it
    should be when it is missing or unreadable (truncated, not parquet)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file (expected a {what})")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise InputFileError(f"{path}: not a readable parquet file (expected a {what}; {exc})") from exc
