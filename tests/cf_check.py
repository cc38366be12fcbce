"""Run the IOOS compliance checker (``compliance-checker --test cf:1.8``) on a netCDF file, for tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def cf_report(path: Path, workdir: Path) -> dict[str, list[str]]:
    """``{"errors": [...], "warnings": [...]}`` of ``compliance-checker --test cf:1.8`` on ``path``."""
    checker = Path(sys.executable).with_name("compliance-checker")
    assert checker.exists(), "compliance-checker is missing: pip install -e '.[test]'"
    report_path = workdir / f"{path.name}.cf.json"
    proc = subprocess.run([str(checker), "--test", "cf:1.8", "-f", "json", "-o", str(report_path), str(path)],
                          capture_output=True, text=True, timeout=300)
    assert report_path.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(report_path.read_text())["cf:1.8"]

    def messages(level: str) -> list[str]:
        return [f"{item['name']}: {msg}" for item in report[level] for msg in item["msgs"]]

    return {"errors": messages("high_priorities"), "warnings": messages("medium_priorities")}
