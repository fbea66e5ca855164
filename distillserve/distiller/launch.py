"""``distiller.ranks`` > 1: ``distillserve distill`` re-runs itself under torchrun, one process per rank.

The same as ``torchrun --standalone --nproc-per-node N -m distillserve distill ...`` typed by hand
(which also works, and is how several nodes are launched: torchrun's own ``--nnodes`` and
rendezvous options). Under a launcher the launcher's rank count wins over the config.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

from distillserve.distiller.ranks import launched_ranks

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def under_launcher() -> bool:
    return "WORLD_SIZE" in os.environ


def torchrun_argv(ranks: int, cli_args: list[str]) -> list[str]:
    """The command that runs ``distillserve <cli_args>`` on ``ranks`` local processes; the
    rendezvous is torchrun's standalone one (loopback, a free port)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={ranks}",
        "-m",
        "distillserve",
        *cli_args,
    ]


def relaunch_with_ranks(ranks: int) -> None:
    """Replace this process with torchrun over ``ranks`` copies of this command, when asked for
    several ranks and not already launched; otherwise return and run here."""
    if under_launcher():
        launched = launched_ranks().world_size
        if launched != ranks:
            log.warning(
                "distiller.ranks=%d, but the launcher started %d ranks: using %d", ranks, launched, launched
            )
        return
    if ranks > 1:
        argv = torchrun_argv(ranks, sys.argv[1:])
        log.info("starting %d distiller ranks: %s", ranks, " ".join(argv))
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)


def die_with_launcher() -> None:
    """torchrun starts each rank in a session of its own: if torchrun itself is killed (SIGKILL
    gives it no chance to stop them), the kernel sends the rank SIGTERM instead of leaving an
    orphan that keeps consuming (Linux; elsewhere a no-op)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the launcher died before the line above ran
        os.kill(os.getpid(), signal.SIGTERM)
