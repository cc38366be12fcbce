"""Every rule that runs something records what its jobs cost (`benchmark:`), named after the rule.

Rules added later fail here until they get their line, e.g.
``benchmark: benchmark_path("my_rule", "wildcard", ...)`` (workflow/rules/common.smk).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
ACTIONS = ("script:", "shell:", "run:", "wrapper:", "notebook:")


def rule_blocks() -> dict[str, tuple[Path, str]]:
    """``rule name -> (file, text of its block)`` for every rule in the workflow's files."""
    blocks: dict[str, tuple[Path, str]] = {}
    for path in RULE_FILES:
        lines = path.read_text().splitlines()
        starts = [(i, m) for i, line in enumerate(lines) if (m := re.match(r"^(\s*)rule (\w+):", line))]
        for i, match in starts:
            indent = len(match.group(1))
            body = []
            for line in lines[i + 1:]:
                if line.strip() and len(line) - len(line.lstrip()) <= indent and not line.lstrip().startswith("#"):
                    break
                body.append(line)
            blocks[match.group(2)] = (path, "\n".join(body))
    return blocks


def test_the_workflow_has_rules_to_check():
    blocks = rule_blocks()
    assert {"train", "finetune", "predict", "evaluate", "job_costs", "all"} <= set(blocks)


def test_every_rule_with_an_action_has_a_benchmark_named_after_it():
    missing, misnamed = [], []
    for name, (path, body) in rule_blocks().items():
        if not any(re.search(rf"^\s*{re.escape(action)}", body, flags=re.MULTILINE) for action in ACTIONS):
            continue  # a target rule (all, fetch_era5_all) runs nothing
        found = re.search(r"^\s*benchmark:\s*(?:\n\s*)?benchmark_path\(\s*\"(\w+)\"", body, flags=re.MULTILINE)
        if found is None:
            missing.append(f"{path.relative_to(ROOT)}: rule {name}")
        elif found.group(1) != name:
            misnamed.append(f"rule {name} records as {found.group(1)!r}")
    assert not missing, "rules without `benchmark: benchmark_path(...)`: " + ", ".join(missing)
    assert not misnamed, misnamed
