"""The command line: ``python -m autograder list | grade | batch | insight | new | progress``."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from . import i18n, policy
from .catalog import LESSONS
from .i18n import _


def cmd_list(args: argparse.Namespace) -> int:
    for lesson in LESSONS.values():
        print(f"{lesson.key}  {lesson.title}: {lesson.builds}")
        for e in lesson.exercises:
            forbidden = ", ".join(n for n in e.forbidden if "::" not in n) or "-"
            print(f"  {e.id:<36} {e.points:>3g} pts  {e.signature}")
            if args.verbose:
                print(f"      builds: {e.builds}\n      forbidden: {forbidden}")
    return 0


def limits(args: argparse.Namespace) -> policy.Limits:
    return policy.Limits(cell=args.cell_timeout, notebook=args.timeout, memory=args.memory)


def use_secret(args: argparse.Namespace) -> policy.Secret:
    """``--secret-file``, then the first line of every grading run: whether hidden cases count."""
    if args.secret_file:
        try:
            policy.use_secret_file(args.secret_file)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
    secret = policy.secret()
    print(secret.banner(), file=sys.stderr)
    return secret


def chosen_language(args: argparse.Namespace, notebooks: list[pathlib.Path] = ()) -> str:
    """The language ``grade`` and ``progress`` speak: ``--lang``, else ``MINIDL_LANG``, else the user's
    locale (``LANG``...), else the (first) notebook's metadata, else English."""
    if args.lang:
        return args.lang
    if i18n.environment_language():
        return i18n.environment_language()
    if i18n.locale_language():
        return i18n.locale_language()
    from .notebook import read

    for path in notebooks:
        if path.is_file():
            nb = read(path).nb
            return i18n.notebook_language(nb) if nb is not None else i18n.SOURCE_LANGUAGE
    return i18n.SOURCE_LANGUAGE


def cmd_grade(args: argparse.Namespace) -> int:
    from .grading import grade_notebook

    path = pathlib.Path(args.notebook)
    with i18n.speaking(chosen_language(args, [path])):  # the notebook's kernel and the checking worker too
        if not path.is_file():
            print(_("error: {path} is not a file; give the path of a notebook (.ipynb). In Colab, grade from the "
                    "notebook itself with grade_this_notebook() (the last cell of every lesson)").format(path=path),
                  file=sys.stderr)
            return 2
        use_secret(args)
        report = grade_notebook(path, limits(args))
        print(report.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from . import batch, outputs
    from .submission import discover, submissions_root

    if args.lang:  # else each student's notebook speaks its own language (a class may mix editions)
        i18n.use_language(args.lang)
    else:
        i18n.use_language(i18n.locale_language() or i18n.SOURCE_LANGUAGE)  # the TA's own messages
    secret = use_secret(args)
    folder, csv_path = pathlib.Path(args.folder), pathlib.Path(args.out)
    if not folder.is_dir():
        print(_("{folder} is not a folder").format(folder=folder), file=sys.stderr)
        return 2
    root = submissions_root(folder).resolve()
    if any(p.resolve().is_relative_to(root) for p in (csv_path.parent, csv_path.with_suffix(""))):
        print(_("--out {out} is inside the submissions ({root}): the grades would lie among them; "
                "write them elsewhere").format(out=args.out, root=root), file=sys.stderr)
        return 2
    if args.gradebook and not secret and not args.public_only_ok:
        print(_("--gradebook: refusing to write scores of public cases only over the gradebook's; give the "
                "secret (--secret-file FILE) or pass --public-only-ok"), file=sys.stderr)
        return 2
    if args.scheduler or args.scheduler_file:
        from . import cluster

        with cluster.connect(args.scheduler, args.scheduler_file) as client, i18n.speaking(args.lang):
            rows = batch.run(folder, csv_path, limits=limits(args), grader=cluster.grader(client))
    else:
        with i18n.speaking(args.lang):  # MINIDL_LANG: the pool's processes speak it too
            rows = batch.run(folder, csv_path, workers=args.workers, limits=limits(args))
    students = len({r["student"] for r in rows})
    print(_("{rows} rows for {students} students in {out} (one row per student in {students_csv}); JSON and HTML "
            "feedback in {folder}/").format(rows=len(rows), students=students, out=args.out,
                                           students_csv=outputs.students_csv(csv_path), folder=csv_path.with_suffix("")))
    if args.gradebook:
        subs, _notes = discover(folder)
        reports = batch.graded(subs, csv_path.with_suffix(""), bool(secret))
        written = outputs.write_gradebook(args.gradebook, reports, public_only_ok=args.public_only_ok)
        print(_("{count} scores written into the gradebook {gradebook}").format(count=written, gradebook=args.gradebook))
    if args.insight:
        write_insight(csv_path, pathlib.Path(args.insight), names=False)
    return 0


def write_insight(csv_path: pathlib.Path, out: pathlib.Path, names: bool) -> None:
    from . import insight

    pages = insight.write(csv_path, out, show_names=names)
    print(f"the class at a glance: {pages[0]} (and {len(pages) - 1} lesson pages)")


def cmd_insight(args: argparse.Namespace) -> int:
    csv_path = pathlib.Path(args.csv)
    if not csv_path.is_file():
        print(f"error: {csv_path} is not a file; give the CSV that `batch --out` wrote", file=sys.stderr)
        return 2
    write_insight(csv_path, pathlib.Path(args.out), names=args.names)
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from .scaffold import ScaffoldError, new

    course = pathlib.Path(args.course) if args.course else policy.course_folders()[0]
    try:
        written = new(args.exercise, course)
    except ScaffoldError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    declaration, _register, notebook = written
    print("\n".join(f"wrote {p}" for p in written))
    print(f"Next: write the reference and the cases in {declaration}, the solution in {notebook} (its student "
          "edition gets a stub), then `make notebooks`: it checks the declaration and stamps the test cell.")
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from .progress import progress

    from .catalog import LESSONS

    folder = pathlib.Path(args.folder)
    with i18n.speaking(chosen_language(args, [folder / f"{key}.ipynb" for key in LESSONS])):
        use_secret(args)
        print(progress(folder, limits(args), refresh=args.refresh))
    return 0


def language(value: str) -> str:
    """``--lang``'s value as a course language ("zh_CN" -> "zh"); an unknown one is refused."""
    lang = i18n.normalize(value)
    if lang is None:
        raise argparse.ArgumentTypeError(f"{value!r}: the course has {', '.join(i18n.LANGUAGES)}")
    return lang


def add_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument("--secret-file", metavar="FILE",
                   help="the instructor's secret (the seed of the hidden cases). Without it: $AUTOGRADER_SECRET, "
                        f"$AUTOGRADER_SECRET_FILE, or {policy.SECRET_NAME} next to the course's nbgrader_config.py; "
                        "with none of them, only public cases are graded, and the first line says so")
    p.add_argument("--cell-timeout", type=float, default=policy.CELL_SECONDS,
                   help=f"seconds per notebook cell (default {policy.CELL_SECONDS}, as nbgrader_config.py)")
    p.add_argument("--timeout", type=float, default=policy.NOTEBOOK_SECONDS,
                   help=f"seconds for the whole notebook (default {policy.NOTEBOOK_SECONDS})")
    p.add_argument("--memory", type=int, default=policy.MEMORY_MB,
                   help=f"MB of address space for learner code (default {policy.MEMORY_MB})")
    p.add_argument("--lang", metavar="LANG", type=language, help="the language of the report: "
                   + ", ".join(f"{code} ({name})" for code, (_folder, name) in i18n.LANGUAGES.items())
                   + "; default: $MINIDL_LANG, else (grade, progress) your locale ($LANG) or the notebook's "
                     "language, (batch) each notebook's own language")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder", description="minidl's autograder",
        epilog="Each exercise's check has a time budget sized from its reference's measured time on every case "
               f"(a case may take {policy.CASE_FACTOR}x the reference's time plus "
               "a few seconds; an endless loop is stopped after one case per group), so no timeout flag is needed.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="print the exercise catalogue")
    p.add_argument("-v", "--verbose", action="store_true", help="also what each builds and what is forbidden")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("grade", help="run a notebook headless and grade every exercise of its lesson")
    p.add_argument("notebook")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    add_limits(p)
    p.set_defaults(run=cmd_grade)
    p = sub.add_parser("batch", help="grade a folder of submissions (LMS download or nbgrader's submitted/) "
                                     "in parallel; resumable",
                       description="Grade a folder of submissions in parallel; resumable. Hidden cases are "
                                   "counted when the instructor's secret is found: $AUTOGRADER_SECRET, "
                                   "--secret-file FILE, or .autograder_secret next to the course's "
                                   "nbgrader_config.py; the first line of output says which.")
    p.add_argument("folder")
    p.add_argument("--out", default="grades.csv", help="the CSV, one row per student and exercise (default "
                                                       "grades.csv); NAME.students.csv has one row per student, "
                                                       "and JSON and HTML go to the folder NAME/; not inside the "
                                                       "submissions")
    p.add_argument("--workers", type=int, default=1, help="notebooks graded at once (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="grade on a Dask cluster instead, e.g. "
                                                          "tcp://HOST:8786 (needs the cluster extra)")
    p.add_argument("--scheduler-file", metavar="FILE", help="grade on the Dask cluster this scheduler file "
                                                            "describes (dask-scheduler --scheduler-file)")
    p.add_argument("--gradebook", metavar="URL", help="also write the scores into nbgrader's gradebook, e.g. "
                                                      "sqlite:///course/gradebook.db or "
                                                      "postgresql+psycopg://user@host/minidl")
    p.add_argument("--public-only-ok", action="store_true", help="let --gradebook write scores graded without "
                                                                 "the secret (public cases only)")
    p.add_argument("--insight", metavar="DIR", help="at the end, also write the class at a glance into DIR "
                                                    "(as the insight command does)")
    add_limits(p)
    p.set_defaults(run=cmd_batch)
    p = sub.add_parser("insight", help="what a graded class got right and wrong: static HTML pages from what "
                                       "batch wrote",
                       description="From the CSV that batch wrote (and the graded reports stored next to it), "
                                   "write index.html and one page per lesson into --out: shares of full, partial "
                                   "and zero scores, the most common first failures with the hints learners saw, "
                                   "what was left unattempted, grader problems with the students they hit, and "
                                   "the students whose scores fall. The pages need no server.")
    p.add_argument("csv", nargs="?", default="grades.csv", help="the CSV batch wrote (default grades.csv)")
    p.add_argument("--out", default="insight", help="the folder for the pages (default insight/)")
    p.add_argument("--names", action="store_true", help="show students' names (default: the opaque ids of the "
                                                        "per-student CSV's id column)")
    p.set_defaults(run=cmd_insight)
    p = sub.add_parser("new", help="scaffold an exercise of your own: its declaration, registration and notebook "
                                   "cells",
                       description="Write the declaration of a new exercise (exercises/MODULE.py in the course "
                                   "folder), register it in the course's minidl.toml, and add its cells (text, "
                                   "solution, check and nbgrader test cell) to its lesson's notebook in source/.")
    p.add_argument("exercise", help="the exercise's id, module.name (e.g. extra.gelu); the learner writes name")
    p.add_argument("--course", help="the course folder (default: the nearest one holding nbgrader_config.py)")
    p.set_defaults(run=cmd_new)
    p = sub.add_parser("progress", help="your progress across the course: grade every lesson notebook in a folder")
    p.add_argument("folder", nargs="?", default="lessons")
    p.add_argument("--refresh", action="store_true", help="grade again even notebooks that have not changed")
    add_limits(p)
    p.set_defaults(run=cmd_progress)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except SystemExit as e:  # a refusal with its message already printed (use_secret)
        return int(e.code or 0)


if __name__ == "__main__":
    sys.exit(main())
