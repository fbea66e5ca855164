"""The whole configuration and how it is loaded.

Sources, highest priority first: explicit keyword arguments, environment variables
(``DISTILLSERVE_`` prefix, ``__`` between nested keys, e.g. ``DISTILLSERVE_TEACHER__URL``,
``DISTILLSERVE_DISTILLER__LORA__RANK``), the YAML file given to ``load_settings`` (``--config``) or
else named by ``DISTILLSERVE_CONFIG``, then the defaults. The defaults are the all-local embedded
setup: embedded student on the testbed model, testbed teacher, no network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from distillserve.config.admin import AdminConfig
from distillserve.config.backends import (
    BackendConfig,
    EmbeddedBackendConfig,
    TestbedBackendConfig,
)
from distillserve.config.distiller import DistillerConfig
from distillserve.config.grading import GradingConfig
from distillserve.config.keys import KeysConfig
from distillserve.config.monitoring import MonitoringConfig
from distillserve.config.pricing import PricingConfig
from distillserve.config.registry import RegistryConfig
from distillserve.config.router import RouterConfig
from distillserve.config.server import ServerConfig
from distillserve.config.teacher_log import TeacherLogConfig

CONFIG_ENV = "DISTILLSERVE_CONFIG"

# The YAML file of the Settings being constructed right now. pydantic-settings asks for the sources
# in a classmethod, which cannot see the instance's arguments; a context variable carries the path
# there for the length of one construction (thread- and task-safe), and the process environment
# stays untouched.
_CONFIG_FILE: ContextVar[Path | None] = ContextVar("distillserve_config_file", default=None)


def _default_student() -> BackendConfig:
    return EmbeddedBackendConfig(name="student", model_path="testbed-student")


def _default_teacher() -> BackendConfig:
    return TestbedBackendConfig(name="teacher")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DISTILLSERVE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    server: ServerConfig = Field(default_factory=ServerConfig)
    student: BackendConfig = Field(default_factory=_default_student)
    teacher: BackendConfig = Field(default_factory=_default_teacher)
    router: RouterConfig = Field(default_factory=RouterConfig)
    teacher_log: TeacherLogConfig = Field(default_factory=TeacherLogConfig)
    distiller: DistillerConfig = Field(default_factory=DistillerConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    keys: KeysConfig = Field(default_factory=KeysConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)

    def __init__(self, _config_file: str | Path | None = None, **values: Any) -> None:
        """``_config_file``: a YAML file read below the environment (else ``$DISTILLSERVE_CONFIG``)."""
        with _reading(Path(_config_file) if _config_file is not None else None):
            super().__init__(**values)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_path = _CONFIG_FILE.get() or os.environ.get(CONFIG_ENV)
        if yaml_path:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)


@contextmanager
def _reading(path: Path | None) -> Iterator[None]:
    token = _CONFIG_FILE.set(path)
    try:
        yield
    finally:
        _CONFIG_FILE.reset(token)


class ConfigError(ValueError):
    """The configuration file or environment is invalid; the message says where."""


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (YAML) plus the environment, with clear errors."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return Settings(path, **overrides)
    except Exception as exc:  # pydantic's ValidationError already names each field
        raise ConfigError(f"invalid configuration: {exc}") from exc
