"""One export, end to end: check the source, write the format, measure it, card it, publish it.

Everything is built in a private temporary folder that is removed whatever happens; the registry
(and ``--out``) only ever receive a finished export (``publish``). The source's greedy answers are
kept per version, so exporting several formats in one process (the bench) generates them once.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillserve.adapters.registry import AdapterRegistry, sha256_file
from distillserve.distiller.examples import TrainingExample
from distillserve.export.accuracy import measure
from distillserve.export.card import ExportCard
from distillserve.export.formats import ExportFormat, get_format
from distillserve.export.merged import write_merged
from distillserve.export.publish import copy_out, disk_full_is_clear, publish
from distillserve.export.runtimes import TransformersRunner
from distillserve.export.source import ExportSource, fetch_source, regression_set
from distillserve.grading import GraderSelection

log = logging.getLogger(__name__)


@dataclass
class ExportRequest:
    version: str
    format: str
    quant: str | None = None  # None: the format's default (lossless)
    out: Path | None = None
    regression: Path | None = None  # a JSONL file instead of the version's own regression set
    limit: int | None = None  # measure on the first N items only
    max_new_tokens: int = 48  # as the distiller's evaluation


@dataclass
class Exporter:
    registry: AdapterRegistry
    workdir: Path | None = None  # where temporary folders go (default: the system's)
    # Keep each version's merged fp32 model, f16 GGUF and fp32 ONNX between exports until
    # ``close()``: several quants of one version (the bench) convert once.
    keep_intermediates: bool = False
    # How answers are graded against the references (default: exact text, the distiller's default).
    graders: GraderSelection | None = None
    _scratch: Path | None = None
    _source_answers: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def export(self, req: ExportRequest) -> tuple[ExportCard, str]:
        """Make, measure and publish one export; returns its card and its registry path."""
        fmt = get_format(req.format)
        work = Path(tempfile.mkdtemp(prefix="distillserve-export-", dir=self.workdir))
        try:
            with disk_full_is_clear(str(work)):
                return self._export(req, fmt, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _export(self, req: ExportRequest, fmt: ExportFormat, work: Path) -> tuple[ExportCard, str]:
        source = fetch_source(self.registry, req.version, work)
        quant = req.quant or fmt.default_quant(source.base_dir)
        fmt.check_quant(quant)
        fmt.check_model(source.base_dir)
        items, described = regression_set(self.registry, source.card, req.regression, req.limit)
        started = time.perf_counter()
        built = self._write(source, fmt, quant, work)
        written = time.perf_counter() - started
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source.base_dir)
        source_answers = self.source_answers(source, items, described, req.max_new_tokens, tokenizer)
        runner = fmt.runner(built, tokenizer, req.max_new_tokens)
        try:
            report, _ = measure(runner, items, source_answers, described, self.graders)
        finally:
            runner.close()
        card = ExportCard(
            source_version=req.version,
            base_model=source.card.base_model,
            format=fmt.name,  # type: ignore[arg-type]
            quant=quant,
            files=file_hashes(built),
            size_bytes=folder_size(built),
            accuracy=report,
            tools=fmt.tools(),
            seconds={
                "export": round(written, 2),
                "measure": round(time.perf_counter() - started - written, 2),
            },
        )
        final = publish(self.registry, built, card)
        if req.out is not None:
            copy_out(built, card, req.out)
        log.info("exported %s as %s to %s (agreement %.3f)", req.version, card.name, final, report.agreement)
        return card, final

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _scratch_for(self, version: str, work: Path) -> Path:
        if not self.keep_intermediates:
            folder = work / "scratch"
        else:
            if self._scratch is None:
                self._scratch = Path(
                    tempfile.mkdtemp(prefix="distillserve-export-scratch-", dir=self.workdir)
                )
            folder = self._scratch / version
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _write(self, source: ExportSource, fmt: ExportFormat, quant: str, work: Path) -> Path:
        built = work / "export"
        if fmt.name == "merged":
            return write_merged(source.base_dir, source.adapter_dir, built, quant)
        scratch = self._scratch_for(source.version, work)
        merged = scratch / "merged-f32"
        if not merged.is_dir():
            part = scratch / "merged-f32.part"
            shutil.rmtree(part, ignore_errors=True)
            write_merged(source.base_dir, source.adapter_dir, part, "f32").rename(merged)
        fmt.write(merged, built, quant, scratch)
        return built

    def source_answers(
        self,
        source: ExportSource,
        items: Sequence[TrainingExample],
        described: dict[str, Any],
        max_new_tokens: int,
        tokenizer: Any,
    ) -> list[str]:
        """Greedy answers of the adapter on its base (transformers + peft, fp32): the reference."""
        key = (
            source.version,
            hashlib.sha256(repr((described, len(items), max_new_tokens)).encode()).hexdigest(),
        )
        if key not in self._source_answers:
            runner = TransformersRunner(
                source.base_dir, tokenizer, max_new_tokens, adapter_dir=source.adapter_dir
            )
            self._source_answers[key] = runner.answers(items)
        return self._source_answers[key]


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        f.relative_to(folder).as_posix(): sha256_file(f) for f in sorted(folder.rglob("*")) if f.is_file()
    }


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
