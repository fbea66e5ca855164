"""The student and the teacher: one config model per backend kind, chosen by ``kind``.

A field of another kind (``triton_model`` on an ``openai`` backend) is an error that names the field,
the kind it was given to and the kind(s) it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, TypeAdapter, model_validator

from distillserve.config.strict_model import StrictModel

#: What a backend can serve beyond plain text (``protocol.schema.Feature``; config cannot import it):
#: ``tools`` (function calling), ``json_schema`` (response_format json_object / json_schema), ``vision``
#: (image content parts). The router sends a request needing more than the student serves to the teacher.
Capability = Literal["tools", "json_schema", "vision"]
ALL_CAPABILITIES: tuple[Capability, ...] = ("tools", "json_schema", "vision")


class BackendBase(StrictModel):
    """What every backend has: its name, and the model it serves."""

    kind: str
    # The name clients use to pin this backend (``model`` field), and the name listed in /v1/models.
    name: str
    # Model name to send upstream; defaults to ``name``.
    upstream_model: str | None = None
    # A local copy of the served model (HF directory, or a prepared alias ``testbed-student`` /
    # ``smollm2``): the embedded engine's weights, Triton's tokenizer, the base adapters are trained
    # on and registered under.
    model_path: str | None = None
    # As the teacher: top-k log-probabilities asked of it on every call, for token-level distillation
    # (0 = none; at most 20, OpenAI's and vLLM's default limit). Clients still get only what they asked
    # for; a teacher that refuses them (DeepSeek's reasoner) is remembered and asked without.
    top_logprobs: int = Field(default=0, ge=0, le=20)

    @property
    def served_model(self) -> str:
        return self.upstream_model or self.name

    @property
    def capabilities(self) -> frozenset[str]:
        """What this backend serves beyond text; kinds that render a text prompt serve none."""
        return frozenset()

    @model_validator(mode="before")
    @classmethod
    def _only_fields_of_this_kind(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            foreign = [key for key in data if key not in cls.model_fields]
            if foreign:
                raise ValueError(_foreign_fields_message(cls.model_fields["kind"].default, foreign))
        return data


class RemoteBackend(BackendBase):
    """A backend behind a network endpoint."""

    # openai / vllm: base URL of the upstream server (``http://host:port/v1``); triton: its HTTP endpoint.
    url: str | None = None
    connect_timeout_s: float = 5.0
    # Total time allowed for a blocking answer, and between two streamed chunks.
    timeout_s: float = 120.0


class AdapterHostFields(StrictModel):
    """A backend that serves LoRA adapters (vllm, embedded)."""

    # The LoRA adapter to make live at start (name + PEFT directory), once the engine answers.
    # Later versions arrive by hot-swap (admin API, adapter registry).
    live_adapter: str | None = None
    live_adapter_path: str | None = None
    # Seconds between checks that the engine still holds the live adapter (reloaded when it
    # restarted underneath the gateway); 0 = only when a request finds it missing.
    watch_interval_s: float = 2.0


class OpenAIBackendConfig(RemoteBackend):
    """Any OpenAI-compatible HTTP server (DeepSeek's API, vLLM, SGLang)."""

    kind: Literal["openai"] = "openai"
    api_key: SecretStr | None = None
    max_connections: int = 256
    # What the upstream serves; requests pass through unchanged. A hosted API serves all three.
    supports: list[Capability] = Field(default_factory=lambda: list(ALL_CAPABILITIES))

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.supports)


class VLLMBackendConfig(OpenAIBackendConfig, AdapterHostFields):
    """vLLM's OpenAI server plus its LoRA admin endpoints."""

    kind: Literal["vllm"] = "vllm"  # type: ignore[assignment]
    # Only what was declared: tools need vLLM's ``--enable-auto-tool-choice --tool-call-parser ...``,
    # vision a multimodal model; structured output (``json_schema``) works on any model.
    supports: list[Capability] = Field(default_factory=list)
    # Engine settings, each key a vLLM flag (max_lora_rank -> --max-lora-rank); the keys and defaults
    # are documented in ``launchers.vllm_process.VLLMEngineArgs``: max_lora_rank (16), max_loras (2),
    # max_cpu_loras, max_model_len (1024), tensor_parallel_size (1), gpu_memory_utilization, dtype,
    # cpu_kvcache_space_gib (1), extra_args; others pass through. ``distillserve vllm-serve`` and the
    # deploy files start vLLM from them; the gateway refuses adapters above max_lora_rank.
    vllm_args: dict[str, Any] = Field(default_factory=dict)
    # Every replica of the student, addressed one by one (``http://10.0.0.5:8000/v1``...): adapters
    # are loaded and probed on each before a swap, requests go round-robin. Empty: ``url`` alone.
    replica_urls: list[str] = Field(default_factory=list)
    # Resolve ``url``'s host (a Kubernetes headless service) to all its addresses, one replica
    # each, again at every adapter operation, so scaled-out replicas get the live adapter too.
    resolve_replicas: bool = False


class TritonBackendConfig(RemoteBackend):
    """Triton Inference Server with the tensor interface of its vLLM backend."""

    kind: Literal["triton"] = "triton"
    # ``url`` is the server's HTTP endpoint (health, metadata), ``triton_grpc_url`` its gRPC endpoint
    # (tokens; default: the HTTP host, port 8001), ``triton_model`` the model on the server.
    triton_model: str | None = None
    triton_grpc_url: str | None = None
    # Tensor names of the deployed model, where they differ from Triton's vLLM backend
    # (``text_input``, ``stream``, ``sampling_parameters``, ``exclude_input_in_output``, ``text_output``).
    triton_tensor_names: dict[str, str] = Field(default_factory=dict)
    # vLLM's SamplingParams default is 16 tokens; chat requests without a limit get this many.
    triton_default_max_tokens: int = Field(default=1024, ge=1)
    # Chat requests become one prompt on the gateway side. A Jinja chat template (inline, or the path
    # of a file) wins over the tokenizer's own template at ``model_path``.
    chat_template: str | None = None


class EmbeddedBackendConfig(BackendBase, AdapterHostFields):
    """In-process transformers + peft (machines without a GPU, tests)."""

    kind: Literal["embedded"] = "embedded"
    max_batch_size: int = 16
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    device: str = "auto"
    # CPU threads of the engine's forward passes (0 = torch's default). 1 where a training job shares
    # the cores: a team of threads then waits on its preempted member (measured 50x slower).
    threads: int = Field(default=0, ge=0)


class TestbedBackendConfig(BackendBase):
    """The testbed's exact oracle teacher, optionally emulating a reasoning teacher and a slow one."""

    __test__: ClassVar[bool] = False  # not a pytest test class, whatever its name
    kind: Literal["testbed"] = "testbed"
    reasoning_format: Literal["none", "think_tags", "reasoning_content"] = "none"
    first_token_delay_s: float = 0.0
    token_delay_s: float = 0.0


BACKEND_KINDS: dict[str, type[BackendBase]] = {
    "embedded": EmbeddedBackendConfig,
    "openai": OpenAIBackendConfig,
    "vllm": VLLMBackendConfig,
    "triton": TritonBackendConfig,
    "testbed": TestbedBackendConfig,
}
BackendKind = Literal["embedded", "openai", "vllm", "triton", "testbed"]

BackendConfig = Annotated[
    EmbeddedBackendConfig
    | OpenAIBackendConfig
    | VLLMBackendConfig
    | TritonBackendConfig
    | TestbedBackendConfig,
    Field(discriminator="kind"),
]

_BACKEND = TypeAdapter(BackendConfig)


def backend_config(data: Mapping[str, Any]) -> BackendConfig:
    """The backend config of ``data["kind"]`` (pydantic's ValidationError, a ValueError, if invalid)."""
    return _BACKEND.validate_python(data)


def _foreign_fields_message(kind: str, foreign: list[str]) -> str:
    parts = []
    for key in foreign:
        owners = [k for k, model in BACKEND_KINDS.items() if key in model.model_fields]
        where = f" (a field of kind {', '.join(owners)})" if owners else ""
        parts.append(f"{key!r}{where}")
    fields = ", ".join(sorted(BACKEND_KINDS[kind].model_fields))
    verb = "does" if len(parts) == 1 else "do"
    return f"{', '.join(parts)} {verb} not belong to kind {kind}; the fields of kind {kind}: {fields}"
