"""What produced a result: the configuration, package versions and git revision."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "projected-grpo",
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "pandas",
    "pyarrow",
    "numpy",
)


def git_revision(repo: str | Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository holding this code."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo, capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def manifest(config: dict) -> dict:
    """The record written beside every result."""
    return {"config": config, "versions": package_versions(), "git": git_revision()}
