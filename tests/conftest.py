"""Test-wide settings: offline, caches inside the repo's ignored .cache folder."""

from __future__ import annotations

import os
from pathlib import Path

_CACHE = Path(__file__).resolve().parents[1] / ".cache"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(_CACHE / "hf"))
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(_CACHE / "torchinductor"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_CACHE / "tiktoken"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
