"""All configuration, typed in one place (pydantic-settings); one module per concern.

``from distillserve.config import X`` is the way in: see ``settings`` for the sources and their order.
"""

from distillserve.config.admin import AdminConfig
from distillserve.config.backends import (
    BACKEND_KINDS,
    AdapterHostFields,
    BackendBase,
    BackendConfig,
    BackendKind,
    EmbeddedBackendConfig,
    OpenAIBackendConfig,
    RemoteBackend,
    TestbedBackendConfig,
    TritonBackendConfig,
    VLLMBackendConfig,
    backend_config,
)
from distillserve.config.distiller import (
    DistillerConfig,
    EvalConfig,
    GateConfig,
    KDConfig,
    LoraAdapterConfig,
    OptimConfig,
    PromotionConfig,
    ReplayConfig,
    TriggerConfig,
)
from distillserve.config.grading import GraderConfig, GradingConfig, GradingRule
from distillserve.config.keys import BudgetConfig, KeyEntry, KeysConfig
from distillserve.config.monitoring import MonitoringConfig
from distillserve.config.paths import REPO_ROOT, cache_dir
from distillserve.config.pricing import ModelPrice, PricingConfig
from distillserve.config.registry import RegistryConfig
from distillserve.config.router import (
    CascadeConfig,
    EmbeddingScorerConfig,
    RetrainConfig,
    RouterConfig,
    ScorerName,
)
from distillserve.config.server import ServerConfig
from distillserve.config.settings import CONFIG_ENV, ConfigError, Settings, load_settings
from distillserve.config.teacher_log import TeacherLogConfig

__all__ = [
    "BACKEND_KINDS",
    "CONFIG_ENV",
    "REPO_ROOT",
    "AdapterHostFields",
    "AdminConfig",
    "BackendBase",
    "BackendConfig",
    "BackendKind",
    "BudgetConfig",
    "CascadeConfig",
    "ConfigError",
    "DistillerConfig",
    "EmbeddedBackendConfig",
    "EmbeddingScorerConfig",
    "EvalConfig",
    "GateConfig",
    "GraderConfig",
    "GradingConfig",
    "GradingRule",
    "KDConfig",
    "KeyEntry",
    "KeysConfig",
    "LoraAdapterConfig",
    "ModelPrice",
    "MonitoringConfig",
    "OpenAIBackendConfig",
    "OptimConfig",
    "PricingConfig",
    "PromotionConfig",
    "RegistryConfig",
    "RemoteBackend",
    "ReplayConfig",
    "RetrainConfig",
    "RouterConfig",
    "ScorerName",
    "ServerConfig",
    "Settings",
    "TeacherLogConfig",
    "TestbedBackendConfig",
    "TriggerConfig",
    "TritonBackendConfig",
    "VLLMBackendConfig",
    "backend_config",
    "cache_dir",
    "load_settings",
]
