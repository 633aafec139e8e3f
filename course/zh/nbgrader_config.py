"""nbgrader configuration for the Simplified Chinese edition (简体中文版): the course's own
configuration (../nbgrader_config.py, read here), rooted in this folder, under its own course id
so that both editions can share one exchange. Its notebooks are written by `make lessons`."""

import pathlib

c = get_config()  # noqa: F821 (provided by nbgrader)
english = pathlib.Path(__file__).resolve().parent.parent / "nbgrader_config.py"
exec(compile(english.read_text(), str(english), "exec"), {"get_config": get_config, "__file__": str(english)})  # noqa: F821

c.CourseDirectory.root = str(pathlib.Path(__file__).resolve().parent)
c.CourseDirectory.course_id = "minidl-zh"
# The stub a student edition has in place of each solution.
c.ClearSolutions.code_stub = {"python": "# 在这里写你的代码\nraise NotImplementedError()"}
