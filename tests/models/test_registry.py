"""The model graph is written down once, in pdeldm.models.registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pdeldm.errors import InputError
from pdeldm.models import MODEL_NAMES
from pdeldm.models.registry import DEPENDENCIES, model_dependencies


def test_transitive_dependencies_in_dependency_order():
    # what workflow/rules/common.smk wrote down by hand before it read the registry
    assert {m: model_dependencies(m) for m in ("interpolation", "unet", "gan", "autoencoder", "ldm")} == {
        "interpolation": [], "unet": [], "gan": [], "autoencoder": ["unet"], "ldm": ["unet", "autoencoder"]}
    assert model_dependencies("pde_ldm") == ["unet", "autoencoder", "ldm"]
    for model in DEPENDENCIES:
        order = model_dependencies(model)
        assert set(DEPENDENCIES[model]) <= set(order) and model not in order
        for i, dep in enumerate(order):  # each model after the models it depends on
            assert set(model_dependencies(dep)) <= set(order[:i])


def test_every_model_has_a_class_and_an_entry_in_the_graph():
    from pdeldm.models.registry import MODEL_CLASSES

    assert set(DEPENDENCIES) == set(MODEL_CLASSES) == set(MODEL_NAMES)
    assert all(cls.name == name for name, cls in MODEL_CLASSES.items())


def test_unknown_models_and_cycles_are_errors(monkeypatch):
    with pytest.raises(InputError, match="unknown model 'nope'"):
        model_dependencies("nope")
    monkeypatch.setitem(DEPENDENCIES, "unet", ["ldm"])
    with pytest.raises(InputError, match="cycle: .*ldm -> autoencoder -> unet"):
        model_dependencies("ldm")


def test_reading_the_graph_does_not_import_torch():
    """The workflow reads the graph when it parses its rules: that must stay cheap."""
    code = ("import sys; from pdeldm.models.registry import model_dependencies; model_dependencies('ldm'); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
