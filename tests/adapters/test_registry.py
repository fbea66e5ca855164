"""Adapter registry and promotion: atomic versions, one live per base, refusals leave live unchanged."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import orjson
import pytest

from distillserve.adapters.promotion import NoActivator, Promoter
from distillserve.adapters.registry import (
    AdapterCard,
    AdapterRegistry,
    AdapterRejected,
    RegistryError,
    VersionNotFound,
    diff_eval,
)
from distillserve.distiller.gate import decide
from tests.support.tiny_student import build_tiny_student


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real PEFT LoRA adapter of the tiny student (untrained: the registry does not care)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = build_tiny_student(tmp_path_factory.mktemp("base"))
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


def _card(**kw) -> AdapterCard:
    ev = kw.pop("eval", {"candidate": {"heldout": {"exact_match": 0.5, "n": 10}}, "live": {}})
    return AdapterCard(base_model="tiny", eval=ev, **kw)


class RecordingActivator:
    """Stands in for the student engine; fails on demand to inject a swap refusal."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.baselines: dict[str, float | None] = {}
        self.fail = False

    async def activate(self, name: str, path: str, baseline: float | None = None) -> None:
        if self.fail:
            raise RuntimeError("engine refused the adapter")
        assert Path(path, "adapter_model.safetensors").is_file()
        self.calls.append(("activate", name))
        self.baselines[name] = baseline

    async def set_canary(self, name, path, share, baseline=None) -> None:
        self.calls.append(("canary", name, str(share)))
        self.baselines[name] = baseline


def test_versions_appear_whole_and_in_order(tmp_path: Path, adapter_dir: Path) -> None:
    reg = AdapterRegistry(str(tmp_path), "tiny")
    assert reg.versions() == [] and reg.live() is None
    a, b = reg.register(adapter_dir, _card()), reg.register(adapter_dir, _card())
    assert (a.version, b.version) == ("v1", "v2") and reg.versions() == ["v1", "v2"]
    card = reg.card("v2")
    assert card.status == "candidate" and set(card.files) == {
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    # What a killed writer leaves (a staging folder; a version folder with no card) is never a version.
    Path(reg.root, "staging", "v3.dead").mkdir()
    shutil.copytree(adapter_dir, Path(reg.root, "versions", "v9"))
    assert reg.versions() == ["v1", "v2"]
    with pytest.raises(VersionNotFound):
        reg.card("v9")
    assert reg.clean_staging() == 1 and reg.versions() == ["v1", "v2"]


def test_register_refuses_incomplete_adapters_and_other_bases(tmp_path: Path, adapter_dir: Path) -> None:
    reg = AdapterRegistry(str(tmp_path / "r"), "tiny")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(adapter_dir / "adapter_config.json", partial)
    with pytest.raises(AdapterRejected, match=r"lacks adapter_model\.safetensors"):
        reg.register(partial, _card())
    with pytest.raises(AdapterRejected, match="for base"):
        reg.register(adapter_dir, AdapterCard(base_model="other"))
    assert reg.versions() == []


def test_fsspec_memory_registry(adapter_dir: Path) -> None:
    reg = AdapterRegistry("memory://distillserve-test-registry", "tiny")
    v = reg.register(adapter_dir, _card()).version
    assert reg.versions() == [v] and reg.validate(v).version == v
    assert reg.local_path(v).startswith("memory://")


def test_promote_rollback_and_exactly_one_live(tmp_path: Path, adapter_dir: Path) -> None:
    reg = AdapterRegistry(str(tmp_path), "tiny")
    reg.register(adapter_dir, _card())
    reg.register(adapter_dir, _card(eval={"candidate": {"heldout": {"exact_match": 0.8, "n": 10}}}))
    reg.register(adapter_dir, _card(eval={}))
    act = RecordingActivator()
    promoter = Promoter(reg, act)
    asyncio.run(promoter.promote("v1", by="test"))
    asyncio.run(promoter.promote("v2", by="test"))
    statuses = {c.version: c.status for c in reg.cards()}
    assert statuses == {"v1": "retired", "v2": "live", "v3": "candidate"}
    assert act.calls == [("activate", "student@v1"), ("activate", "student@v2")]
    assert asyncio.run(promoter.rollback(by="test")) == "v1"
    assert reg.live() == "v1" and [c.status for c in reg.cards()].count("live") == 1
    assert act.calls[-1] == ("activate", "student@v1")
    # Every transition is logged in state.json and mirrored on the cards.
    log = [(t.version, t.to) for t in reg.state().log]
    assert log == [("v1", "live"), ("v2", "live"), ("v1", "retired"), ("v1", "live"), ("v2", "retired")]
    assert [t.to for t in reg.card("v2").history] == ["candidate", "live", "retired"]
    # Each version's held-out agreement went along as the drift baseline; none when never evaluated.
    asyncio.run(promoter.canary("v3", 0.1, by="test"))
    assert act.baselines == {"student@v1": 0.5, "student@v2": 0.8, "student@v3": None}
    asyncio.run(promoter.canary(None, 0.0, by="test"))


def test_refused_promotions_leave_live_unchanged(tmp_path: Path, adapter_dir: Path) -> None:
    reg = AdapterRegistry(str(tmp_path), "tiny")
    for _ in range(4):
        reg.register(adapter_dir, _card())
    act = RecordingActivator()
    promoter = Promoter(reg, act)
    asyncio.run(promoter.promote("v1", by="test"))
    # Corrupt weights: the checksum on the card no longer matches.
    weights = Path(reg.version_path("v2"), "adapter_model.safetensors")
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")
    with pytest.raises(AdapterRejected, match="checksum"):
        asyncio.run(promoter.promote("v2", by="test"))
    # A card that says another base.
    card_path = Path(reg.version_path("v3"), "card.json")
    card = orjson.loads(card_path.read_bytes())
    card_path.write_bytes(orjson.dumps({**card, "base_model": "some-other-base"}))
    with pytest.raises(AdapterRejected, match="trained for 'some-other-base'"):
        asyncio.run(promoter.promote("v3", by="test"))
    # The engine itself refuses.
    act.fail = True
    with pytest.raises(AdapterRejected, match="engine refused"):
        asyncio.run(promoter.promote("v4", by="test"))
    with pytest.raises(VersionNotFound):
        asyncio.run(promoter.promote("v99", by="test"))
    assert reg.live() == "v1" and act.calls == [("activate", "student@v1")]
    assert {c.version: c.status for c in reg.cards()} == {
        "v1": "live",
        "v2": "candidate",
        "v3": "candidate",
        "v4": "candidate",
    }


def test_canary_share_and_its_end(tmp_path: Path, adapter_dir: Path) -> None:
    reg = AdapterRegistry(str(tmp_path), "tiny")
    reg.register(adapter_dir, _card())
    reg.register(adapter_dir, _card())
    act = RecordingActivator()
    promoter = Promoter(reg, act)
    asyncio.run(promoter.promote("v1", by="test"))
    asyncio.run(promoter.canary("v2", 0.25, by="test"))
    st = reg.state()
    assert (st.live, st.canary, st.canary_share) == ("v1", "v2", 0.25) and reg.card("v2").status == "canary"
    with pytest.raises(RegistryError, match="already live"):
        asyncio.run(promoter.canary("v1", 0.5, by="test"))
    with pytest.raises(RegistryError, match="share"):
        reg.mark_canary("v2", 1.5, by="test")
    asyncio.run(promoter.promote("v2", by="test"))  # a canary that is promoted stops being a canary
    st = reg.state()
    assert (st.live, st.canary, st.canary_share) == ("v2", None, 0.0)
    assert act.calls == [
        ("activate", "student@v1"),
        ("canary", "student@v2", "0.25"),
        ("activate", "student@v2"),
    ]


def test_rollback_with_no_history_is_refused(tmp_path: Path, adapter_dir: Path) -> None:
    reg = AdapterRegistry(str(tmp_path), "tiny")
    reg.register(adapter_dir, _card())
    promoter = Promoter(reg, NoActivator())
    with pytest.raises(RegistryError, match="nothing to roll back"):
        asyncio.run(promoter.rollback(by="test"))
    asyncio.run(promoter.promote("v1", by="test"))
    with pytest.raises(RegistryError, match="nothing to roll back"):
        asyncio.run(promoter.rollback(by="test"))
    assert reg.live() == "v1"


def test_diff_of_two_versions(tmp_path: Path, adapter_dir: Path) -> None:
    reg = AdapterRegistry(str(tmp_path), "tiny")
    reg.register(adapter_dir, _card(eval={"candidate": {"heldout": {"exact_match": 0.2, "n": 5}}}))
    reg.register(
        adapter_dir,
        _card(
            eval={
                "candidate": {
                    "heldout": {"exact_match": 0.6, "n": 5},
                    "regression": {"exact_match": 0.9, "n": 9},
                }
            }
        ),
    )
    d = diff_eval(reg.card("v1"), reg.card("v2"))
    assert d["sets"]["heldout"] == {"a": 0.2, "b": 0.6, "delta": 0.4}
    assert d["sets"]["regression"] == {"a": None, "b": 0.9, "delta": None}


def _ev(new: tuple[float, float], reg: tuple[float, float], past: tuple[float, float] | None = None):
    def s(x: float) -> dict[str, float | int]:
        return {"exact_match": x, "n": 20}

    cand = {"heldout": s(new[0]), "regression": s(reg[0])}
    live = {"heldout": s(new[1]), "regression": s(reg[1])}
    if past:
        cand["past_heldout"], live["past_heldout"] = s(past[0]), s(past[1])
    return {"candidate": cand, "live": live}


def test_gate_promotes_only_a_clear_gain_without_regression() -> None:
    kw = {"promote_margin": 0.05, "max_regression": 0.02}
    assert decide(_ev((0.6, 0.0), (0.9, 0.9)), **kw).promote
    small = decide(_ev((0.03, 0.0), (0.9, 0.9)), **kw)
    assert not small.promote and "below the margin" in small.reasons[0]
    regressed = decide(_ev((0.6, 0.0), (0.8, 0.9)), **kw)
    assert not regressed.promote and regressed.regressions == {"regression": 0.1}
    forgot = decide(_ev((0.6, 0.0), (0.9, 0.9), past=(0.1, 0.7)), **kw)
    assert not forgot.promote and "past_heldout fell by 0.600" in forgot.reasons[0]
    empty = decide({"candidate": {}, "live": {}}, **kw)
    assert not empty.promote and "no held-out" in empty.reasons[0]


def test_a_version_name_never_reaches_outside_versions(tmp_path: Path, adapter_dir: Path) -> None:
    reg = AdapterRegistry(str(tmp_path), "tiny")
    reg.register(adapter_dir, _card())
    # A card one level above versions/ (what `GET /admin/registry/versions/..` would have read).
    shutil.copy(Path(reg.version_path("v1"), "card.json"), Path(reg.root, "card.json"))
    for name in ("..", "../v1", "v1/..", "", "latest"):
        with pytest.raises(VersionNotFound):
            reg.card(name)
        with pytest.raises(VersionNotFound):
            reg.version_path(name)
