"""Build a directory once across processes: file lock, build into a temporary sibling, atomic rename.

Concurrent callers (pytest workers, servers starting together) wait on the lock and
then find the finished directory; nobody ever sees a half-built one, and a build that
fails or is killed leaves nothing at the final path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock


def build_once(final: Path, build: Callable[[Path], Path]) -> Path:
    """``final``, creating it with ``build(tmp_dir)`` (which returns the built dir) if missing."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.is_dir():  # another process finished it while we waited
            return final
        tmp_parent = Path(tempfile.mkdtemp(prefix=f".{final.name}.building-", dir=final.parent))
        try:
            os.rename(build(tmp_parent / "model"), final)  # atomic on one filesystem
        finally:
            shutil.rmtree(tmp_parent, ignore_errors=True)
    return final
