"""The boards' template variables: the data source, the scrape job of each process, and (SRE
overview) the route. Defaults match ``deploy/prometheus/prometheus.yml``'s job names."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders.dashboard import CustomVariable, DatasourceVariable, QueryVariable
from grafana_foundation_sdk.models.dashboard import VariableOption, VariableRefresh

from deploy.grafana.panels.common import DS


def _job(name: str, label: str, default: str, metric: str) -> QueryVariable:
    return (
        QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(f"label_values({metric}, job)")
        .current(VariableOption(text=default, value=default))
        .include_all(False)
        .multi(False)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
    )


def _route() -> CustomVariable:
    return (
        CustomVariable("route")
        .label("Route")
        .values("student,teacher")
        .include_all(True)
        .all_value("student|teacher")
        .multi(True)
        .current(VariableOption(text=["All"], value=["$__all"]))
    )


def variables(*, route: bool) -> list[Any]:
    out: list[Any] = [
        DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(VariableOption(text="Prometheus", value="prometheus")),
        _job("job", "Gateway job", "distillserve-gateway", "distillserve_build_info"),
        _job("distiller_job", "Distiller job", "distillserve-distiller", "distillserve_build_info"),
        _job("vllm_job", "vLLM job", "vllm", "vllm:num_requests_running"),
    ]
    return [*out, _route()] if route else out
