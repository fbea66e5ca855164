"""One vLLM server: its OpenAI-compatible API plus its runtime LoRA API.

- ``POST /v1/load_lora_adapter {"lora_name", "lora_path", "load_inplace"}`` answers 200 with a
  *plain-text* body; refusals come back as JSON errors: 400 (name already loaded), 404 (no
  adapter at that path), 500 (rank above ``--max-lora-rank``, shapes of another base, a
  corrupt file; the engine keeps running). All become ``AdapterError`` with vLLM's reason.
- ``POST /v1/unload_lora_adapter {"lora_name"}``: requests already running on it finish.
- ``GET /v1/models`` lists the base (``parent: null``, ``root`` = the ``--model`` path) and
  every loaded adapter (``parent`` = the base, ``root`` = its path).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import aiohttp
import orjson

from distillserve.backends.openai_http import OpenAIHTTPBackend
from distillserve.protocol.errors import AdapterError, APIError
from distillserve.protocol.schema import ChatCompletionRequest, ChatMessage

log = logging.getLogger(__name__)

_PROBE = ChatCompletionRequest(
    model="probe", messages=[ChatMessage(role="user", content="copy: ok")], max_tokens=1, temperature=0.0
)


class VLLMReplica(OpenAIHTTPBackend):
    kind = "vllm"

    async def _lora_call(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        try:
            async with self.session.post(self.base_url + path, data=orjson.dumps(body)) as r:
                return r.status, (await r.read()).decode(errors="replace")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._failure(exc) from exc

    @staticmethod
    def _reason(text: str) -> str:
        try:
            err = orjson.loads(text)
            msg = err.get("error", err).get("message") if isinstance(err, dict) else None
            if isinstance(msg, str):
                return msg
        except (orjson.JSONDecodeError, AttributeError):
            pass
        return text.strip()[:1000]

    async def ensure_adapter(self, name: str, path: str) -> bool:
        """Load ``name`` unless this server holds it already; True when this call loaded it.
        Version names are unique (the registry never reuses one), so a held name is the same
        version: another gateway loaded it first."""
        if name in await self.list_adapters():
            return False
        # vLLM resolves the path in its own working directory: send it absolute.
        body = {"lora_name": name, "lora_path": os.path.abspath(path), "load_inplace": False}
        status, text = await self._lora_call("/load_lora_adapter", body)
        if status == 400 and name in await self.list_adapters():
            return False  # another gateway won the race to load it
        if status != 200:
            raise AdapterError(
                f"vLLM refused adapter {name!r} from {path} on {self.base_url} (HTTP {status}): "
                f"{self._reason(text)}"
            )
        log.info("vLLM at %s loaded adapter %s from %s", self.base_url, name, path)
        return True

    async def probe(self, name: str) -> None:
        """One token from ``name`` on this very server; ``AdapterError`` if it does not answer."""
        try:
            await self.chat(_PROBE, model=name)
        except APIError as exc:
            raise AdapterError(
                f"adapter {name!r} loaded on {self.base_url} but does not answer: {exc.message}"
            ) from exc

    async def unload_adapter(self, name: str) -> None:
        status, text = await self._lora_call("/unload_lora_adapter", {"lora_name": name})
        if status == 404:
            log.info("vLLM at %s did not hold adapter %s; nothing to unload", self.base_url, name)
        elif status != 200:
            raise AdapterError(
                f"vLLM could not unload adapter {name!r} on {self.base_url} (HTTP {status}): "
                f"{self._reason(text)}"
            )

    async def adapter_paths(self) -> dict[str, str]:
        """Loaded adapters: name -> path, from ``/v1/models``."""
        return {m["id"]: str(m.get("root") or "") for m in await self.list_models() if m.get("parent")}

    async def list_adapters(self) -> list[str]:
        return list(await self.adapter_paths())

    async def served_base(self) -> str | None:
        """The base model vLLM serves (its ``--model`` path or hub id)."""
        for m in await self.list_models():
            if not m.get("parent"):
                return str(m.get("root") or m["id"])
        return None
