"""End-of-run outputs: --affinity-json, the --csv companions, the section in
the --html report, the CI checks and the console summary.

Each file is written whole or not at all (files.write_text: a temporary
file beside it, renamed when complete). One that cannot be written (a
folder, a full disk) is reported once, in one line, and the others are
still written."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..core import summary
from ..core.schema import SummaryDoc, UserRow
from ..files import OutputFileError, write_text
from ..report import render
from ..report.timeline import TimelinePoint
from .options import AffinityOptions

logger = logging.getLogger("lambda_affinity")
console = logging.getLogger("locust.stats_logger")  # Locust's own channel for its end-of-run tables

CHECK_EXIT_CODE = 3  # locust-plugins' convention for a failed check
RATES_LINE_MAX_USERS = 50


@dataclass
class RunReport:
    """What a finished run produced, for the console summary."""

    doc: SummaryDoc
    rows: list[UserRow]
    failures: list[str] = field(default_factory=list)
    passes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # workers lost, the emulator's own cap hit
    written: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.failures)


def _write(path: str, text: str, written: list[str]) -> None:
    try:
        write_text(path, text)
    except OutputFileError as exc:
        logger.error("lambda-affinity: %s; not written", exc)
        return
    written.append(path)


def write_outputs(
    doc: SummaryDoc,
    rows: list[UserRow],
    options: AffinityOptions,
    warnings: Iterable[str] = (),
    points: Sequence[TimelinePoint] = (),
) -> RunReport:
    """Evaluate the checks and write every file the options ask for; the
    --html section charts the run's time series `points`."""
    failures, passes = summary.evaluate_checks(doc, options.thresholds())
    report = RunReport(doc, rows, failures, passes, list(warnings))
    if options.affinity_json:
        _write(options.affinity_json, json.dumps(doc, indent=1) + "\n", report.written)
    if options.csv_prefix:
        _write(f"{options.csv_prefix}_affinity.csv", render.rows_csv(rows), report.written)
        _write(f"{options.csv_prefix}_affinity_summary.csv", render.summary_csv(doc), report.written)
        endpoints = doc.get("per_endpoint")
        if endpoints:
            _write(f"{options.csv_prefix}_affinity_endpoints.csv", render.endpoints_csv(endpoints), report.written)
    html_file = options.html_file
    if html_file and os.path.isfile(html_file):
        # Locust wrote its report just before `quitting`; add our section to it.
        try:
            with open(html_file, encoding="utf-8") as fh:
                page = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            logger.error("lambda-affinity: %s: cannot read it to add the affinity section: %s", html_file, exc)
            return report
        section = render.render_html_section(doc, report.warnings + failures + passes, points)
        _write(html_file, render.inject_html_section(page, section), report.written)
    return report


def print_report(report: RunReport, late_warnings: Iterable[str] = ()) -> None:
    """After Locust's own tables: the affinity table, the seed's rates line, checks."""
    console.info("")
    for line in render.render_table(report.doc).splitlines():
        console.info(line)
    if 0 < report.doc["users"] <= RATES_LINE_MAX_USERS:  # rows again only when the line is short
        console.info(render.rates_line(report.rows))
    for path in report.written:
        console.info(f"affinity: wrote {path}")
    for message in [*report.warnings, *late_warnings]:
        logger.warning(message)
    for message in report.passes:
        console.info(message)
    for message in report.failures:
        logger.error(message)
    console.info("")
