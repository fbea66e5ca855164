"""Metrics a test can read on their own: a fresh set of every distillserve metric in a
registry of the test's own, swapped in for ``distillserve.monitoring.metrics``'s names.

Code observes ``metrics.X`` when it counts, so for the test's duration everything it counts
lands in the test's registry, starting at zero whatever other tests in the process counted.
Use the ``fresh_metrics`` fixture (``tests/conftest.py``)."""

from __future__ import annotations

from dataclasses import fields

import pytest
from prometheus_client import CollectorRegistry

from distillserve.monitoring import metrics


def use_fresh_metrics(monkeypatch: pytest.MonkeyPatch) -> CollectorRegistry:
    """Declare every metric in a new registry and bind the module's names to it until the test ends."""
    registry = CollectorRegistry()
    fresh = metrics.declare(registry)
    for f in fields(fresh):
        # raising=True (the default): a field without its module name is a bug in metrics.py.
        monkeypatch.setattr(metrics, f.name, getattr(fresh, f.name))
    return registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0.0 when the series does not exist (yet)."""
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
