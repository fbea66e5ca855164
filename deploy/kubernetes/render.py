"""Render distillserve's Kubernetes manifests from values (a chart written in Python).

    python deploy/kubernetes/render.py -f my-values.yaml -o out/   # then: kubectl apply -k out/

Helm's binary cannot be installed offline on our machines, so the chart is Python: dict
builders (no text templating, so every manifest is well-formed YAML by construction),
``values.yaml`` defaults merged with ``-f`` files, one file per object plus a
``kustomization.yaml`` so overlays work. ``tests/deploy/test_deploy.py`` renders it and validates
every object against the Kubernetes JSON schemas (PyPI ``kubernetes-validate``), and loads
the rendered ``distillserve.yaml`` with the project's own ``load_settings``.

What it renders: the gateway (stateless Deployment + HPA + PDB + Service), the vLLM
student (Deployment with GPUs, runtime LoRA updating on, a Service and a headless Service that
resolves to every replica), the distiller (a one-replica StatefulSet: the registry's single
writer, since a StatefulSet never runs two pods of one identity; ``distiller.ranks`` DDP
processes inside it under torchrun), the config (ConfigMap) and secrets (API keys, admin key,
teacher key, Kafka SASL, S3), the adapter registry (an S3 URL plus the adapter cache volume, or a
ReadWriteMany volume), ServiceMonitors
(job names as ``deploy/prometheus/prometheus.yml``), a PrometheusRule with the shipped
alert rules and the Grafana dashboards as a sidecar-discovered ConfigMap.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEPLOY = HERE.parent
Manifest = dict[str, Any]

# Job names the alert rules and dashboards select on (deploy/prometheus/prometheus.yml).
JOBS = {"gateway": "distillserve-gateway", "distiller": "distillserve-distiller", "vllm": "vllm"}
JOB_LABEL = "distillserve.io/job"


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_values(files: list[Path]) -> dict[str, Any]:
    values = yaml.safe_load((HERE / "values.yaml").read_text())
    for f in files:
        values = deep_merge(values, yaml.safe_load(f.read_text()) or {})
    return values


class Chart:
    def __init__(self, values: dict[str, Any]) -> None:
        self.v = values
        self.name = values["nameOverride"]
        self.ns = values["namespace"]
        self.secret = values["secrets"]["existingSecret"] or f"{self.name}-secrets"

    # -- helpers ----------------------------------------------------------------------------------
    def labels(self, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": self.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "distillserve",
        }

    def meta(self, name: str, component: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "namespace": self.ns, "labels": self.labels(component), **extra}

    def image(self) -> str:
        i = self.v["image"]
        return f"{i['repository']}:{i['tag']}"

    def svc(self, component: str) -> str:
        return f"{self.name}-{component}"

    def secret_env(self, var: str, key: str, optional: bool = True) -> dict[str, Any]:
        ref = {"name": self.secret, "key": key}
        if optional:
            ref["optional"] = True
        return {"name": var, "valueFrom": {"secretKeyRef": ref}}

    def distillserve_env(self) -> list[dict[str, Any]]:
        env = [
            {"name": "DISTILLSERVE_CONFIG", "value": "/etc/distillserve/distillserve.yaml"},
            self.secret_env("DISTILLSERVE_SERVER__API_KEYS", "api-keys", optional=False),
            self.secret_env("DISTILLSERVE_SERVER__ADMIN_KEY", "admin-key", optional=False),
            self.secret_env("DISTILLSERVE_TEACHER__API_KEY", "teacher-api-key"),
            self.secret_env("DISTILLSERVE_TEACHER_LOG__SASL_USERNAME", "kafka-sasl-username"),
            self.secret_env("DISTILLSERVE_TEACHER_LOG__SASL_PASSWORD", "kafka-sasl-password"),
            {"name": "HF_HUB_OFFLINE", "value": "1"},
        ]
        if self.v["registry"]["mode"] == "s3":
            env += [
                self.secret_env("AWS_ACCESS_KEY_ID", "s3-access-key-id"),
                self.secret_env("AWS_SECRET_ACCESS_KEY", "s3-secret-access-key"),
            ]
            if self.v["registry"]["s3Endpoint"]:
                env.append({"name": "AWS_ENDPOINT_URL", "value": self.v["registry"]["s3Endpoint"]})
        return env

    def registry_volume(self, read_only: bool) -> tuple[list[Manifest], list[Manifest]]:
        """(volumes, mounts) for the registry in volume mode; nothing for s3."""
        r = self.v["registry"]
        if r["mode"] != "volume":
            return [], []
        vol = {"name": "registry", "persistentVolumeClaim": {"claimName": f"{self.name}-registry"}}
        mount = {"name": "registry", "mountPath": r["mountPath"], "readOnly": read_only}
        return [vol], [mount]

    def adapter_cache(self, read_only: bool) -> tuple[list[Manifest], list[Manifest]]:
        """(volumes, mounts) for the s3 mode's adapter cache: gateways copy adapters there (by
        content hash) and vLLM loads them from the same path; nothing in volume mode."""
        r = self.v["registry"]
        if r["mode"] != "s3":
            return [], []
        vol = {"name": "adapter-cache", "persistentVolumeClaim": {"claimName": f"{self.name}-adapter-cache"}}
        mount = {"name": "adapter-cache", "mountPath": r["adapterCache"]["mountPath"], "readOnly": read_only}
        return [vol], [mount]

    def pod_security(self) -> dict[str, Any]:
        return {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001}

    @staticmethod
    def container_security() -> dict[str, Any]:
        return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}

    def scrape_annotations(self, port: int) -> dict[str, str]:
        return {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }

    # -- config -----------------------------------------------------------------------------------
    def distillserve_config(self) -> dict[str, Any]:
        v = self.v
        registry_url = (
            v["registry"]["mountPath"] if v["registry"]["mode"] == "volume" else v["registry"]["url"]
        )
        # resolveReplicas: the headless Service, resolved to every replica by each gateway.
        student_host = self.svc("vllm-replicas") if v["vllm"]["resolveReplicas"] else self.svc("vllm")
        cfg = {
            "server": {"host": "0.0.0.0", "port": v["gateway"]["port"]},
            "student": {
                "kind": "vllm",
                "name": "student",
                "url": f"http://{student_host}:{v['vllm']['port']}/v1",
                **({"resolve_replicas": True} if v["vllm"]["resolveReplicas"] else {}),
                "upstream_model": v["vllm"]["servedModelName"],
                "model_path": v["vllm"]["modelPath"],
                "vllm_args": {
                    "max_lora_rank": v["vllm"]["maxLoraRank"],
                    "max_loras": v["vllm"]["maxLoras"],
                    "max_model_len": v["vllm"]["maxModelLen"],
                    "tensor_parallel_size": v["vllm"]["tensorParallelSize"],
                },
            },
            "teacher": {
                "kind": "openai",
                "name": "teacher",
                "url": v["teacher"]["url"],
                "upstream_model": v["teacher"]["model"],
                "timeout_s": v["teacher"]["timeoutSeconds"],
            },
            "teacher_log": {
                "sink": "kafka",
                "bootstrap_servers": v["kafka"]["bootstrapServers"],
                "topic": v["kafka"]["topic"],
                "partitions": v["kafka"]["partitions"],
                "security_protocol": v["kafka"]["securityProtocol"],
                "sasl_mechanism": v["kafka"]["saslMechanism"],
                "spool_dir": "/var/lib/distillserve/spool",
            },
            "distiller": {
                "source": "kafka",
                "base_model": v["vllm"]["modelPath"],
                "promotion": {
                    "via": "gateway",
                    "gateway_url": f"http://{self.svc('gateway')}:{v['gateway']['port']}",
                },
                "state_dir": "/var/lib/distillserve/distiller",
                "ranks": v["distiller"]["ranks"],
            },
            "registry": {"url": registry_url},
            "monitoring": {"distiller_metrics_port": v["distiller"]["port"]},
        }
        return deep_merge(cfg, v.get("config") or {})

    def config_map(self) -> Manifest:
        text = yaml.safe_dump(self.distillserve_config(), sort_keys=False)
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.meta(f"{self.name}-config", "config"),
            "data": {"distillserve.yaml": text},
        }

    def secret_manifest(self) -> Manifest | None:
        s = self.v["secrets"]
        if not s["create"] or s["existingSecret"]:
            return None
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": self.meta(self.secret, "config"),
            "stringData": {
                "api-keys": json.dumps(s["apiKeys"]),
                "admin-key": s["adminKey"],
                "teacher-api-key": s["teacherApiKey"],
                "kafka-sasl-username": s["kafkaSaslUsername"],
                "kafka-sasl-password": s["kafkaSaslPassword"],
                "s3-access-key-id": s["s3AccessKeyId"],
                "s3-secret-access-key": s["s3SecretAccessKey"],
            },
        }

    def config_volume(self) -> tuple[Manifest, Manifest]:
        return (
            {"name": "config", "configMap": {"name": f"{self.name}-config"}},
            {"name": "config", "mountPath": "/etc/distillserve", "readOnly": True},
        )

    # -- gateway ----------------------------------------------------------------------------------
    def gateway(self) -> list[Manifest]:
        g = self.v["gateway"]
        name = self.svc("gateway")
        cfg_vol, cfg_mount = self.config_volume()
        reg_vols, reg_mounts = self.registry_volume(read_only=True)
        cache_vols, cache_mounts = self.adapter_cache(read_only=False)
        cache_env = [{"name": "DISTILLSERVE_CACHE_DIR", "value": m["mountPath"]} for m in cache_mounts]
        probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
        container = {
            "name": "gateway",
            "image": self.image(),
            "imagePullPolicy": self.v["image"]["pullPolicy"],
            "args": ["distillserve", "serve", "--config", "/etc/distillserve/distillserve.yaml"],
            "ports": [{"name": "http", "containerPort": g["port"]}],
            "env": [*self.distillserve_env(), *cache_env],
            "volumeMounts": [
                cfg_mount,
                {"name": "spool", "mountPath": "/var/lib/distillserve/spool"},
                *reg_mounts,
                *cache_mounts,
            ],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
            "livenessProbe": {**probe, "failureThreshold": 6},
            "resources": g["resources"],
            "securityContext": self.container_security(),
        }
        labels = self.labels("gateway")
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.meta(name, "gateway"),
            "spec": {
                "replicas": g["replicas"],
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels, "annotations": self.scrape_annotations(g["port"])},
                    "spec": {
                        "terminationGracePeriodSeconds": g["terminationGracePeriodSeconds"],
                        "securityContext": self.pod_security(),
                        "containers": [container],
                        "volumes": [
                            cfg_vol,
                            {"name": "spool", "emptyDir": {"sizeLimit": g["spoolSizeLimit"]}},
                            *reg_vols,
                            *cache_vols,
                        ],
                        "topologySpreadConstraints": [
                            {
                                "maxSkew": 1,
                                "topologyKey": "kubernetes.io/hostname",
                                "whenUnsatisfiable": "ScheduleAnyway",
                                "labelSelector": {"matchLabels": labels},
                            }
                        ],
                    },
                },
            },
        }
        out = [deployment, self.service("gateway", g["port"]), self.pdb("gateway")]
        a = g["autoscaling"]
        if a["enabled"]:
            out.append(
                {
                    "apiVersion": "autoscaling/v2",
                    "kind": "HorizontalPodAutoscaler",
                    "metadata": self.meta(name, "gateway"),
                    "spec": {
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                        "minReplicas": a["minReplicas"],
                        "maxReplicas": a["maxReplicas"],
                        "metrics": [
                            {
                                "type": "Resource",
                                "resource": {
                                    "name": "cpu",
                                    "target": {
                                        "type": "Utilization",
                                        "averageUtilization": a["targetCPUUtilizationPercentage"],
                                    },
                                },
                            }
                        ],
                    },
                }
            )
        return out

    def service(self, component: str, port: int, *, headless: bool = False) -> Manifest:
        spec: dict[str, Any] = {
            "selector": self.labels(component),
            "ports": [{"name": "http", "port": port, "targetPort": port}],
        }
        if headless:
            spec["clusterIP"] = "None"
        meta = self.meta(self.svc(component), component)
        meta["labels"][JOB_LABEL] = JOBS[component]
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}

    def replicas_service(self, component: str, port: int) -> Manifest:
        """A headless Service whose DNS name resolves to every ready pod of ``component``, one
        address each, for clients that address replicas one by one. Its own component label keeps
        it out of the ServiceMonitor, so no pod is scraped twice."""
        spec = {
            "clusterIP": "None",
            "publishNotReadyAddresses": False,  # a replica still loading weights is not listed
            "selector": self.labels(component),
            "ports": [{"name": "http", "port": port, "targetPort": port}],
        }
        meta = self.meta(self.svc(f"{component}-replicas"), f"{component}-replicas")
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}

    def pdb(self, component: str) -> Manifest:
        return {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": self.meta(self.svc(component), component),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": self.labels(component)}},
        }

    # -- vLLM student -----------------------------------------------------------------------------
    def vllm(self) -> list[Manifest]:
        s = self.v["vllm"]
        gpus = s["tensorParallelSize"] * s["pipelineParallelSize"]
        reg_vols, reg_mounts = self.registry_volume(read_only=True)
        cache_vols, cache_mounts = self.adapter_cache(read_only=True)
        labels = self.labels("vllm")
        args = [
            "--model", s["modelPath"], "--served-model-name", s["servedModelName"],
            "--host", "0.0.0.0", "--port", str(s["port"]),
            "--enable-lora", "--max-lora-rank", str(s["maxLoraRank"]), "--max-loras", str(s["maxLoras"]),
            "--max-model-len", str(s["maxModelLen"]),
            "--gpu-memory-utilization", str(s["gpuMemoryUtilization"]),
            "--tensor-parallel-size", str(s["tensorParallelSize"]),
            "--pipeline-parallel-size", str(s["pipelineParallelSize"]),
        ]  # fmt: skip
        resources = copy.deepcopy(s["resources"])
        resources.setdefault("limits", {})["nvidia.com/gpu"] = gpus
        resources.setdefault("requests", {})["nvidia.com/gpu"] = gpus
        container = {
            "name": "vllm",
            "image": s["image"],
            "args": args,
            "env": [
                {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"},
                {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
                {"name": "HF_HUB_OFFLINE", "value": "1"},
            ],
            "ports": [{"name": "http", "containerPort": s["port"]}],
            "volumeMounts": [
                {"name": "model", "mountPath": s["modelPath"], "readOnly": True},
                {"name": "shm", "mountPath": "/dev/shm"},
                *reg_mounts,
                *cache_mounts,
            ],
            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
            # Loading weights takes minutes: a startup probe keeps the liveness probe off until then.
            "startupProbe": {
                "httpGet": {"path": "/health", "port": "http"},
                "periodSeconds": 10,
                "failureThreshold": 90,
            },
            "livenessProbe": {
                "httpGet": {"path": "/health", "port": "http"},
                "periodSeconds": 15,
                "failureThreshold": 4,
            },
            "resources": resources,
        }
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.meta(self.svc("vllm"), "vllm"),
            "spec": {
                "replicas": s["replicas"],
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels, "annotations": self.scrape_annotations(s["port"])},
                    "spec": {
                        "containers": [container],
                        "volumes": [
                            {
                                "name": "model",
                                "persistentVolumeClaim": {"claimName": s["modelClaim"], "readOnly": True},
                            },
                            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
                            *reg_vols,
                            *cache_vols,
                        ],
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                    },
                },
            },
        }
        return [deployment, self.service("vllm", s["port"]), self.replicas_service("vllm", s["port"])]

    # -- distiller --------------------------------------------------------------------------------
    def distiller(self) -> list[Manifest]:
        d = self.v["distiller"]
        name = self.svc("distiller")
        cfg_vol, cfg_mount = self.config_volume()
        reg_vols, reg_mounts = self.registry_volume(read_only=False)
        labels = self.labels("distiller")
        resources = copy.deepcopy(d["resources"])
        gpus = d["ranks"] * d["gpusPerRank"]  # one GPU per rank for NCCL
        if gpus:
            resources.setdefault("limits", {})["nvidia.com/gpu"] = gpus
        claim: dict[str, Any] = {
            "metadata": {"name": "state"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": d["storage"]}}},
        }
        if d["storageClassName"]:
            claim["spec"]["storageClassName"] = d["storageClassName"]
        statefulset = {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": self.meta(name, "distiller"),
            "spec": {
                # One replica, never two at once (StatefulSet identity): the registry's single writer.
                "replicas": 1,
                "serviceName": name,
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels, "annotations": self.scrape_annotations(d["port"])},
                    "spec": {
                        "terminationGracePeriodSeconds": 120,
                        "securityContext": self.pod_security(),
                        "containers": [
                            {
                                "name": "distiller",
                                "image": self.image(),
                                "imagePullPolicy": self.v["image"]["pullPolicy"],
                                "args": [
                                    "distillserve",
                                    "distill",
                                    "--config",
                                    "/etc/distillserve/distillserve.yaml",
                                ],
                                "env": self.distillserve_env(),
                                "ports": [{"name": "http", "containerPort": d["port"]}],
                                "volumeMounts": [
                                    cfg_mount,
                                    {"name": "state", "mountPath": "/var/lib/distillserve/distiller"},
                                    {
                                        "name": "model",
                                        "mountPath": self.v["vllm"]["modelPath"],
                                        "readOnly": True,
                                    },
                                    # DDP ranks exchange tensors through shared memory.
                                    {"name": "shm", "mountPath": "/dev/shm"},
                                    *reg_mounts,
                                ],
                                "resources": resources,
                                "securityContext": self.container_security(),
                            }
                        ],
                        "volumes": [
                            cfg_vol,
                            {
                                "name": "model",
                                "persistentVolumeClaim": {
                                    "claimName": self.v["vllm"]["modelClaim"],
                                    "readOnly": True,
                                },
                            },
                            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
                            *reg_vols,
                        ],
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                    },
                },
                "volumeClaimTemplates": [claim],
            },
        }
        return [statefulset, self.service("distiller", d["port"], headless=True)]

    # -- registry ---------------------------------------------------------------------------------
    def registry(self) -> list[Manifest]:
        r = self.v["registry"]
        if r["mode"] == "s3":
            c = r["adapterCache"]
            spec: dict[str, Any] = {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": c["size"]}},
            }
            if c["storageClassName"]:
                spec["storageClassName"] = c["storageClassName"]
            meta = self.meta(f"{self.name}-adapter-cache", "registry")
            return [{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}]
        return [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": self.meta(f"{self.name}-registry", "registry"),
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": r["storageClassName"],
                    "resources": {"requests": {"storage": r["size"]}},
                },
            }
        ]

    # -- monitoring -------------------------------------------------------------------------------
    def monitoring(self) -> list[Manifest]:
        m = self.v["monitoring"]
        out: list[Manifest] = []
        if m["serviceMonitor"]:
            for component in ("gateway", "distiller", "vllm"):
                out.append(
                    {
                        "apiVersion": "monitoring.coreos.com/v1",
                        "kind": "ServiceMonitor",
                        "metadata": self.meta(self.svc(component), component),
                        "spec": {
                            # job = the Service's distillserve.io/job label, as the rules expect.
                            "jobLabel": JOB_LABEL,
                            "selector": {"matchLabels": self.labels(component)},
                            "namespaceSelector": {"matchNames": [self.ns]},
                            "endpoints": [
                                {"port": "http", "path": "/metrics", "interval": m["scrapeInterval"]}
                            ],
                        },
                    }
                )
        if m["prometheusRule"]:
            rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "distillserve.yml").read_text())
            out.append(
                {
                    "apiVersion": "monitoring.coreos.com/v1",
                    "kind": "PrometheusRule",
                    "metadata": self.meta(f"{self.name}-rules", "monitoring"),
                    "spec": {"groups": rules["groups"]},
                }
            )
        if m["grafanaDashboards"]:
            boards = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
            meta = self.meta(f"{self.name}-dashboards", "monitoring")
            meta["labels"]["grafana_dashboard"] = "1"  # the Grafana chart's sidecar picks these up
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": meta,
                    "data": {b.name: b.read_text() for b in boards},
                }
            )
        return out

    def render(self) -> list[Manifest]:
        secret = self.secret_manifest()
        return [
            self.config_map(),
            *([secret] if secret else []),
            *self.registry(),
            *self.gateway(),
            *self.vllm(),
            *self.distiller(),
            *self.monitoring(),
        ]


def write(manifests: list[Manifest], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in manifests:
        p = out / f"{m['kind'].lower()}-{m['metadata']['name']}.yaml"
        p.write_text(yaml.safe_dump(m, sort_keys=False))
        paths.append(p)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [p.name for p in paths],
    }
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--values", type=Path, action="append", default=[], help="values file(s)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    paths = write(Chart(load_values(args.values)).render(), args.out)
    print(f"wrote {len(paths)} manifests and kustomization.yaml to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
