"""The install a learner gets: what Colab has satisfies it, conda honours make's caps."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement

from .conftest import ROOT
from .test_colab import COLAB_KERNEL_PACKAGES


def learner_requirements() -> dict[str, Requirement]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return {(r := Requirement(d)).name.lower(): r for d in deps}


def test_colab_versions_satisfy_the_learner_install():
    """Nothing Colab ships is upgraded: each of its kernel packages that the course needs is
    already recent enough, and instructor tooling is not asked for at all."""
    needed = learner_requirements()
    for name, version in COLAB_KERNEL_PACKAGES.items():
        if name in needed:
            assert needed[name].specifier.contains(version), f"{needed[name]} would upgrade Colab's {name} {version}"
    assert not {"jupyterlab", "nbgrader", "notebook", "jupyter-server"} & set(needed)


def test_conda_environment_honours_the_same_caps_as_make():
    import re

    text = (ROOT / "environment.yml").read_text()
    extras = re.search(r'pip install -q -c constraints.txt -e "\.\[([a-z,]+)\]"', (ROOT / "Makefile").read_text())
    assert extras, "make installs the course with constraints.txt"
    assert "- -c constraints.txt" in text and f"- -e .[{extras.group(1)}]" in text
