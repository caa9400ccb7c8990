"""`convlstm_jax.nowcasting` itself: every module's public names, from the package."""

import importlib

import pytest

import convlstm_jax.nowcasting as nowcasting

MODULES = ("baselines", "ensemble", "losses", "plots", "readers", "sources", "synthetic", "units", "verification")


@pytest.mark.parametrize("module", MODULES)
def test_the_package_holds_every_public_name_of_its_modules(module):
    names = importlib.import_module(f"convlstm_jax.nowcasting.{module}").__all__
    assert set(names) <= set(nowcasting.__all__), sorted(set(names) - set(nowcasting.__all__))
    for name in names:
        assert getattr(nowcasting, name) is getattr(importlib.import_module(f"convlstm_jax.nowcasting.{module}"), name)


def test_the_package_names_are_sorted_constants_classes_then_functions():
    names = nowcasting.__all__
    assert names == sorted(names, key=lambda name: (not name.isupper(), name)) and len(set(names)) == len(names)
