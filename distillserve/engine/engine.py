"""The embedded engine: in-process transformers + peft with iteration-level batching.

One worker thread owns the model. Each iteration it admits waiting requests (up to
``max_batch_size`` running), prefills the newcomers together as one left-padded batch,
merges their KV cache into the running batch, then runs one decode step for every
running row, each row with its own adapter and sampling parameters. Finished and
cancelled requests leave the batch at once, so their slot is free on the next
iteration. Results travel to the asyncio side through each request's queue, one
cross-thread wake-up per event loop and step; the event loop never runs the model.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distillserve.engine.adapters import AdapterSet
from distillserve.engine.detokenizer import IncrementalDetokenizer
from distillserve.engine.kv_batch import BatchCache
from distillserve.engine.model_loading import LoadedModel, load_model
from distillserve.engine.sampling import SamplingParams, TokenChoice, choose_tokens, new_generator
from distillserve.monitoring import metrics
from distillserve.protocol.errors import AdapterError, BackendUnavailable, InvalidRequest, ModelNotFound

log = logging.getLogger(__name__)


@dataclass
class TokenEvent:
    """One generated token: the text it made safe to emit (may be empty) and its logprobs."""

    token_id: int
    text: str
    token: str  # the token's own text, for logprobs
    logprob: float | None
    top_logprobs: list[tuple[str, float]]
    finish_reason: str | None = None  # "stop" or "length" on the last event
    eos: bool = False  # the end-of-sequence token: not part of the answer's text or logprobs
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class _Request:
    prompt_ids: list[int]
    params: SamplingParams
    adapter: str | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[TokenEvent | BaseException]
    detok: IncrementalDetokenizer
    generator: torch.Generator
    max_new: int
    generated: int = 0
    pending: int = -1  # sampled token not yet in the KV cache
    cancelled: bool = False
    finished: bool = False
    length: int = 0  # tokens of this row in the KV cache
    out: list[int] = field(default_factory=list)

    def send(self, item: TokenEvent | BaseException) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the client's event loop is gone: nobody is listening
            self.cancelled = True


# Padded prompt tokens per prefill forward: batching newcomers saves a pass over the weights
# each, but a batch of long prompts would need [rows, heads, len, len] attention scores at once.
PREFILL_TOKEN_BUDGET = 8192


def _prefill_groups(reqs: list[_Request], budget: int = PREFILL_TOKEN_BUDGET) -> list[list[_Request]]:
    """Split ``reqs`` (in order) into prefill batches of at most ``budget`` padded tokens (at least one each)."""
    groups: list[list[_Request]] = []
    width = 0
    for req in reqs:
        n = len(req.prompt_ids)
        if groups and max(width, n) * (len(groups[-1]) + 1) <= budget:
            groups[-1].append(req)
            width = max(width, n)
        else:
            groups.append([req])
            width = n
    return groups


def _deliver(items: list[tuple[_Request, TokenEvent]]) -> None:
    for req, event in items:
        req.queue.put_nowait(event)


def _send_all(outbox: list[tuple[_Request, TokenEvent]]) -> None:
    """Hand one step's events to their event loops: one wake-up per loop, not one per token."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, TokenEvent]]] = {}
    for req, event in outbox:
        by_loop.setdefault(req.loop, []).append((req, event))
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, items)
        except RuntimeError:  # the client's event loop is gone: nobody is listening
            for req, _ in items:
                req.cancelled = True


class EmbeddedEngine:
    def __init__(
        self,
        model: str | Path,
        *,
        max_batch_size: int = 16,
        dtype: str = "auto",
        device: str = "auto",
        threads: int = 0,
    ) -> None:
        self.model_spec = str(model)
        self.threads = threads
        self.max_batch_size = max(1, max_batch_size)
        self._dtype = dtype
        self._device = device
        self.loaded: LoadedModel | None = None
        self.adapters: AdapterSet | None = None
        self._waiting: collections.deque[_Request] = collections.deque()
        self._running: list[_Request] = []
        self._batch = BatchCache()
        self._cv = threading.Condition()
        self._model_lock = threading.Lock()  # held around every forward pass and adapter change
        self._thread: threading.Thread | None = None
        self._stop = False
        self._unloading: set[str] = set()
        self._outbox: list[tuple[_Request, TokenEvent]] = []  # this step's events, sent together

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the model and start the worker (blocking: call it off the event loop)."""
        if self._thread is not None:
            return
        self.loaded = load_model(self.model_spec, dtype=self._dtype, device=self._device)
        self.adapters = AdapterSet(self.loaded.model)
        self._thread = threading.Thread(target=self._work, name="embedded-engine", daemon=True)
        self._thread.start()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for req in [*self._waiting, *self._running]:
            req.send(BackendUnavailable("the embedded engine shut down"))

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def tokenizer(self) -> Any:
        assert self.loaded is not None, "engine not started"
        return self.loaded.tokenizer

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    # -- requests ---------------------------------------------------------------------------

    async def generate(
        self, prompt_ids: list[int], params: SamplingParams, adapter: str | None = None
    ) -> AsyncIterator[TokenEvent]:
        """Tokens as they are generated; leaving the iteration early cancels the request."""
        loaded = self.loaded
        if loaded is None or not self.alive:
            raise BackendUnavailable("the embedded engine is not running")
        if adapter is not None and (self.adapters is None or adapter not in self.adapters.paths):
            raise ModelNotFound(f"adapter {adapter!r} is not loaded on this engine", param="model")
        if adapter is not None and adapter in self._unloading:
            raise ModelNotFound(f"adapter {adapter!r} is being unloaded", param="model")
        if not prompt_ids:
            raise InvalidRequest("the prompt is empty", param="prompt")
        room = loaded.max_context - len(prompt_ids)
        if room < 1:
            raise InvalidRequest(
                f"the prompt has {len(prompt_ids)} tokens; this model's context is {loaded.max_context}",
                param="messages",
                code="context_length_exceeded",
            )
        req = _Request(
            prompt_ids=list(prompt_ids),
            params=params,
            adapter=adapter,
            loop=asyncio.get_running_loop(),
            queue=asyncio.Queue(),
            detok=IncrementalDetokenizer(loaded.tokenizer, params.stop),
            generator=new_generator(params.seed),
            max_new=min(params.max_tokens, room),
        )
        with self._cv:
            self._waiting.append(req)
            self._cv.notify()
        try:
            while True:
                item = await req.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            if not req.finished:
                req.cancelled = True  # the worker drops it before its next step
                with self._cv:
                    self._cv.notify()

    def _requests(self) -> list[_Request]:
        with self._cv:  # the worker mutates both lists; copy them under its lock
            return [*self._waiting, *self._running]

    def in_use(self, adapter: str) -> int:
        return sum(1 for r in self._requests() if r.adapter == adapter and not r.finished)

    # -- adapters -----------------------------------------------------------------------------

    def load_adapter(self, name: str, path: str) -> None:
        """Load a PEFT LoRA adapter (blocking); ``AdapterError`` leaves the others untouched."""
        if self.adapters is None:
            raise BackendUnavailable("the embedded engine is not running")
        if name in self._unloading:
            raise AdapterError(f"adapter {name!r} is being unloaded; use a new name")
        with self._model_lock:
            self.adapters.load(name, path)
        log.info("loaded adapter %s from %s", name, path)

    async def unload_adapter(self, name: str, *, drain_timeout_s: float = 120.0) -> None:
        """Refuse new requests on ``name``, let running ones finish, then unload it."""
        if self.adapters is None or name not in self.adapters.paths:
            raise AdapterError(f"no adapter named {name!r} is loaded")
        self._unloading.add(name)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + drain_timeout_s
            while self.in_use(name) and loop.time() < deadline:
                await asyncio.sleep(0.01)
            for req in self._requests():
                if req.adapter == name and not req.finished:
                    req.cancelled = True
                    req.send(BackendUnavailable(f"adapter {name!r} was unloaded"))
            await asyncio.to_thread(self._unload_locked, name)
        finally:
            self._unloading.discard(name)
        log.info("unloaded adapter %s", name)

    def _unload_locked(self, name: str) -> None:
        assert self.adapters is not None
        with self._model_lock:
            self.adapters.unload(name)

    # -- worker ---------------------------------------------------------------------------------

    def _work(self) -> None:
        if self.threads > 0:
            # Before this thread's first torch op: each thread fixes its OpenMP team size then.
            torch.set_num_threads(self.threads)
        while True:
            with self._cv:
                while not self._stop and not self._waiting and not self._running:
                    self._cv.wait()
                if self._stop:
                    return
                admitted: list[_Request] = []
                while self._waiting and len(self._running) + len(admitted) < self.max_batch_size:
                    req = self._waiting.popleft()
                    if not req.cancelled:
                        admitted.append(req)
            metrics.ENGINE_WAITING.set(len(self._waiting))
            try:
                with self._model_lock, torch.inference_mode():
                    self._drop_done()
                    for group in _prefill_groups(admitted):
                        self._prefill(group)
                        self._flush()
                    self._drop_done()
                    if self._running:
                        self._decode_step()
                        self._flush()
                        self._drop_done()
            except Exception as exc:  # never let one bad step kill the worker
                log.exception("embedded engine step failed")
                self._flush()  # tokens already accepted (and finished requests' last events) go out first
                for req in [*admitted, *self._running]:
                    if not req.finished:
                        req.finished = True
                        req.send(BackendUnavailable(f"the embedded engine failed: {exc}"))
                self._outbox = []
                self._running = []
                self._batch = BatchCache()
            metrics.ENGINE_RUNNING.set(len(self._running))

    def _forward(self, input_ids: torch.Tensor, adapters: list[str | None], **kwargs: Any) -> Any:
        assert self.loaded is not None and self.adapters is not None
        with self.adapters.selecting(adapters) as extra:
            return self.adapters.model(
                input_ids=input_ids, use_cache=True, logits_to_keep=1, **kwargs, **extra
            )

    def _prefill(self, reqs: list[_Request]) -> None:
        """Prefill ``reqs`` in one forward pass, left-padded to the longest prompt, as ``generate`` does."""
        from transformers import DynamicCache

        assert self.loaded is not None
        device = self.loaded.device
        width = max(len(r.prompt_ids) for r in reqs)
        pad_id = self.loaded.tokenizer.pad_token_id or 0
        ids = torch.tensor(
            [[pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in reqs], device=device
        )
        mask = torch.tensor(
            [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in reqs], device=device
        )
        # Each row's positions start at 0 on its first real token; padding sits at 0 and is masked out.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self._forward(
            ids,
            [r.adapter for r in reqs],
            attention_mask=mask,
            position_ids=positions,
            past_key_values=DynamicCache(),
        )
        choices = choose_tokens(out.logits[:, -1, :], [r.params for r in reqs], [r.generator for r in reqs])
        self._running.extend(reqs)
        self._batch.add(out.past_key_values, mask)
        for req, choice in zip(reqs, choices, strict=True):
            req.length = len(req.prompt_ids)
            self._accept(req, choice)

    def _decode_step(self) -> None:
        assert self.loaded is not None and self.adapters is not None
        assert self._batch.cache is not None and self._batch.mask is not None
        device = self.loaded.device
        rows = self._running
        metrics.ENGINE_BATCH_ROWS.observe(len(rows))
        ids = torch.tensor([[r.pending] for r in rows], device=device)
        positions = torch.tensor([[r.length] for r in rows], device=device)
        self._batch.grow()
        out = self._forward(
            ids,
            [r.adapter for r in rows],
            attention_mask=self._batch.mask,
            position_ids=positions,
            past_key_values=self._batch.cache,
        )
        self._batch.cache = out.past_key_values
        choices = choose_tokens(out.logits[:, -1, :], [r.params for r in rows], [r.generator for r in rows])
        for req, choice in zip(rows, choices, strict=True):
            req.length += 1
            self._accept(req, choice)

    def _accept(self, req: _Request, choice: TokenChoice) -> None:
        """Record one sampled token for ``req``: emit its text, decide whether the request ends."""
        assert self.loaded is not None
        tok = self.loaded.tokenizer
        req.generated += 1
        metrics.ENGINE_GENERATED_TOKENS.inc()
        req.pending = choice.token_id
        finish: str | None = None
        eos = choice.token_id in self.loaded.eos_ids and not req.params.ignore_eos
        if eos:
            text, finish = req.detok.flush(), "stop"
        else:
            req.out.append(choice.token_id)
            text = req.detok.add(choice.token_id)
            if req.detok.stopped:
                finish = "stop"
            elif req.generated >= req.max_new:
                text += req.detok.flush()
                finish = "length"
        # The token's own text only serves logprobs: skip two decodes per token when none were asked.
        token_text = tok.decode([choice.token_id], skip_special_tokens=False) if req.params.logprobs else ""
        top = [(tok.decode([i], skip_special_tokens=False), lp) for i, lp in choice.top]
        if finish is not None:
            req.finished = True
        self._outbox.append(
            (
                req,
                TokenEvent(
                    token_id=choice.token_id,
                    text=text,
                    token=token_text,
                    logprob=choice.logprob,
                    top_logprobs=top,
                    finish_reason=finish,
                    eos=eos,
                    prompt_tokens=len(req.prompt_ids),
                    completion_tokens=req.generated,
                ),
            )
        )

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        _send_all(outbox)

    def _drop_done(self) -> None:
        keep = [i for i, r in enumerate(self._running) if not (r.finished or r.cancelled)]
        if len(keep) != len(self._running):
            self._running = [self._running[i] for i in keep]
            self._batch.keep(keep)


@contextlib.contextmanager
def running_engine(model: str | Path, **kwargs: Any) -> Any:
    """An engine started for the duration of a ``with`` block (tests, benchmarks)."""
    engine = EmbeddedEngine(model, **kwargs)
    engine.start()
    try:
        yield engine
    finally:
        engine.close()
