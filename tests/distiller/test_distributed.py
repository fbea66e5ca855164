"""The distiller on two gloo ranks under torchrun (real processes, the pre-trained testbed student,
the real broker): two ranks learn what one process learns, rank 0 alone registers and commits,
and a rank killed mid-run leaves no version and no committed offset."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distillserve.adapters.registry import AdapterRegistry
from distillserve.config import DistillerConfig
from distillserve.distiller.examples import build_examples
from distillserve.distiller.trainer import train_adapter
from distillserve.launchers.local_broker import LocalBroker
from distillserve.testbed.student_model import ensure_testbed_student
from tests.distiller.test_crash import committed_total
from tests.support.broker import create_topics, running_broker, teacher_log_config
from tests.support.distiller_worker import distiller_config, log_to_broker, wait_for, write_config
from tests.support.processes import python_module, running
from tests.support.teacher_records import teacher_records

# 64 examples, global batch 16 (8 per rank on two): 8 optimizer steps over 2 epochs.
CFG = DistillerConfig(
    lora={"rank": 4, "alpha": 8},
    optim={"epochs": 2, "batch_size": 16, "learning_rate": 1e-2},
    seed=7,
    torch_threads=1,
)
# Two ranks vs one, measured over seeds 7, 8 and 9: the largest per-tensor relative difference of
# the LoRA weights was 1.2e-5..2.0e-5 (float summation order); the final losses agreed to 1e-7 (relative).
# Another seed moves them by 1.1..1.7 (relative): 1e-3 leaves 50x margin and still tells them apart.
WEIGHT_RTOL = 1e-3
RANK_LINE = re.compile(r"distiller rank (\d+)/(\d+) \(pid (\d+)")


def torchrun(ranks: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}", *args]


def rank_pids(log: Path) -> dict[int, int]:
    return {int(m[1]): int(m[3]) for m in RANK_LINE.finditer(log.read_text(errors="replace"))}


@contextlib.contextmanager
def launched(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """torchrun and its ranks (each in a session of its own), every one stopped by PID at the end."""
    try:
        with running(cmd, log_path=log, timeout=5) as proc:
            yield proc
    finally:
        for pid in rank_pids(log).values() if log.exists() else ():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _relative_differences(a: Path, b: Path) -> dict[str, float]:
    wa, wb = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and wa
    return {k: float((wa[k] - wb[k]).norm() / wa[k].norm().clamp_min(1e-12)) for k in wa}


@pytest.fixture(scope="module")
def student() -> Path:
    return Path(ensure_testbed_student())


def test_two_ranks_learn_what_one_process_learns(student: Path, tmp_path: Path) -> None:
    examples, _ = build_examples(
        teacher_records(["reverse"], 64, seed=31, top_logprobs=1), learn_reasoning=False
    )
    (tmp_path / "examples.pkl").write_bytes(pickle.dumps(examples))
    (tmp_path / "cfg.json").write_text(CFG.model_dump_json())
    log = tmp_path / "ranks.log"
    args = [str(student), str(tmp_path / "examples.pkl"), str(tmp_path / "cfg.json"), str(tmp_path / "two")]
    with launched(torchrun(2, "-m", "tests.support.ranked_training", *args), log) as proc:
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    assert sorted(rank_pids(log)) == [0, 1] and "rank run 1 done" in log.read_text()

    torch.set_num_threads(1)
    one = train_adapter(student, examples, CFG, tmp_path / "one")
    two = (tmp_path / "two" / "outcome.json").read_text()
    assert f'"steps": {one.steps}' in two and one.steps == 8
    diffs = _relative_differences(tmp_path / "one", tmp_path / "two")
    assert max(diffs.values()) < WEIGHT_RTOL, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    # The bound tells a different training apart: another seed lands far outside it.
    train_adapter(student, examples, CFG.model_copy(update={"seed": 8}), tmp_path / "other")
    assert max(_relative_differences(tmp_path / "one", tmp_path / "other").values()) > 100 * WEIGHT_RTOL


def test_two_ranks_continue_a_parent_adapter(student: Path, tmp_path: Path) -> None:
    """The parent travels to the other rank as files: with a parent of another LoRA rank (8) than
    the config's (4), a follower that built the config's adapter could not even wrap DDP (shape
    mismatch); both sides continue the parent to the same weights."""
    examples, _ = build_examples(
        teacher_records(["reverse"], 64, seed=32, top_logprobs=1), learn_reasoning=False
    )
    parent_cfg = CFG.model_copy(update={"lora": CFG.lora.model_copy(update={"rank": 8, "alpha": 16})})
    train_adapter(student, examples[:32], parent_cfg, tmp_path / "parent")
    (tmp_path / "examples.pkl").write_bytes(pickle.dumps(examples))
    (tmp_path / "cfg.json").write_text(CFG.model_dump_json())
    log = tmp_path / "ranks.log"
    args = [str(student), str(tmp_path / "examples.pkl"), str(tmp_path / "cfg.json"), str(tmp_path / "two")]
    with launched(
        torchrun(2, "-m", "tests.support.ranked_training", *args, str(tmp_path / "parent")), log
    ) as proc:
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    torch.set_num_threads(1)
    train_adapter(student, examples, CFG, tmp_path / "one", parent_adapter=tmp_path / "parent")
    diffs = _relative_differences(tmp_path / "one", tmp_path / "two")
    assert max(diffs.values()) < WEIGHT_RTOL, sorted(diffs.items(), key=lambda kv: -kv[1])[:3]
    shapes = {
        k: tuple(v.shape) for k, v in load_file(str(tmp_path / "two" / "adapter_model.safetensors")).items()
    }
    assert 8 in next(iter(shapes.values()))  # the parent's rank, not the config's


N = 64
GROUP = DistillerConfig().group_id


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    with running_broker(tmp_path_factory.mktemp("broker")) as b:
        yield b


def _worker_config(
    broker: LocalBroker, tmp: Path, student: Path, epochs: int
) -> tuple[Path, dict, AdapterRegistry]:
    tl = teacher_log_config(broker, tmp)
    create_topics(broker, tl)
    log_to_broker(tl, teacher_records(["reverse"], N, seed=21))
    cfg = distiller_config(
        tmp,
        tl,
        base_model=str(student),
        ranks=2,
        trigger={"records": N},
        optim={"epochs": epochs, "batch_size": 16},
    )
    return write_config(tmp, cfg), cfg, AdapterRegistry(cfg["registry"]["url"], str(student))


def test_rank_zero_registers_and_commits_once(broker: LocalBroker, student: Path, tmp_path: Path) -> None:
    path, cfg, reg = _worker_config(broker, tmp_path, student, epochs=1)
    log = tmp_path / "worker.log"
    # distiller.ranks=2: the plain command relaunches itself under torchrun.
    with launched(python_module("distillserve", "distill", "--config", str(path), "--once"), log) as proc:
        assert proc.wait(timeout=400) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert sorted(rank_pids(log)) == [0, 1]
    assert text.count("rank run 1 done") == 1  # the follower trained the one run, then stopped cleanly
    assert reg.versions() == ["v1"]
    tl = cfg["teacher_log"]
    assert committed_total(broker.bootstrap_servers, GROUP, tl["topic"], tl["partitions"]) == N


def test_a_killed_rank_leaves_no_version_and_no_commit(
    broker: LocalBroker, student: Path, tmp_path: Path
) -> None:
    path, cfg, reg = _worker_config(broker, tmp_path, student, epochs=500)
    log = tmp_path / "worker.log"
    with launched(python_module("distillserve", "distill", "--config", str(path)), log) as proc:
        wait_for(lambda: "training on" in log.read_text(), 300, proc, "training to start")
        wait_for(
            lambda: log.read_text().count("it/s]") + log.read_text().count("s/it]") >= 6, 300, proc, "steps"
        )
        os.kill(rank_pids(log)[1], signal.SIGKILL)  # a follower dies mid-run
        rc = proc.wait(timeout=120)  # rank 0's collective fails; torchrun stops and reports
        ranks_left = [pid for pid in rank_pids(log).values() if _alive(pid)]
    assert rc != 0
    assert ranks_left == []
    assert reg.versions() == [] and reg.live() is None
    tl = cfg["teacher_log"]
    assert committed_total(broker.bootstrap_servers, GROUP, tl["topic"], tl["partitions"]) == 0
    staging = Path(reg.root, "staging")
    assert not staging.exists() or not list(staging.iterdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of a reaped-late child still answers kill 0; /proc says whether it runs.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False
