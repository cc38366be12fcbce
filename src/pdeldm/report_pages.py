"""HTML pages of the Snakemake report that are not figures: the data and the experiment.

Snakemake's report shows PNG and HTML results inline and offers every other file as a download,
so what a reviewer should read without downloading (the training store's facts, the summary
table, the configuration and software versions of the run) is written as small HTML pages.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pdeldm.io import atomic_output
from pdeldm.provenance import git_commit, software_versions

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _write(out_html: str | os.PathLike[str], text: str) -> None:
    with atomic_output(out_html) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _table(rows: list[list[str]], header: list[str] | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{cell}</th>" for cell in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def markdown_table_to_html(markdown: str) -> str:
    """A pipe table (as written by the summary table stage) as an HTML table; **bold** kept."""
    lines = [line.strip() for line in markdown.splitlines() if line.strip().startswith("|")]
    if not lines:
        return ""

    def cells(line: str) -> list[str]:
        escaped = [html.escape(cell.strip()) for cell in line.strip("|").split("|")]
        return [re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", cell) for cell in escaped]

    rows = [cells(line) for line in lines if not re.fullmatch(r"\|[\s:|-]+\|", line)]
    return _table(rows[1:], header=rows[0])


def write_data_page(meta_json: str | os.PathLike[str], out_html: str | os.PathLike[str],
                    diagnostics_json: str | os.PathLike[str] | None = None) -> None:
    """Facts of the training store (grids, predictors, split) and, for the twin, its diagnostics."""
    meta = json.loads(Path(meta_json).read_text())
    rows = [
        ["fine grid (cells)", " × ".join(map(str, meta.get("shape", [])))],
        ["coarse grid (cells)", " × ".join(map(str, meta.get("coarse_shape", [])))],
        ["grid factor", str(meta.get("factor"))],
        ["fine grid spacing (km)", f"{meta['dx_m'] / 1000:.2f} × {meta['dy_m'] / 1000:.2f}" if "dx_m" in meta else "?"],
        ["coarse predictors", ", ".join(meta.get("predictors", []))],
        ["static fields", ", ".join(meta.get("static_vars", []))],
        ["regridding", str(meta.get("regrid_method"))],
        ["time step", str(meta.get("time_step"))],
    ]
    for block, (start, end) in meta.get("split_dates", {}).items():
        first, last = meta.get("splits", {}).get(block, [0, 0])
        rows.append([f"{block} period", f"{start} … {end} ({last - first} times)"])
    body = "<h2>Training store</h2>" + _table([[html.escape(k), html.escape(v)] for k, v in rows])
    if diagnostics_json:
        diagnostics = json.loads(Path(diagnostics_json).read_text())
        body += ("<h2>Embedded twin: diagnostics</h2><pre>"
                 + html.escape(yaml.safe_dump(diagnostics, sort_keys=False)) + "</pre>")
    _write(out_html, _page("Data", body))


def write_experiment_page(summary_md: str | os.PathLike[str], cfg: Mapping[str, Any],
                          out_html: str | os.PathLike[str], repository: str | os.PathLike[str] = ".") -> None:
    """The summary table, the software versions and commit, and the full configuration of the run."""
    summary = Path(summary_md).read_text()
    note = "".join(f"<p>{html.escape(line)}</p>" for line in summary.splitlines()
                   if line.strip() and not line.strip().startswith("|"))
    versions = software_versions()
    body = (
        "<h2>Scores over the test period</h2>" + markdown_table_to_html(summary) + note
        + "<h2>Software</h2>"
        + _table([["git commit", html.escape(git_commit(repository))]]
                 + [[html.escape(k), html.escape(v)] for k, v in versions.items()], header=["package", "version"])
        + "<h2>Configuration (merged and validated, defaults filled in)</h2><pre>"
        + html.escape(yaml.safe_dump(dict(cfg), sort_keys=False)) + "</pre>"
    )
    _write(out_html, _page("Experiment: what ran and what came out", body))


#: Run totals shown on the costs page, with their meaning (keys of ``jobs_summary.json``).
_RUN_TOTALS = [
    ("jobs", "jobs run"),
    ("cores", "cores of the run (0: allotted by a scheduler)"),
    ("span_s", "wall time of the run (s), Snakemake start to the collection of the records"),
    ("job_wall_s", "wall time summed over the jobs (s)"),
    ("job_cpu_s", "CPU time summed over the jobs (s)"),
    ("outside_stage_share", "share of the run's wall time in which no stage code ran"),
    ("outside_model_share", "the same, counting the stages' library imports as outside"),
    ("import_s", "seconds the stages spent importing libraries, summed over the jobs"),
    ("overhead_share_of_job_time", "share of the jobs' wall time outside their stage code"),
    ("core_utilisation", "CPU time over wall time × cores"),
    ("critical_alone_s", "time in which a single job ran (s)"),
    ("critical_alone_cpu_per_s", "cores that lone job used on average"),
    ("max_rss_mib", "largest peak memory of a job (MiB)"),
]


def write_costs_page(jobs_csv: str | os.PathLike[str], summary_json: str | os.PathLike[str],
                     out_html: str | os.PathLike[str]) -> None:
    """Where the time goes: the run's totals, the cost per rule and every job's record."""
    import pandas as pd

    from pdeldm.costs import per_rule

    jobs = pd.read_csv(jobs_csv)
    summary = json.loads(Path(summary_json).read_text())

    def number(value: Any, digits: int = 1) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "–"
        return f"{value:,.{digits}f}" if isinstance(value, float) else html.escape(str(value))

    totals = [[html.escape(label), number(summary.get(key), 3 if "share" in key or "util" in key else 1)]
              for key, label in _RUN_TOTALS if key in summary]
    columns = ["jobs", "wall_s", "stage_s", "import_s", "overhead_s", "cpu_s", "max_rss_mib", "threads_max"]
    rules = per_rule(jobs) if len(jobs) else pd.DataFrame(columns=columns)
    rule_rows = [[html.escape(str(rule))] + [number(row[c], 0 if c in ("jobs", "threads_max") else 1) for c in columns]
                 for rule, row in rules.iterrows()]
    job_columns = ["wall_s", "stage_s", "import_s", "cpu_s", "max_rss_mib", "threads_max"]
    job_rows = [[html.escape(f"{row['rule']} {row['job']}".strip())]
                + [number(row[c], 0 if c == "threads_max" else 1) for c in job_columns]
                for _, row in jobs.sort_values("wall_s", ascending=False).iterrows()]
    body = (
        "<h2>The run</h2>" + _table(totals)
        + "<h2>Per rule (seconds, MiB)</h2>" + _table(rule_rows, header=["rule", *columns])
        + "<h2>Every job with a record (seconds, MiB), longest first</h2>"
        + _table(job_rows, header=["job", *job_columns])
    )
    _write(out_html, _page("Where the time goes", body))
