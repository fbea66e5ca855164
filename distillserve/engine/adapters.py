"""LoRA adapters on the embedded engine: validate, load, unload, and pick one per row.

An adapter is checked completely before peft touches the model: the path exists, it
is a PEFT LoRA adapter, and every weight fits a module of *this* base model (names
and shapes) — so a refused adapter raises ``AdapterError`` and never disturbs the
adapters already serving. Rows of one batch may use different adapters (peft's
``adapter_names=``; ``"__base__"`` = no adapter); a batch whose rows all use the same
adapter, or none, takes peft's plain path instead (see ``AdapterSet.selecting``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from distillserve.protocol.errors import AdapterError

BASE = "__base__"  # peft's name for "no adapter" in mixed batches
MIXED = "__mixed__"  # rows with different adapters: peft's ``adapter_names=`` path
_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    for name in _WEIGHT_FILES:
        f = path / name
        if f.is_file():
            try:
                if f.suffix == ".safetensors":
                    from safetensors.torch import load_file

                    return load_file(str(f))
                return torch.load(f, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise AdapterError(f"adapter weights {f} cannot be read: {exc}") from exc
    raise AdapterError(f"{path} has no adapter weights ({' or '.join(_WEIGHT_FILES)})")


def _module_shape(base: torch.nn.Module, name: str) -> tuple[int, int] | None:
    """(in_features, out_features) of the linear layer ``name`` of the base model, if any."""
    try:
        module = base.get_submodule(name)
    except AttributeError:
        return None
    module = getattr(module, "base_layer", module)  # already wrapped by peft for another adapter
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, torch.nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    return None


def check_adapter(base: torch.nn.Module, path: Path) -> dict[str, Any]:
    """Raise ``AdapterError`` unless ``path`` is a LoRA adapter that fits ``base``; return its config."""
    if not path.is_dir():
        raise AdapterError(f"adapter path {path} does not exist or is not a directory")
    cfg_file = path / "adapter_config.json"
    if not cfg_file.is_file():
        raise AdapterError(f"{path} is not a PEFT adapter (no adapter_config.json)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except ValueError as exc:
        raise AdapterError(f"{cfg_file} is not valid JSON: {exc}") from exc
    if not isinstance(cfg, dict) or cfg.get("peft_type") != "LORA":
        raise AdapterError(f"{path} is not a LoRA adapter (peft_type={cfg.get('peft_type')!r})")
    weights = _read_weights(path)
    lora = {k: v for k, v in weights.items() if ".lora_" in k}
    if not lora:
        raise AdapterError(f"{path} holds no LoRA weights")
    for key, tensor in lora.items():
        module_name, _, kind = key.removeprefix("base_model.model.").partition(".lora_")
        shape = _module_shape(base, module_name)
        if shape is None:
            raise AdapterError(
                f"adapter {path} does not fit this base model: it has no layer {module_name!r} "
                f"(trained on {cfg.get('base_model_name_or_path')!r}?)"
            )
        fan_in, fan_out = shape
        if (kind.startswith("A") and tensor.shape[-1] != fan_in) or (
            kind.startswith("B") and tensor.shape[0] != fan_out
        ):
            raise AdapterError(
                f"adapter {path} does not fit this base model: {key} has shape {tuple(tensor.shape)} "
                f"but {module_name} is {fan_in}→{fan_out} (trained on {cfg.get('base_model_name_or_path')!r}?)"
            )
    return cfg


class AdapterSet:
    """The model to call (the base, or a ``PeftModel`` around it) and the adapters loaded into it.

    Mutating methods must run while no forward pass is in flight (the engine holds its
    model lock around them).
    """

    def __init__(self, base: torch.nn.Module) -> None:
        self.base = base
        self.model: torch.nn.Module = base
        self.paths: dict[str, str] = {}
        # What the LoRA layers are set to now: None = not known (after a load or unload),
        # MIXED = enabled for ``adapter_names=``, BASE = disabled, else the one active adapter.
        self._state: str | None = None

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    def load(self, name: str, path: str) -> None:
        from peft import PeftModel

        if not name or name == BASE:
            raise AdapterError(f"invalid adapter name {name!r}")
        if name in self.paths:
            raise AdapterError(f"an adapter named {name!r} is already loaded; use a new name per version")
        check_adapter(self.base, Path(path))
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(self.base, path, adapter_name=name, is_trainable=False)
            self.model.eval()
            self._state = None
        except Exception as exc:
            self._drop(name)
            raise AdapterError(f"peft could not load adapter {path}: {exc}") from exc
        self.paths[name] = path

    def unload(self, name: str) -> None:
        if name not in self.paths:
            raise AdapterError(f"no adapter named {name!r} is loaded")
        self._drop(name)
        del self.paths[name]
        self._state = None

    def _drop(self, name: str) -> None:
        from peft import PeftModel

        if not isinstance(self.model, PeftModel) or name not in self.model.peft_config:
            return
        if len(self.model.peft_config) == 1:
            # The last adapter: take the LoRA layers out again and serve the plain base model.
            self.model = self.model.unload()
            self.base = self.model
        else:
            self.model.delete_adapter(name)

    def forward_kwargs(self, adapters: list[str | None]) -> dict[str, Any]:
        """Keyword arguments that make row ``i`` of a forward pass use ``adapters[i]``."""
        if not self.paths:
            return {}
        return {"adapter_names": [a or BASE for a in adapters]}

    @contextlib.contextmanager
    def selecting(self, adapters: list[str | None]) -> Iterator[dict[str, Any]]:
        """Set the model up so that row ``i`` uses ``adapters[i]``; yields extra forward kwargs.

        Why not always ``adapter_names=``: peft's mixed-batch path splits every LoRA layer's
        input by adapter on every call, which costs time even when all rows agree. When they
        do, the layers are switched once (disabled for all-base rows, or the one adapter made
        active) and the plain forward runs; mixed batches still get ``adapter_names=``.
        """
        if not self.paths:
            yield {}
            return
        distinct = set(adapters)
        want = MIXED if len(distinct) > 1 else (distinct.pop() or BASE)
        self._switch(want)
        yield self.forward_kwargs(adapters) if want == MIXED else {}

    def _switch(self, want: str) -> None:
        if want == self._state:
            return
        base_model = self.model.base_model  # peft's LoraModel: enables or disables its LoRA layers
        if want == BASE:
            base_model.disable_adapter_layers()
        else:
            if self._state in (None, BASE):
                base_model.enable_adapter_layers()
            if want != MIXED and self.model.active_adapter != want:
                self.model.set_adapter(want, inference_mode=True)
        self._state = want
