"""The deploy files, validated offline: docker-compose against the compose-spec schema, every
rendered Kubernetes manifest against the Kubernetes JSON schemas, and the config files they
mount read by the code that reads them in production.

Schemas ship inside PyPI packages (no network): compose-spec's JSON schema is vendored by
``check-jsonschema``; ``kubernetes-validate`` carries the Kubernetes API schemas (1.37,
strict: unknown fields are errors). Prometheus-operator CRDs (ServiceMonitor,
PrometheusRule) have no schema there, so their wiring is checked against the Services and
the scrape config instead; the rules themselves are promtool-tested by the monitoring tests.
"""

from __future__ import annotations

import importlib.util
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from distillserve.config import load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
CONFIG = DEPLOY / "config" / "distillserve.yaml"
K8S_VERSION = "1.37.0"
SECRETS_ENV = {
    "DISTILLSERVE_SERVER__API_KEYS": '["sk-a", "sk-b"]',
    "DISTILLSERVE_SERVER__ADMIN_KEY": "adm-x",
    "DISTILLSERVE_TEACHER__API_KEY": "sk-teacher",
}


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_schema() -> dict[str, Any]:
    return json.loads((files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())


def flags(args: list[str]) -> dict[str, str | None]:
    """``["--a", "1", "--b", "--c", "x"]`` -> ``{"--a": "1", "--b": None, "--c": "x"}``."""
    out: dict[str, str | None] = {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            out[a] = None if nxt is None or nxt.startswith("--") else nxt
    return out


def settings_from(path: Path, monkeypatch: pytest.MonkeyPatch):
    for k, v in SECRETS_ENV.items():
        monkeypatch.setenv(k, v)
    return load_settings(path)


# --- docker compose ------------------------------------------------------------------------------
def test_compose_file_matches_the_compose_spec() -> None:
    schema = compose_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(compose())


def test_compose_validation_rejects_a_broken_file() -> None:
    schema = compose_schema()
    broken = compose()
    broken["services"]["gateway"]["ports"] = {"8000": 8000}  # must be a list
    broken["services"]["vllm"]["restrat"] = "always"  # unknown key
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))
    assert len(errors) >= 2


def test_compose_mounts_only_files_that_exist() -> None:
    c = compose()
    named = set(c["volumes"])
    checked = 0
    for name, svc in c["services"].items():
        for vol in svc.get("volumes", []):
            source = re.match(r"(\$\{[^}]*\}|[^:]+):", vol).group(1)  # type: ignore[union-attr]
            if source in named:
                continue
            if source.startswith("${"):  # model weights: the operator's own directories (.env)
                assert re.fullmatch(r"\$\{[A-Z_]+_DIR:-\./models/\w+\}", source), (name, source)
                continue
            assert (COMPOSE.parent / source).resolve().exists(), f"{name} mounts missing {source}"
            checked += 1
        build = svc.get("build")
        if build:
            assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file()
    assert checked == 6  # two configs, prometheus.yml, rules, grafana provisioning, dashboards


def test_compose_config_is_what_the_code_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    c = compose()["services"]
    settings = settings_from(CONFIG, monkeypatch)
    assert [k.get_secret_value() for k in settings.server.api_keys] == ["sk-a", "sk-b"]
    for name in ("gateway", "distiller"):
        svc = c[name]
        config_arg = svc["command"][svc["command"].index("--config") + 1]
        assert f"../config/distillserve.yaml:{config_arg}:ro" in svc["volumes"]
        assert svc["environment"]["DISTILLSERVE_CONFIG"] == config_arg
        # The registry is at the same path wherever an adapter path is written or read.
        assert f"registry:{settings.registry.url}" in svc["volumes"]
    assert f"registry:{settings.registry.url}:ro" in c["vllm"]["volumes"]

    # The vLLM student: the URL, model name and LoRA limits the gateway assumes.
    vllm = flags(c["vllm"]["command"])
    assert "--enable-lora" in vllm
    assert c["vllm"]["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert settings.student.kind == "vllm"
    assert settings.student.url == f"http://vllm:{vllm['--port']}/v1"
    assert settings.student.upstream_model == vllm["--served-model-name"]
    for key in ("max_lora_rank", "max_loras", "max_model_len"):
        assert str(settings.student.vllm_args[key]) == vllm["--" + key.replace("_", "-")], key
    assert c["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]

    # Kafka in KRaft mode (no ZooKeeper), advertised where the gateway and distiller look.
    kafka = c["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "zookeeper" not in c
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{settings.teacher_log.bootstrap_servers}"
    assert settings.distiller.promotion.gateway_url == f"http://gateway:{settings.server.port}"

    # A local teacher is opt-in and speaks to the gateway through TEACHER_URL.
    assert c["teacher"]["profiles"] == ["local-teacher"]
    assert flags(c["teacher"]["command"])["--port"] == "8002"


def test_prometheus_and_grafana_wiring_matches_compose(monkeypatch: pytest.MonkeyPatch) -> None:
    c = compose()["services"]
    settings = settings_from(CONFIG, monkeypatch)
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in prom["scrape_configs"]}
    assert targets["distillserve-gateway"] == f"gateway:{settings.server.port}"
    assert targets["distillserve-distiller"] == f"distiller:{settings.monitoring.distiller_metrics_port}"
    assert targets["vllm"] == f"vllm:{flags(c['vllm']['command'])['--port']}"
    for target in targets.values():
        assert target.split(":")[0] in c
    # rule_files are relative to the config file: the rules directory is mounted beside it.
    assert prom["rule_files"] == ["rules/*.yml"]
    assert "../prometheus/rules:/etc/prometheus/rules:ro" in c["prometheus"]["volumes"]
    assert list((DEPLOY / "prometheus" / "rules").glob("*.yml"))

    ds = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    boards = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "distillserve.yml").read_text()
    )
    path = boards["providers"][0]["options"]["path"]
    assert f"../grafana/dashboards:{path}:ro" in c["grafana"]["volumes"]
    assert list((DEPLOY / "grafana" / "dashboards").glob("*.json"))


# --- Kubernetes ----------------------------------------------------------------------------------
def load_chart():
    spec = importlib.util.spec_from_file_location(
        "distillserve_k8s_render", DEPLOY / "kubernetes" / "render.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def chart():
    return load_chart()


@pytest.fixture(scope="module", params=["volume-registry", "s3-registry"])
def rendered(request: pytest.FixtureRequest, chart, tmp_path_factory: pytest.TempPathFactory):
    # s3 is the default registry; the volume mode is the override.
    registry = (
        {"mode": "s3", "s3Endpoint": "http://minio.storage:9000"}
        if request.param == "s3-registry"
        else {"mode": "volume"}
    )
    f = tmp_path_factory.mktemp("values") / "registry.yaml"
    f.write_text(yaml.safe_dump({"registry": registry}))
    overrides = [f]
    out = tmp_path_factory.mktemp(request.param)
    args = [a for f in overrides for a in ("-f", str(f))]
    assert chart.main([*args, "-o", str(out)]) == 0
    docs = [
        yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml")) if p.name != "kustomization.yaml"
    ]
    return request.param, out, docs


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, component: str) -> dict:
    [d] = [
        d for d in by_kind(docs, kind) if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return d


CRDS = {"ServiceMonitor", "PrometheusRule"}


def test_every_manifest_validates_against_the_kubernetes_schemas(rendered) -> None:
    _, out, docs = rendered
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Secret"} <= kinds
    for doc in docs:
        if doc["kind"] in CRDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    kustomization = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in out.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_kubernetes_validation_rejects_a_broken_manifest(rendered) -> None:
    _, _, docs = rendered
    broken = json.loads(json.dumps(one(docs, "Deployment", "gateway")))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    broken = json.loads(json.dumps(one(docs, "Deployment", "gateway")))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_rendered_config_is_what_the_code_reads(
    rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mode, _, docs = rendered
    cm = next(d for d in by_kind(docs, "ConfigMap") if "distillserve.yaml" in d["data"])
    path = tmp_path / "distillserve.yaml"
    path.write_text(cm["data"]["distillserve.yaml"])
    secret = by_kind(docs, "Secret")[0]["stringData"]
    monkeypatch.setenv("DISTILLSERVE_SERVER__API_KEYS", secret["api-keys"])
    monkeypatch.setenv("DISTILLSERVE_SERVER__ADMIN_KEY", secret["admin-key"])
    settings = load_settings(path)
    assert settings.server.admin_key is not None and settings.server.api_keys
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    # Each gateway resolves the headless Service to every vLLM replica (issue 19).
    vllm_svc = one(docs, "Service", "vllm-replicas")
    assert vllm_svc["spec"]["clusterIP"] == "None"
    assert settings.student.resolve_replicas
    assert (
        settings.student.url
        == f"http://{vllm_svc['metadata']['name']}:{vllm_svc['spec']['ports'][0]['port']}/v1"
    )
    assert settings.distiller.promotion.gateway_url.removeprefix("http://").split(":")[0] in services
    assert settings.teacher_log.security_protocol == "SASL_SSL"
    if mode == "s3-registry":
        assert settings.registry.url.startswith("s3://")
        _s3_registry_wiring(docs)
    else:
        assert settings.registry.url == "/registry"
        [pvc] = by_kind(docs, "PersistentVolumeClaim")
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        for kind, component in (
            ("Deployment", "gateway"),
            ("Deployment", "vllm"),
            ("StatefulSet", "distiller"),
        ):
            pod = one(docs, kind, component)["spec"]["template"]["spec"]
            mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
            assert settings.registry.url in mounts, component
            assert any(
                v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]
                for v in pod["volumes"]
            )


def _container(docs: list[dict], kind: str, component: str) -> dict:
    return one(docs, kind, component)["spec"]["template"]["spec"]["containers"][0]


def _s3_registry_wiring(docs: list[dict]) -> None:
    """S3 keys from the Secret in the pods that read the registry; the one volume is the adapter
    cache, written by gateways and read by vLLM at the same path (an adapter path means the same
    thing in both pods), and the gateway's cache directory is that path."""
    for kind, component in (("Deployment", "gateway"), ("StatefulSet", "distiller")):
        env = {e["name"]: e for e in _container(docs, kind, component)["env"]}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"} <= env.keys(), component
        assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "s3-secret-access-key"
    [pvc] = by_kind(docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and "adapter-cache" in pvc["metadata"]["name"]
    mounts = {}
    for component in ("gateway", "vllm"):
        pod = one(docs, "Deployment", component)["spec"]["template"]["spec"]
        [vol] = [
            v
            for v in pod["volumes"]
            if v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]
        ]
        [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == vol["name"]]
        mounts[component] = mount
    assert mounts["gateway"]["mountPath"] == mounts["vllm"]["mountPath"]
    assert not mounts["gateway"]["readOnly"] and mounts["vllm"]["readOnly"]
    gateway_env = {e["name"]: e.get("value") for e in _container(docs, "Deployment", "gateway")["env"]}
    assert gateway_env["DISTILLSERVE_CACHE_DIR"] == mounts["gateway"]["mountPath"]


def test_vllm_replicas_resolve_through_a_headless_service(rendered, chart) -> None:
    """Every ready vLLM pod is one DNS answer of the headless Service, so each gateway can load,
    probe and switch an adapter on all replicas; the ServiceMonitor still sees each pod once."""
    _, _, docs = rendered
    headless = one(docs, "Service", "vllm-replicas")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is False
    vllm = one(docs, "Deployment", "vllm")
    assert headless["spec"]["selector"] == vllm["spec"]["selector"]["matchLabels"]
    port = int(flags(vllm["spec"]["template"]["spec"]["containers"][0]["args"])["--port"])
    assert [p["port"] for p in headless["spec"]["ports"]] == [port]
    for sm in by_kind(docs, "ServiceMonitor"):
        assert not sm["spec"]["selector"]["matchLabels"].items() <= headless["metadata"]["labels"].items()
    on = chart.Chart(chart.deep_merge(chart.load_values([]), {"vllm": {"resolveReplicas": True}}))
    student = on.distillserve_config()["student"]
    assert student["resolve_replicas"] is True
    assert student["url"] == f"http://{headless['metadata']['name']}:{port}/v1"


def test_distiller_ranks_reach_the_config_and_the_gpu_request(chart, tmp_path: Path) -> None:
    values = chart.deep_merge(chart.load_values([]), {"distiller": {"ranks": 4, "gpusPerRank": 1}})
    docs = chart.Chart(values).render()
    [sts] = [d for d in docs if d["kind"] == "StatefulSet"]
    kubernetes_validate.validate(sts, K8S_VERSION, strict=True)
    assert sts["spec"]["replicas"] == 1  # one pod, four ranks in it (torchrun --nproc-per-node=4)
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert "/dev/shm" in {m["mountPath"] for m in container["volumeMounts"]}
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "distillserve.yaml" in d.get("data", {}))
    path = tmp_path / "distillserve.yaml"
    path.write_text(cm["data"]["distillserve.yaml"])
    with pytest.MonkeyPatch.context() as mp:
        for k, v in SECRETS_ENV.items():
            mp.setenv(k, v)
        assert load_settings(path).distiller.ranks == 4
    cpu = chart.Chart(chart.deep_merge(values, {"distiller": {"gpusPerRank": 0}})).render()
    [sts] = [d for d in cpu if d["kind"] == "StatefulSet"]
    assert "nvidia.com/gpu" not in sts["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_workloads_services_and_references_fit_together(rendered) -> None:
    _, _, docs = rendered
    workloads = by_kind(docs, "Deployment") + by_kind(docs, "StatefulSet")
    secret = by_kind(docs, "Secret")[0]
    configmaps = {d["metadata"]["name"] for d in by_kind(docs, "ConfigMap")}
    for w in workloads:
        template_labels = w["spec"]["template"]["metadata"]["labels"]
        assert w["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
        pod = w["spec"]["template"]["spec"]
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], e
            mounted = {m["name"] for m in c.get("volumeMounts", [])}
            claims = {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
            assert mounted <= {v["name"] for v in pod["volumes"]} | claims
        for v in pod["volumes"]:
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps
    for svc in by_kind(docs, "Service"):
        assert any(
            svc["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
            for w in workloads
        )
    hpa = by_kind(docs, "HorizontalPodAutoscaler")[0]
    target = hpa["spec"]["scaleTargetRef"]
    assert target["name"] == one(docs, "Deployment", "gateway")["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2


def test_gpu_student_and_single_writer_distiller(rendered, chart) -> None:
    _, _, docs = rendered
    vllm = one(docs, "Deployment", "vllm")["spec"]["template"]["spec"]["containers"][0]
    args = flags(vllm["args"])
    assert "--enable-lora" in args
    assert {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"} in vllm["env"]
    tp, pp = int(args["--tensor-parallel-size"]), int(args["--pipeline-parallel-size"])
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == tp * pp
    distiller = one(docs, "StatefulSet", "distiller")
    assert distiller["spec"]["replicas"] == 1
    assert distiller["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    # The values can raise TP/PP; the GPU request follows.
    big = chart.Chart(
        chart.deep_merge(
            chart.load_values([]), {"vllm": {"tensorParallelSize": 4, "pipelineParallelSize": 2}}
        )
    )
    [dep] = [m for m in big.render() if m["kind"] == "Deployment" and "vllm" in m["metadata"]["name"]]
    assert dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8


def test_service_monitors_keep_the_scrape_job_names(rendered) -> None:
    _, _, docs = rendered
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in prom["scrape_configs"]}
    monitors = by_kind(docs, "ServiceMonitor")
    assert len(monitors) == 3
    for sm in monitors:
        spec = sm["spec"]
        [svc] = [
            s
            for s in by_kind(docs, "Service")
            if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert svc["metadata"]["labels"][spec["jobLabel"]] in jobs
        assert {p["name"] for p in svc["spec"]["ports"]} >= {e["port"] for e in spec["endpoints"]}
        assert spec["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
    [rule] = by_kind(docs, "PrometheusRule")
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "distillserve.yml").read_text())
    assert rule["spec"]["groups"] == shipped["groups"]
    dashboards = next(
        d for d in by_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"
    )
    assert sorted(dashboards["data"]) == sorted(
        p.name for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")
    )
