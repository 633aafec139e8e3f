"""`make lab` serves JupyterLab on lessons/, the learner's lab: fast HTTP checks only (the lab page,
a lesson, nbgrader's instructor panels off, Validate on). tests/test_browser.py drives it for real."""

from __future__ import annotations

import json
import re

import pytest

from .labserver import make_lab

INSTRUCTOR_PANELS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                     "@jupyter/nbgrader:course-list"]


@pytest.mark.slow
def test_make_lab_serves_the_lessons_without_instructor_panels():
    with make_lab() as lab:
        import requests
        page = requests.get(lab.url("lab"), timeout=30)
        assert page.status_code == 200 and "JupyterLab" in page.text
        config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                      page.text, re.S).group(1))
        assert sorted(config["disabledExtensions"]) == sorted(INSTRUCTOR_PANELS)
        assert config["exposeAppInBrowser"] is True  # grade_this_notebook asks the page to save
        lesson = lab.api("GET", "contents/01_tensors.ipynb")
        assert lesson.status_code == 200
        assert lesson.json()["type"] == "notebook" and lesson.json()["content"]["cells"]
        assert requests.get(lab.url("formgrader"), timeout=30).status_code == 404  # server side off too
        assert "@jupyter/nbgrader" in [e["name"] for e in config["federated_extensions"]]  # Validate stays
