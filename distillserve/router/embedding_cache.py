"""An LRU cache of prompt embeddings: the same prompt (a retried request, a popular system
prompt with the same question, an eval replay) is embedded once.

Keyed by the embedded text itself (the prompt cut to what the embedder reads), so two prompts
that differ only past the cut share an entry; the length feature is computed per request.
Touched from the event loop only (the batcher's thread never sees it), so it needs no lock.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class EmbeddingCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        row = self._rows.get(key)
        if row is None:
            self.misses += 1
            return None
        self._rows.move_to_end(key)
        self.hits += 1
        return row

    def put(self, key: str, row: np.ndarray) -> None:
        if self.max_entries <= 0:
            return
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)

    def clear(self) -> None:
        """Forget every entry (the embedding model changed)."""
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)
