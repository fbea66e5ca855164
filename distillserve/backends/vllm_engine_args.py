"""The student's ``vllm_args``, typed: vLLM's engine flags as one model, read by the vLLM backend
(its LoRA rank limit), the local launcher and the deploy files alike."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from distillserve.config import VLLMBackendConfig

# vLLM accepts only these values for --max-lora-rank.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class VLLMEngineArgs(BaseModel):
    """The keys of ``student.vllm_args``. Each becomes a vLLM flag (``max_lora_rank`` →
    ``--max-lora-rank``); keys not listed here pass through the same way (``true`` → a bare
    flag), so any engine argument of the vLLM version in use can be set from config."""

    model_config = ConfigDict(extra="allow")

    #: Highest LoRA rank the engine accepts; adapters above it are refused before loading.
    max_lora_rank: int = 16
    #: Adapters in one batch. A swap has the old and the new version running at once (and a
    #: canary makes three), so below 2 the new version waits for the old one's batch.
    max_loras: int = 2
    #: Adapters kept in host memory (vLLM default: ``max_loras``).
    max_cpu_loras: int | None = None
    max_model_len: int = 1024
    #: GPU only: split the model over this many GPUs.
    tensor_parallel_size: int = 1
    #: GPU only: fraction of GPU memory vLLM may use (vLLM default 0.9 when unset).
    gpu_memory_utilization: float | None = None
    dtype: str = "auto"
    #: CPU build only: KV cache size in GiB (env ``VLLM_CPU_KVCACHE_SPACE``), not a flag.
    cpu_kvcache_space_gib: int = Field(default=1, exclude=True)
    #: CPU build only: the cores vLLM's OpenMP threads are pinned to (env
    #: ``VLLM_CPU_OMP_THREADS_BIND``, e.g. ``"0"`` or ``"0-3"``; unset: vLLM's ``auto``, every core
    #: of a NUMA node). Pin it away from ``distiller.cpu_affinity`` when both share a machine.
    cpu_omp_threads_bind: str | None = Field(default=None, exclude=True)
    #: Raw flags appended as they are.
    extra_args: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("max_lora_rank")
    @classmethod
    def _rank_supported(cls, v: int) -> int:
        if v not in VLLM_LORA_RANKS:
            raise ValueError(f"vLLM accepts max_lora_rank in {VLLM_LORA_RANKS}, got {v}")
        return v

    @classmethod
    def of(cls, cfg: VLLMBackendConfig) -> VLLMEngineArgs:
        return cls.model_validate(cfg.vllm_args)

    def flags(self) -> list[str]:
        """vLLM command-line flags for these settings (no model, host or port)."""
        out = ["--enable-lora"]
        for key, value in self.model_dump(exclude_none=True).items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                out.append(flag)
            elif value is False:
                out.append("--no-" + key.replace("_", "-"))
            elif isinstance(value, list | tuple):
                out += [flag, *map(str, value)]
            else:
                out += [flag, str(value)]
        return out + list(self.extra_args)
