"""Check a LoRA adapter before any engine sees it, so a bad one is refused with a clear
reason and the live version keeps serving.

Checked, in order: the path exists; it is a PEFT LoRA adapter (``adapter_config.json`` and
readable ``adapter_model.safetensors`` / ``.bin`` weights); it was trained for the base model
the student serves, and its tensors fit that base's layers (when the base's files are
readable here); its rank (read from the weights, not only the config) is within the server's
maximum. vLLM answers a too-high rank or a corrupt file with a 500, does not notice an
adapter of another base whose shapes happen to fit, and silently *accepts* one made for a
narrower model (it copies the smaller tensors into its LoRA slots and serves garbage) —
hence these checks.

Which base an adapter belongs to: ``base_model`` in a distillserve card (``card.json`` next
to the adapter, written by the adapter registry) if there is one, else PEFT's
``base_model_name_or_path``. It matches the served base when the two name the same thing:
equal strings, the same directory, byte-identical weights in two directories (a copy), or
a hub id whose last part is the served directory's name (``HuggingFaceTB/SmolLM2-135M``
served from ``/models/SmolLM2-135M``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from distillserve.protocol.errors import AdapterError, PermissionDenied

log = logging.getLogger(__name__)

CARD_FILE = "card.json"
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True)
class AdapterInfo:
    path: Path
    rank: int
    base_model: str | None
    target_modules: tuple[str, ...]
    weights: Path


def inspect_adapter(path: str | Path) -> AdapterInfo:
    """Read what an adapter directory claims and holds; ``AdapterError`` if it is not one."""
    p = Path(path)
    if not p.exists():
        raise AdapterError(f"adapter path {str(p)!r} does not exist", param="path")
    if not p.is_dir():
        raise AdapterError(f"adapter path {str(p)!r} is not a directory", param="path")
    cfg_file = p / CONFIG_FILE
    weights = next((p / w for w in WEIGHT_FILES if (p / w).is_file()), None)
    if not cfg_file.is_file() or weights is None:
        raise AdapterError(
            f"{str(p)!r} is not a PEFT adapter: it needs {CONFIG_FILE} and one of {', '.join(WEIGHT_FILES)}",
            param="path",
        )
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{cfg_file} is not valid JSON: {exc}", param="path") from None
    if not isinstance(cfg, dict) or str(cfg.get("peft_type", "")).upper() != "LORA":
        kind = cfg.get("peft_type") if isinstance(cfg, dict) else None
        raise AdapterError(f"{str(p)!r} is not a LoRA adapter (peft_type={kind!r})", param="path")
    rank = _rank_from_weights(weights) if weights.suffix == ".safetensors" else None
    if rank is None:
        ranks = [int(cfg.get("r") or 0), *map(int, (cfg.get("rank_pattern") or {}).values())]
        rank = max(ranks)
    targets = cfg.get("target_modules") or ()
    return AdapterInfo(
        path=p.resolve(),
        rank=rank,
        base_model=_card_base(p) or cfg.get("base_model_name_or_path"),
        target_modules=tuple([targets] if isinstance(targets, str) else targets),
        weights=weights,
    )


def _rank_from_weights(weights: Path) -> int | None:
    from safetensors import safe_open  # reads only the header

    try:
        with safe_open(str(weights), framework="pt") as f:
            ranks = [f.get_slice(k).get_shape()[0] for k in f.keys() if "lora_A" in k]  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise AdapterError(f"adapter weights {weights} are unreadable: {exc}", param="path") from None
    if not ranks:
        raise AdapterError(f"adapter weights {weights} hold no LoRA tensors", param="path")
    return max(ranks)


def _card_base(p: Path) -> str | None:
    card = p / CARD_FILE
    if not card.is_file():
        return None
    try:
        base = json.loads(card.read_text()).get("base_model")
    except (OSError, ValueError, AttributeError):
        raise AdapterError(f"adapter card {card} is not valid JSON", param="path") from None
    return str(base) if base else None


def same_base(declared: str, served: str) -> bool:
    """Whether an adapter trained for ``declared`` fits the base served as ``served``."""
    if declared.rstrip("/") == served.rstrip("/"):
        return True
    d, s = Path(declared), Path(served)
    if d.is_dir() and s.is_dir():
        if d.resolve() == s.resolve():
            return True
        digest = _weights_digest(d.resolve())
        return digest is not None and digest == _weights_digest(s.resolve())
    return declared.rstrip("/").rsplit("/", 1)[-1] == served.rstrip("/").rsplit("/", 1)[-1]


def _weights_digest(model_dir: Path) -> str | None:
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    if not files:
        return None
    return _digest(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@lru_cache(maxsize=32)
def _digest(files: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in files:
        h.update(Path(name).name.encode())
        with open(name, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def _shapes(files: list[Path]) -> dict[str, list[int]]:
    from safetensors import safe_open

    out: dict[str, list[int]] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for k in st.keys():  # noqa: SIM118 - safe_open has no __iter__
                out[k] = list(st.get_slice(k).get_shape())
    return out


@lru_cache(maxsize=16)
def _base_shapes(model_dir: str, _stamp: tuple[tuple[str, int], ...]) -> dict[str, list[int]]:
    return _shapes(sorted(Path(model_dir).glob("*.safetensors")))


def check_fits_base(info: AdapterInfo, base_dir: Path) -> None:
    """Refuse an adapter whose LoRA tensors do not fit the layers of the model in ``base_dir``
    (PEFT names ``base_model.model.<layer>.lora_A.weight``: A is [rank, in], B is [out, rank])."""
    files = sorted(base_dir.glob("*.safetensors"))
    if not files or info.weights.suffix != ".safetensors":
        return  # nothing to compare with here (e.g. a .bin checkpoint); the engine still checks
    base = _base_shapes(str(base_dir), tuple((str(f), f.stat().st_mtime_ns) for f in files))
    matched = 0
    for key, shape in _shapes([info.weights]).items():
        kind = "lora_A" if ".lora_A." in key else "lora_B" if ".lora_B." in key else None
        if kind is None:
            continue
        layer = key.removeprefix("base_model.model.").split(f".{kind}.")[0]
        target = base.get(layer + ".weight")
        if target is None or len(target) != 2:
            continue
        matched += 1
        want, have = (target[1], shape[1]) if kind == "lora_A" else (target[0], shape[0])
        if want != have:
            side = "input" if kind == "lora_A" else "output"
            raise AdapterError(
                f"adapter {str(info.path)!r} does not fit the served base model: layer {layer} has "
                f"{side} size {want} there, {have} in the adapter (made for another model)",
                param="path",
            )
    if matched == 0:
        raise AdapterError(
            f"adapter {str(info.path)!r} targets no layer of the served base model {str(base_dir)!r}",
            param="path",
        )


BaseProvider = Callable[[], Awaitable[str | None]]


class AdapterValidator:
    """Refuses adapters the student cannot serve. ``served_base`` says which base model the
    engine runs (asked lazily: the engine may be down when the gateway starts); ``max_rank``
    is the engine's limit (vLLM's ``--max-lora-rank``; None = no limit)."""

    def __init__(
        self,
        served_base: BaseProvider | str | None,
        max_rank: int | None,
        *,
        also_known_as: frozenset[str] = frozenset(),
    ) -> None:
        self._served_base = served_base
        self.max_rank = max_rank
        #: Other names the config gives the served base (``student.model_path``, e.g. the alias
        #: ``testbed-student``, and the served model name): an adapter card may name it so.
        self.also_known_as = also_known_as

    async def served_base(self) -> str | None:
        if self._served_base is None or isinstance(self._served_base, str):
            return self._served_base
        return await self._served_base()

    async def check(self, path: str | Path) -> AdapterInfo:
        info = inspect_adapter(path)
        served = await self.served_base()
        if served is None:
            log.warning("the student's base model is unknown; not checking %s against it", info.path)
        elif info.base_model is None:
            raise AdapterError(
                f"adapter {str(info.path)!r} does not say which base model it was trained for "
                f"(no base_model in {CARD_FILE}, no base_model_name_or_path in {CONFIG_FILE})",
                param="path",
            )
        elif info.base_model not in self.also_known_as and not same_base(info.base_model, served):
            raise AdapterError(
                f"adapter {str(info.path)!r} was trained for base model {info.base_model!r}, "
                f"but the student serves {served!r}",
                param="path",
            )
        if served is not None and Path(served).is_dir():
            check_fits_base(info, Path(served))
        if self.max_rank is not None and info.rank > self.max_rank:
            raise AdapterError(
                f"adapter {str(info.path)!r} has LoRA rank {info.rank}, above the server's maximum of "
                f"{self.max_rank} (vLLM --max-lora-rank; raise student.vllm_args.max_lora_rank)",
                param="path",
            )
        return info


class AdapterPathForbidden(PermissionDenied):
    code = "adapter_path_forbidden"


class AdapterPathPolicy:
    """Where adapters handed to the admin API may come from: under the registry root or one of
    the configured ``admin.adapter_roots``. Local paths are compared after resolving symlinks and
    ``..`` (a link inside a root that points outside is outside); URLs (``s3://...``) by their
    normalized path. A refusal never says whether the path exists: the same status and message for
    every path outside, and nothing outside is opened."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = tuple(_normalized(r) for r in roots)

    def confine(self, path: str) -> str:
        """``path`` normalized as it was checked (what the engine must load), or ``AdapterPathForbidden``."""
        try:
            candidate = _normalized(path)
        except (ValueError, OSError):  # a NUL byte, a name too long: no path of ours either way
            candidate = None
        if candidate is not None and any(_under(candidate, root) for root in self.roots):
            return candidate
        raise AdapterPathForbidden(
            "Adapter paths must sit under the adapter registry or a directory in admin.adapter_roots.",
            param="path",
        )


def _normalized(path: str) -> str:
    protocol, sep, rest = path.partition("://")
    if sep and protocol != "file":
        return f"{protocol}://{posixpath.normpath('/' + rest).lstrip('/')}"
    return os.path.realpath(rest if sep else path)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
