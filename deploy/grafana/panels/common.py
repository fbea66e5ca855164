"""What every panel group shares: the data source, the job selectors, and small builders for
PromQL targets and the panel kinds the boards use (time series, stat), each panel sized on
Grafana's 24-column grid. Template variables (``$job``, ``$route``...) are defined in
``deploy/grafana/variables.py``."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, prometheus, stat, timeseries
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement, TooltipDisplayMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
GW = 'job=~"$job"'
DIST = 'job=~"$distiller_job"'
VLLM = 'job=~"$vllm_job"'
RI = "$__rate_interval"
ROUTED = 'route=~"student|teacher"'  # requests rejected before routing have route="none"
REQUESTS = "distillserve_requests_total"
#: (PromQL, legend) of one query.
Query = tuple[str, str]


def _query(expr: str, legend: str, ref: str, *, instant: bool) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    return q.instant() if instant else q


def queries(*pairs: Query, instant: bool = False) -> list[prometheus.Dataquery]:
    """One target per (expr, legend), with refIds A, B, ..."""
    return [_query(e, legend, chr(ord("A") + i), instant=instant) for i, (e, legend) in enumerate(pairs)]


def quantiles(metric: str, by: str, selector: str, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[Query]:
    """One histogram_quantile query per quantile, by ``by``."""
    return [
        (
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{selector}}}[{RI}])))",
            f"p{round(q * 100)} {{{{{by}}}}}",
        )
        for q in qs
    ]


def series(
    title: str,
    pairs: list[Query],
    unit: str = "short",
    desc: str = "",
    *,
    w: int = 8,
    h: int = 8,
    bounds: tuple[float, float | None] | None = None,
) -> timeseries.Panel:
    """A time series panel with one line per query; ``bounds`` = the y axis's (min, max)."""
    legend = common.VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
    panel = (
        timeseries.Panel()
        .title(title)
        .description(desc)
        .datasource(DS)
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .legend(legend.show_legend(True))
        .tooltip(common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI))
        .targets(queries(*pairs))  # type: ignore[arg-type]
        .span(w)
        .height(h)
    )
    if bounds is not None:
        panel = panel.min(bounds[0])
        if bounds[1] is not None:
            panel = panel.max(bounds[1])
    return panel


def single_stat(
    title: str, pairs: list[Query], unit: str = "short", desc: str = "", *, w: int = 8, h: int = 8
) -> stat.Panel:
    """A stat panel showing each instant query's last value."""
    return (
        stat.Panel()
        .title(title)
        .description(desc)
        .datasource(DS)
        .unit(unit)
        .reduce_options(last_not_null())
        .targets(queries(*pairs, instant=True))  # type: ignore[arg-type]
        .span(w)
        .height(h)
    )


def last_not_null() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False)


def rate_sum(by: str, metric: str, selector: str) -> str:
    """``sum by (by) (rate(metric{selector}[$__rate_interval]))``: the most common query."""
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RI}]))"
