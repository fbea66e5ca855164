"""Where the project keeps its files."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Where prepared models and fixtures live: inside the project, never a shared /tmp."""
    return Path(os.environ.get("DISTILLSERVE_CACHE_DIR", REPO_ROOT / ".cache")).resolve()
