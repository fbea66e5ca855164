"""The demo report's money: what the run spent, read from the gateway's own cost metrics
(``distillserve_spend_usd_total``, ``distillserve_savings_usd_total``), against what the same
client traffic would have cost with the teacher answering all of it.

Teacher-only = the teacher's serve spend + the savings (the teacher's price of every request the
student served). The run's total adds the student's own per-token price and the overhead of
learning: shadow comparisons, judge calls and relabels. Read before the teacher-only quality
baseline, which sends its own requests through the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

_LEARNING = ("shadow", "judge", "relabel")


@dataclass
class SpendSummary:
    served_usd: float  # client requests, both routes
    learning_usd: float  # shadow, judge and relabel calls
    teacher_only_usd: float  # the same client requests, all on the teacher
    unpriced_tokens: float  # tokens of a model without a price: the figures above miss them

    @property
    def total_usd(self) -> float:
        return self.served_usd + self.learning_usd

    @property
    def saved_share(self) -> float:
        return 1 - self.total_usd / self.teacher_only_usd if self.teacher_only_usd else float("nan")


def spend_from_metrics(text: str, exclude_tenants: tuple[str, ...] = ()) -> SpendSummary:
    """The run's money from a ``/metrics`` page (all gateway series summed, over every tenant but
    ``exclude_tenants``: the demo's own evaluation requests are no client traffic)."""
    served = learning = teacher_serve = savings = unpriced = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("tenant") in exclude_tenants:
                continue
            if s.name == "distillserve_spend_usd_total":
                purpose = s.labels.get("purpose")
                served += s.value if purpose == "serve" else 0.0
                learning += s.value if purpose in _LEARNING else 0.0
                teacher_serve += s.value if purpose == "serve" and s.labels.get("route") == "teacher" else 0.0
            elif s.name == "distillserve_savings_usd_total":
                savings += s.value
            elif s.name == "distillserve_unpriced_tokens_total":
                unpriced += s.value
    return SpendSummary(served, learning, teacher_serve + savings, unpriced)


async def fetch_spend(gateway_url: str, exclude_tenants: tuple[str, ...] = ()) -> SpendSummary:
    """``gateway_url``: the OpenAI base URL (``…/v1``); the metrics sit at the root."""
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(gateway_url.removesuffix("/").removesuffix("/v1") + "/metrics")
        r.raise_for_status()
    return spend_from_metrics(r.text, exclude_tenants)


def spend_markdown(s: SpendSummary) -> list[str]:
    lines = [
        "## Cost",
        "",
        "Priced from the gateway's `pricing` table (its own `distillserve_spend_usd_total` and "
        "`distillserve_savings_usd_total`); teacher-only is the same client requests, all answered "
        "by the teacher.",
        "",
        "| | USD |",
        "|---|---|",
        f"| client requests (student + teacher) | {s.served_usd:.6f} |",
        f"| learning overhead (shadow, judge, relabel) | {s.learning_usd:.6f} |",
        f"| **spent** | **{s.total_usd:.6f}** |",
        f"| teacher-only | {s.teacher_only_usd:.6f} |",
        "",
        f"Spent {_pct(s.saved_share)} less than teacher-only.",
    ]
    if s.unpriced_tokens:
        lines += [
            "",
            f"{s.unpriced_tokens:.0f} tokens went to a model without a price: not in these figures.",
        ]
    return lines


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x * 100:.1f}%"
