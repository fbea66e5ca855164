"""The configuration: one model per backend kind, nested distiller and router groups, legacy flat
keys that still load (with a DeprecationWarning), and how YAML and environment reach Settings."""

from __future__ import annotations

import importlib
import os
import re
import typing
import warnings
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from distillserve.config import (
    BACKEND_KINDS,
    BackendBase,
    BackendKind,
    ConfigError,
    DistillerConfig,
    EmbeddedBackendConfig,
    OpenAIBackendConfig,
    RouterConfig,
    ScorerName,
    Settings,
    TestbedBackendConfig,
    TritonBackendConfig,
    VLLMBackendConfig,
    backend_config,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DISTILLSERVE_* variable of the calling shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("DISTILLSERVE_") and name != "DISTILLSERVE_CACHE_DIR":
            monkeypatch.delenv(name)


def write_yaml(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "distillserve.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --- backends: one model per kind -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "cls"),
    [
        (
            {"kind": "embedded", "name": "s", "model_path": "testbed-student", "threads": 1},
            EmbeddedBackendConfig,
        ),
        ({"kind": "openai", "name": "t", "url": "http://x/v1", "api_key": "k"}, OpenAIBackendConfig),
        (
            {"kind": "vllm", "name": "s", "url": "http://x/v1", "vllm_args": {"max_loras": 4}},
            VLLMBackendConfig,
        ),
        ({"kind": "triton", "name": "t", "url": "http://x:8000", "triton_model": "m"}, TritonBackendConfig),
        ({"kind": "testbed", "name": "t", "token_delay_s": 0.1}, TestbedBackendConfig),
    ],
)
def test_each_kind_gets_its_own_model(data: dict[str, object], cls: type[BackendBase]) -> None:
    cfg = backend_config(data)
    assert type(cfg) is cls and cfg.kind == data["kind"]
    assert cfg.served_model == data["name"]
    assert backend_config({**data, "upstream_model": "up"}).served_model == "up"


def test_a_field_of_another_kind_is_an_error_naming_field_and_kinds() -> None:
    with pytest.raises(ValidationError) as err:
        backend_config({"kind": "openai", "name": "t", "url": "http://x/v1", "triton_model": "m"})
    message = str(err.value)
    assert "'triton_model' (a field of kind triton) does not belong to kind openai" in message
    with pytest.raises(
        ValidationError, match=r"'vllm_args' \(a field of kind vllm\) does not belong to kind embedded"
    ):
        EmbeddedBackendConfig(name="s", vllm_args={})  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="'no_such_field' does not belong to kind testbed"):
        backend_config({"kind": "testbed", "name": "t", "no_such_field": 1})


def test_backend_errors_in_settings_name_the_section(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"teacher": {"kind": "openai", "name": "t", "token_delay_s": 1}})
    with pytest.raises(
        ConfigError, match=r"(?s)teacher\.openai.*'token_delay_s' \(a field of kind testbed\)"
    ):
        load_settings(path)
    with pytest.raises(ConfigError, match="teacher"):
        load_settings(write_yaml(tmp_path, {"teacher": {"kind": "sglang", "name": "t"}}))


def test_defaults_and_the_union_alias() -> None:
    s = Settings()
    assert isinstance(s.student, EmbeddedBackendConfig) and s.student.model_path == "testbed-student"
    assert isinstance(s.teacher, TestbedBackendConfig) and s.teacher.served_model == "teacher"
    vllm = Settings(student={"kind": "vllm", "name": "student", "url": "http://v/v1"}).student
    assert isinstance(vllm, VLLMBackendConfig) and isinstance(
        vllm, OpenAIBackendConfig
    )  # vLLM is OpenAI + LoRA
    assert set(BACKEND_KINDS) == set(typing.get_args(BackendKind))
    assert all(cls.model_fields["kind"].default == kind for kind, cls in BACKEND_KINDS.items())


# --- distiller and router: nested groups, legacy flat keys ----------------------------------------
def test_nested_distiller_and_router_keys_load_from_yaml(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        {
            "distiller": {
                "seed": 3,
                "trigger": {"records": 64, "seconds": 30},
                "lora": {"rank": 8, "alpha": 16},
                "optim": {"epochs": 5, "lr_scheduler": "cosine"},
                "kd": {"alpha": 0.3, "learn_reasoning": False},
                "replay": {"ratio": 1.5, "base_path": "base.jsonl"},
                "eval": {"holdout_fraction": 0.2, "max_new_tokens": 16},
                "gate": {"promote_margin": 0.05},
                "promotion": {"via": "none", "auto": False},
            },
            "router": {"scorer": "embedding", "embedding": {"max_batch": 8}, "retrain": {"every": 20}},
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new layout warns about nothing
        s = load_settings(path)
    d = s.distiller
    assert (d.seed, d.trigger.records, d.trigger.seconds, d.trigger.min_records) == (3, 64, 30.0, 16)
    assert (d.lora.rank, d.lora.alpha, d.optim.epochs, d.optim.lr_scheduler) == (8, 16, 5, "cosine")
    assert (d.kd.alpha, d.kd.learn_reasoning, d.replay.ratio, d.replay.base_path) == (
        0.3,
        False,
        1.5,
        "base.jsonl",
    )
    assert (d.eval.holdout_fraction, d.eval.max_new_tokens, d.gate.promote_margin) == (0.2, 16, 0.05)
    assert (d.promotion.via, d.promotion.auto) == ("none", False)
    r = s.router
    assert (r.scorer, r.embedding.max_batch, r.retrain.every, r.retrain.min_examples) == (
        "embedding",
        8,
        20,
        40,
    )


def test_legacy_flat_keys_load_from_yaml_with_a_warning_naming_the_new_key(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        {
            "distiller": {"lora_rank": 8, "epochs": 5, "promote_via": "none", "eval_max_new_tokens": 12},
            "router": {"embedding_model": "/models/minilm", "cascade_statistic": "mean"},
        },
    )
    with pytest.warns(DeprecationWarning) as caught:
        s = load_settings(path)
    said = {str(w.message) for w in caught}
    assert {
        "distiller.lora_rank is now distiller.lora.rank",
        "distiller.epochs is now distiller.optim.epochs",
        "distiller.promote_via is now distiller.promotion.via",
        "distiller.eval_max_new_tokens is now distiller.eval.max_new_tokens",
        "router.embedding_model is now router.embedding.model",
        "router.cascade_statistic is now router.cascade.statistic",
    } <= said
    d, r = s.distiller, s.router
    assert (d.lora.rank, d.optim.epochs, d.promotion.via, d.eval.max_new_tokens) == (8, 5, "none", 12)
    assert d.lora.alpha == 32  # the rest of the group keeps its defaults
    assert (r.embedding.model, r.cascade.statistic) == ("/models/minilm", "mean")


def test_legacy_keys_in_python_too() -> None:
    with pytest.warns(DeprecationWarning, match="distiller.auto_promote is now distiller.promotion.auto"):
        cfg = DistillerConfig(auto_promote=False, lora={"rank": 4})  # type: ignore[call-arg]
    assert cfg.promotion.auto is False and cfg.lora.rank == 4
    with pytest.warns(DeprecationWarning, match="router.retrain_every is now router.retrain.every"):
        assert RouterConfig(retrain_every=7).retrain.every == 7  # type: ignore[call-arg]


def test_one_setting_given_both_ways_with_different_values_is_an_error() -> None:
    with pytest.raises(ValidationError, match=r"keep only distiller\.lora\.rank"):
        DistillerConfig(lora_rank=8, lora={"rank": 4})  # type: ignore[call-arg]
    with pytest.warns(DeprecationWarning):
        assert DistillerConfig(lora_rank=4, lora={"rank": 4}).lora.rank == 4  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"distiller": {"lora_rnk": 8}}, "distiller.lora_rnk"),
        ({"distiller": {"lora": {"rnk": 8}}}, "distiller.lora.rnk"),
        ({"router": {"embedding": {"modle": "x"}}}, "router.embedding.modle"),
        ({"router": {"embeding_model": "x"}}, "router.embeding_model"),
        ({"server": {"prot": 1}}, "server.prot"),
        ({"teacher_log": {"topik": "x"}}, "teacher_log.topik"),
        ({"distillr": {}}, "distillr"),
    ],
)
def test_a_key_neither_old_nor_new_fails_naming_it(
    tmp_path: Path, data: dict[str, object], where: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{re.escape(where)}\n\s+Extra inputs are not permitted"):
        load_settings(write_yaml(tmp_path, data))


def test_unknown_scorer_lists_the_known_ones() -> None:
    with pytest.raises(ValidationError) as err:
        RouterConfig(scorer="learned")  # type: ignore[arg-type]
    assert "'heuristic', 'embedding', 'random' or 'cascade'" in str(err.value)


def test_scorer_names_are_the_registered_scorers() -> None:
    """The Literal lists every scorer ``router.scoring`` can build, plus the router's own cascade."""
    from distillserve.router import scoring

    for module in scoring._BUILTIN.values():  # each built-in scorer registers itself on import
        importlib.import_module(module)
    assert set(typing.get_args(ScorerName)) == set(scoring.SCORERS) | {"cascade"}


# --- sources: environment, YAML path --------------------------------------------------------------
def test_env_vars_nested_and_legacy_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_yaml(tmp_path, {"distiller": {"lora": {"rank": 16}, "seed": 1}})
    monkeypatch.setenv("DISTILLSERVE_DISTILLER__LORA__RANK", "4")
    monkeypatch.setenv("DISTILLSERVE_ROUTER__EMBEDDING__THREADS", "2")
    monkeypatch.setenv("DISTILLSERVE_TEACHER__KIND", "openai")
    monkeypatch.setenv("DISTILLSERVE_TEACHER__NAME", "teacher")
    monkeypatch.setenv("DISTILLSERVE_TEACHER__URL", "http://teacher/v1")
    s = load_settings(path)
    assert (s.distiller.lora.rank, s.distiller.seed, s.router.embedding.threads) == (4, 1, 2)
    assert isinstance(s.teacher, OpenAIBackendConfig) and s.teacher.url == "http://teacher/v1"

    monkeypatch.setenv("DISTILLSERVE_DISTILLER__KD_ALPHA", "0.25")  # a legacy key in the environment
    with pytest.warns(DeprecationWarning, match="distiller.kd_alpha is now distiller.kd.alpha"):
        assert load_settings(path).distiller.kd.alpha == 0.25


def test_load_settings_leaves_os_environ_untouched(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, {"server": {"port": 9123}})
    before = dict(os.environ)
    assert load_settings(path).server.port == 9123
    assert dict(os.environ) == before
    assert Settings().server.port == 8000  # the file given to one call does not stick


def test_distillserve_config_env_var_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from_env = write_yaml(tmp_path, {"server": {"port": 9001}})
    monkeypatch.setenv("DISTILLSERVE_CONFIG", str(from_env))
    assert load_settings().server.port == 9001
    assert Settings().server.port == 9001
    given = tmp_path / "given.yaml"
    given.write_text(yaml.safe_dump({"server": {"port": 9002}}))
    assert load_settings(given).server.port == 9002  # an explicit path wins over the variable


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")
