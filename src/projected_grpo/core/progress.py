"""A progress bar for long loops (sampling, grading) that stays silent in logs."""

import sys
from contextlib import contextmanager


@contextmanager
def progress_bar(total: int, desc: str):
    """A tqdm bar on a terminal; silent otherwise. Yields an ``update(n)`` callable."""
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, disable=not sys.stderr.isatty(), unit="grade") as bar:
        yield bar.update
