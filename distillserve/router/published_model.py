"""One learned router for the whole fleet: its classifier lives in the adapter registry.

One gateway (``router.shared_model: publish``) fits the classifier on its traffic, as a lone
gateway does, and publishes it with the adapter version it was fitted to
(``<base>/router/<version>/<sha16>/classifier.npz`` + card, named by ``state.json``'s
``router_model``). Every gateway, the publisher included, follows the registry state the way
``RegistrySync`` does (``StateWatcher``: one HEAD/stat a poll, the body only when it changed)
and loads the classifier it names, checked by SHA-256. A gateway that starts loads it before
it serves, so it routes like the others instead of cold-starting.

Why a publisher chosen by config and not a lease in the registry: S3 has no compare-and-swap that
s3fs exposes, so a lease there is a race; a lease in Redis or Kubernetes would add a moving part
for a job that is not urgent (a classifier a minute late still routes well). One gateway with
``publish`` (a one-replica deployment beside the scaled one, or ordinal 0 of a StatefulSet) is
what RouteLLM-style offline training amounts to anyway. If it is down, the fleet keeps routing
with the last published classifier; nothing is lost but its freshness.
"""

from __future__ import annotations

import asyncio
import logging
import zipfile

from distillserve.adapters.registry import AdapterRegistry, RegistryError, RouterModelRef, StaleRouterModel
from distillserve.adapters.registry_factory import build_registry
from distillserve.adapters.registry_sync import StateWatcher
from distillserve.config import Settings
from distillserve.monitoring import metrics
from distillserve.router.difficulty_classifier import DifficultyClassifier
from distillserve.router.embedding_scorer import EmbeddingScorer
from distillserve.router.fleet_share import gateway_id
from distillserve.router.router import Router

log = logging.getLogger(__name__)

# What a classifier file that passed its checksum can still fail with (written by another version).
_UNREADABLE = (ValueError, KeyError, zipfile.BadZipFile)


class PublishedRouterModel:
    """Loads the classifier the registry names into ``scorer``; publishes the one it fitted when
    ``publishes``."""

    def __init__(self, watcher: StateWatcher, scorer: EmbeddingScorer, *, publishes: bool) -> None:
        self.watcher = watcher
        self.scorer = scorer
        self.publishes = publishes
        self.loaded: RouterModelRef | None = None  # what the scorer holds now (loaded or published)

    @property
    def registry(self) -> AdapterRegistry:
        return self.watcher.registry

    def adapter_name(self, ref: RouterModelRef) -> str | None:
        """The served adapter name ``ref`` was fitted to (None: the base student)."""
        return self.registry.adapter_name(ref.adapter_version) if ref.adapter_version else None

    # -- following --------------------------------------------------------------------------------
    async def follow(self) -> RouterModelRef | None:
        """Load the classifier the registry names if it changed; the newly loaded one, or None.
        Never raises: a registry that does not answer is retried at the next poll, a classifier
        that is corrupt or made for another embedding model is refused until the state changes."""
        try:
            state = await asyncio.to_thread(self.watcher.changed)
        except OSError as exc:
            metrics.ROUTER_MODEL_LOADS.labels(outcome="unreachable").inc()
            log.warning("router classifier: registry unreachable (%s); retrying", exc)
            return None
        ref = state.router_model if state is not None else None
        if ref is None or (self.loaded is not None and ref.sha256 == self.loaded.sha256):
            return None
        try:
            clf = await asyncio.to_thread(self._read, ref)
        except OSError as exc:
            metrics.ROUTER_MODEL_LOADS.labels(outcome="unreachable").inc()
            log.warning("router classifier %s not read (%s); retrying", ref.sha256[:12], exc)
            self.watcher.forget()
            return None
        except (RegistryError, *_UNREADABLE) as exc:
            metrics.ROUTER_MODEL_LOADS.labels(outcome="refused").inc()
            log.error("router classifier %s refused, routing keeps the one it has: %s", ref.sha256[:12], exc)
            return None
        self.scorer.set_classifier(clf)
        self.loaded = ref
        metrics.ROUTER_MODEL_LOADS.labels(outcome="loaded").inc()
        log.info(
            "router classifier %s loaded (fitted to %s by %s)",
            ref.sha256[:12],
            ref.adapter_version or "the base student",
            ref.by,
        )
        return ref

    def _read(self, ref: RouterModelRef) -> DifficultyClassifier:
        clf = DifficultyClassifier.from_bytes(self.registry.read_router_model(ref))
        mine, theirs = self.scorer.embedder.model_name, clf.card.get("embedding_model")
        if theirs != mine:  # other embeddings: its weights would score noise
            raise RegistryError(f"fitted on embedding model {theirs!r}, this gateway embeds with {mine!r}")
        return clf

    # -- publishing -------------------------------------------------------------------------------
    async def publish(self, adapter: str | None) -> RouterModelRef | None:
        """Publish the scorer's classifier, just fitted to the student serving ``adapter``."""
        clf = self.scorer.classifier
        if clf is None:
            return None
        try:
            ref = await asyncio.to_thread(self._publish, clf, adapter)
        except StaleRouterModel as exc:
            metrics.ROUTER_MODEL_PUBLISHES.labels(outcome="stale").inc()
            log.info("router classifier not published: %s", exc)
            return None
        except (OSError, RegistryError) as exc:  # the fleet keeps the last published one; next fit retries
            metrics.ROUTER_MODEL_PUBLISHES.labels(outcome="failed").inc()
            log.error("router classifier not published: %s", exc)
            return None
        self.loaded = ref
        metrics.ROUTER_MODEL_PUBLISHES.labels(outcome="published").inc()
        return ref

    def _publish(self, clf: DifficultyClassifier, adapter: str | None) -> RouterModelRef:
        reg = self.registry
        live = reg.state().live
        if adapter != (reg.adapter_name(live) if live else None):
            raise StaleRouterModel(
                f"fitted to {adapter or 'the base student'}, the registry's live is {live}"
            )
        return reg.publish_router_model(clf.to_bytes(), clf.card, adapter_version=live, by=gateway_id())


def shared_router_model(router: Router, settings: Settings) -> PublishedRouterModel | None:
    """The fleet's classifier follower (and publisher) for ``router.shared_model``; None when off."""
    mode = settings.router.shared_model
    if mode == "off":
        return None
    if not isinstance(router.scorer, EmbeddingScorer):
        raise ValueError("router.shared_model needs router.scorer: embedding (the classifier it shares)")
    watcher = StateWatcher(lambda: build_registry(settings))
    return PublishedRouterModel(watcher, router.scorer, publishes=mode == "publish")
