"""The stage dispatch (`pdeldm.stages`) and the contract between the rules and the stage functions.

A rule's named inputs, outputs and params become the keyword arguments of the stage function
registered under its name (or its ``params.stage``): these tests call the dispatch with a mocked
``snakemake`` object, and check every rule of the workflow against its function's signature, so
that a renamed argument fails here rather than in the middle of a run.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake.io import is_flagged
from snakemake.iocontainers import Log, Namedlist, Params

from pdeldm import stages

ROOT = Path(__file__).resolve().parents[1]


def _namedlist(cls: type = Namedlist, **items: object) -> Namedlist:
    named = cls()
    for name, value in items.items():
        named.append(value)
        named._add_name(name)
    return named


def _mock_snakemake(tmp_path: Path, rule: str, *, inputs: dict, outputs: dict, params: dict,
                    wildcards: dict | None = None, log: str | None = None) -> SimpleNamespace:
    """What `script:` hands to `workflow/scripts/stage.py`, with the parts the dispatch reads."""
    return SimpleNamespace(
        rule=rule, input=_namedlist(**inputs), output=_namedlist(**outputs), params=_namedlist(Params, **params),
        wildcards=_namedlist(**(wildcards or {})), log=Log([log] if log else []), threads=1,
        resources=_namedlist(shared_cores=0),
        config={"paths": {"logs": str(tmp_path / "logs"), "resources": str(tmp_path / "resources")}},
    )


@pytest.fixture
def recorded_stage(monkeypatch: pytest.MonkeyPatch):
    """A stage registered for the test only, which records the arguments it was called with."""
    calls: list[dict] = []
    stages._register_other_stages()  # before the copy: modules register once, on first import
    registry = dict(stages._STAGES)
    monkeypatch.setattr(stages, "_STAGES", registry)

    @stages.stage("probe")
    def probe(store: str, parts: list[str], out: str, cfg: dict, level: int, log: str | None = None) -> None:
        calls.append(dict(store=store, parts=parts, out=out, cfg=cfg, level=level, log=log))
        Path(out).write_text("done")

    return calls


def test_stage_kwargs_map_named_inputs_outputs_params_config_and_log(tmp_path: Path) -> None:
    smk = _mock_snakemake(tmp_path, "probe", inputs={"store": "a.zarr", "parts": ["x.nc", "y.nc"]},
                          outputs={"out": "o.csv"}, params={"config": json.dumps({"seed": 3}), "level": 2,
                                                            "stage": "other"}, log="logs/probe.log")
    kwargs = stages.stage_kwargs(smk)
    assert kwargs == {"store": "a.zarr", "parts": ["x.nc", "y.nc"], "out": "o.csv", "cfg": {"seed": 3}, "level": 2,
                      "log": "logs/probe.log"}
    assert type(kwargs["store"]) is str and all(type(p) is str for p in kwargs["parts"])


def test_dispatch_calls_the_registered_stage_and_records_its_cost(tmp_path: Path, recorded_stage: list) -> None:
    out = tmp_path / "o.txt"
    smk = _mock_snakemake(tmp_path, "probe", inputs={"store": "s.zarr", "parts": ["p1"]}, outputs={"out": str(out)},
                          params={"config": {"seed": 1}, "level": 5}, wildcards={"model": "ldm_control/seed2"})
    stages.run_from_snakemake(smk)
    assert recorded_stage == [{"store": "s.zarr", "parts": ["p1"], "out": str(out), "cfg": {"seed": 1}, "level": 5,
                               "log": None}]
    records = list((tmp_path / "logs").rglob("*.stage.json"))
    assert len(records) == 1 and "probe" in str(records[0]) and "ldm_control" in str(records[0])
    assert json.loads(records[0].read_text())["rule"] == "probe"
    assert not list((tmp_path / "resources" / "running").glob("*.json"))  # the core lease is given back


def test_dispatch_by_params_stage(tmp_path: Path, recorded_stage: list) -> None:
    smk = _mock_snakemake(tmp_path, "probe_again", inputs={"store": "s", "parts": []},
                          outputs={"out": str(tmp_path / "o")}, params={"config": "{}", "level": 0, "stage": "probe"})
    stages.run_from_snakemake(smk)
    assert len(recorded_stage) == 1


def test_unknown_stage_names_the_rule_and_the_known_ones(tmp_path: Path) -> None:
    smk = _mock_snakemake(tmp_path, "no_such_rule", inputs={}, outputs={}, params={})
    with pytest.raises(KeyError, match="no stage function registered for rule 'no_such_rule'.*known: .*'evaluate'"):
        stages.run_from_snakemake(smk)


def _workflow_rules(tmp_path: Path) -> list:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[ROOT / "config" / "config.yaml"]),
                                storage_settings=StorageSettings(), snakefile=ROOT / "Snakefile", workdir=tmp_path)
        return list(workflow._workflow.rules)


def test_every_stage_rule_matches_its_functions_signature(tmp_path: Path) -> None:
    """Each name a rule declares is a parameter of its stage function, and each parameter without a
    default is declared (where the rule's inputs are all named; `unpack` inputs are known per job)."""
    stages._register_other_stages()
    problems, checked = [], 0
    for rule in _workflow_rules(tmp_path):
        if not str(rule.script or "").endswith("stage.py"):
            continue
        name = rule.params.get("stage", rule.name) if "stage" in rule.params._names else rule.name
        function = stages._STAGES.get(name)
        if function is None:
            problems.append(f"{rule.name}: no stage function '{name}'")
            continue
        checked += 1
        signature = inspect.signature(function).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values())
        declared = {*rule.input._names, *rule.output._names, "log"}
        declared |= {"cfg" if p == "config" else p for p in rule.params._names if p != "stage"}
        if "cores" in signature:
            declared.add("cores")  # the dispatch passes the run's cores
        problems += [f"{rule.name}: declares '{d}', which {name}() does not take" for d in sorted(declared)
                     if d not in signature and not takes_any and d != "log"]
        unpacked = any(is_flagged(item, "unpack") for item in rule.input)
        if not unpacked:
            problems += [f"{rule.name}: {name}() needs '{p.name}', which the rule does not declare"
                         for p in signature.values()
                         if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD
                         and p.name not in declared]
    assert checked > 30, checked
    assert not problems, "\n".join(problems)


def test_a_stage_that_names_its_own_files_must_write_the_declared_ones() -> None:
    """The twin names its monthly files itself: the stage checks them against the rule's outputs."""
    declared = ["r/era5/era5_2001_01.nc", "r/cosmo/T_2M_200101.nc"]
    stages.check_written([Path(p) for p in declared], declared, "twin")
    with pytest.raises(RuntimeError, match=r"twin: wrote \['r/era5/era5_2001_1\.nc'\] that the rule does not declare "
                                           r"and not \['r/era5/era5_2001_01\.nc'\] that it does"):
        stages.check_written(["r/era5/era5_2001_1.nc", "r/cosmo/T_2M_200101.nc"], declared, "twin")
    assert stages.single_folder(declared[:1], "era5") == Path("r/era5")
    with pytest.raises(ValueError, match=r"output 'era5' must lie in one folder"):
        stages.single_folder(declared, "era5")
