"""The shipped Grafana dashboards as queries: every panel's PromQL with the template
variables substituted, which process feeds it, and a PNG of the panels' data."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import REPO_ROOT
from tests.support.prometheus import Prometheus

GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
# What Grafana would put in for its built-in variables, with the 1 s scrape interval of the tests.
BUILTINS = {"$__rate_interval": "1m", "$__interval": "1s", "$__range": "5m"}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str  # variables substituted

    @property
    def source(self) -> str:
        return source_of(self.expr)


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def variable_values(board: dict[str, Any]) -> dict[str, str]:
    """Each template variable's default, as Grafana would substitute it in a regex matcher."""
    out = {}
    for v in board["templating"]["list"]:
        cur = v.get("current", {}).get("value")
        if isinstance(cur, list):
            cur = v["allValue"] if cur == ["$__all"] else "|".join(cur)
        elif cur == "$__all":
            cur = v["allValue"]
        out[v["name"]] = str(cur)
    return out


def substitute(expr: str, values: dict[str, str], builtins: dict[str, str] = BUILTINS) -> str:
    for k, v in builtins.items():
        expr = expr.replace(k, v)
    # Longest names first, so $job does not eat the start of $job_x.
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def panel_queries() -> list[PanelQuery]:
    out = []
    for name, board in load_dashboards().items():
        values = variable_values(board)
        for panel in board["panels"]:
            for t in panel.get("targets", []):
                out.append(PanelQuery(name, panel["title"], t["refId"], substitute(t["expr"], values)))
    return out


def source_of(expr: str) -> str:
    """The process whose metrics a query needs, for saying honestly which panels a test feeds."""
    if "vllm:" in expr:
        return "vllm"
    if 'job=~"distillserve-distiller"' in expr:
        return "distiller"
    if re.search(r"distillserve_teacher_log_(records|spool|queue)", expr):
        return "kafka-sink"  # exported by the gateway, non-zero only with the Kafka sink
    if "adapter_swap" in expr:
        return "hot-swap"  # exported by the gateway, non-zero only after a hot-swap
    return "gateway"


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    vals = []
    for series in result:
        points = [series["value"]] if "value" in series else series.get("values", [])
        vals += [float(v) for _, v in points if math.isfinite(float(v))]
    return vals


def render_png(
    prom: Prometheus,
    board_file: str,
    start: float,
    end: float,
    path: Path,
    step: float = 2.0,
    rate_interval: str = "15s",
) -> int:
    """Plot every panel's data over [start, end] into one PNG (a picture of the board). Returns panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = load_dashboards()[board_file]
    values = variable_values(board)
    panels = [p for p in board["panels"] if p.get("targets")]
    cols = 4
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.6, rows * 2.9), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        drawn = 0
        for t in panel["targets"]:
            expr = substitute(t["expr"], values, {**BUILTINS, "$__rate_interval": rate_interval})
            for series in prom.query_range(expr, start, end, step):
                xs = [float(ts) - start for ts, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                label = _legend(t.get("legendFormat", ""), series["metric"])
                ax.plot(xs, ys, label=label[:28], linewidth=1.2)
                drawn += 1
        ax.set_title(panel["title"], fontsize=8)
        ax.tick_params(labelsize=6)
        if drawn:
            ax.legend(fontsize=5, loc="best")
        else:
            ax.text(
                0.5, 0.5, "no data (source not running)", ha="center", va="center", fontsize=7, color="grey"
            )
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"{board['title']} — panels' data from Prometheus (x: seconds)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return len(panels)


def _legend(fmt: str, labels: dict[str, str]) -> str:
    if not fmt or fmt == "__auto":
        return ",".join(f"{k}={v}" for k, v in labels.items() if k not in ("job", "instance")) or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)
