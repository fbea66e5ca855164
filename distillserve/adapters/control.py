"""What the admin and registry APIs act on: the student's hot-swapper (when the student serves
LoRA adapters) and where a promoted version's drift baseline goes. The gateway builds one and
hands it to the routers, so they never reach into ``app.state``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from distillserve.adapters.hotswap import HotSwapper
from distillserve.protocol.errors import AdapterError


class DriftBaselines(Protocol):
    """Takes a promoted version's eval agreement with the teacher: drift is measured from it."""

    def set_drift_baseline(self, adapter: str, agreement: float | None) -> None: ...


class NoDriftBaselines:
    def set_drift_baseline(self, adapter: str, agreement: float | None) -> None:
        return None


@dataclass(frozen=True)
class StudentControl:
    """The student's adapter controls as the gateway exposes them."""

    swapper: HotSwapper | None
    baselines: DriftBaselines
    #: Model names clients already use (``auto``, the student's and teacher's): never a version name.
    reserved_names: frozenset[str]
    #: "name (kind)" of the student backend, for the error when it serves no adapters.
    student: str
    #: Set when the gateway follows the registry: promotions only load and probe here, write the
    #: registry, then await this so the gateway applies its new state before answering (every
    #: other gateway applies it at its next poll).
    registry_written: Callable[[], Awaitable[object]] | None = field(default=None)

    @property
    def follows_registry(self) -> bool:
        return self.registry_written is not None

    def require_swapper(self) -> HotSwapper:
        if self.swapper is None:
            raise AdapterError(
                f"The student backend {self.student} does not serve LoRA adapters; "
                "use student.kind vllm or embedded."
            )
        return self.swapper
