"""Which vLLM servers make up the student: a fixed list of URLs, or every address a
Kubernetes headless service resolves to (looked up again before each adapter operation, so
a replica scaled out later gets the live adapter at the gateway's next check)."""

from __future__ import annotations

import asyncio
import itertools
import socket
from urllib.parse import urlsplit, urlunsplit

from distillserve.backends.vllm_replica import VLLMReplica
from distillserve.config import VLLMBackendConfig
from distillserve.protocol.errors import BackendUnavailable


def _with_host(url: str, host: str) -> str:
    parts = urlsplit(url)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class VLLMReplicas:
    def __init__(self, cfg: VLLMBackendConfig) -> None:
        if not cfg.url and not cfg.replica_urls:
            raise ValueError(f"backend {cfg.name!r}: 'url' or 'replica_urls' is required for kind vllm")
        self.cfg = cfg
        self._by_url: dict[str, VLLMReplica] = {}
        self._turn = itertools.count()
        self._set([*cfg.replica_urls] or [str(cfg.url)])

    def _set(self, urls: list[str]) -> None:
        kept = {u: self._by_url.get(u) or VLLMReplica(self.cfg.model_copy(update={"url": u})) for u in urls}
        self._gone = [r for u, r in self._by_url.items() if u not in kept]
        self._by_url = kept

    @property
    def all(self) -> list[VLLMReplica]:
        return list(self._by_url.values())

    def next(self) -> VLLMReplica:
        """Round-robin: each request goes to the next replica."""
        replicas = self.all
        return replicas[next(self._turn) % len(replicas)]

    async def refresh(self) -> list[VLLMReplica]:
        """Re-resolve the headless service (when configured); returns the replicas now."""
        if self.cfg.resolve_replicas and self.cfg.url:
            parts = urlsplit(self.cfg.url)
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    parts.hostname, parts.port, type=socket.SOCK_STREAM
                )
            except OSError as exc:
                raise BackendUnavailable(f"{self.cfg.name}: cannot resolve {parts.hostname}: {exc}") from exc
            addresses = sorted({str(info[4][0]) for info in infos})
            self._set([_with_host(self.cfg.url, a) for a in addresses])
            for replica in self._gone:
                await replica.aclose()
        return self.all

    async def aclose(self) -> None:
        for replica in [*self.all, *self._gone]:
            await replica.aclose()
