"""The command line: ``python -m autograder list | grade``."""

from __future__ import annotations

import argparse
import json
import sys

from .catalog import LESSONS


def cmd_list(args: argparse.Namespace) -> int:
    for lesson in LESSONS.values():
        print(f"{lesson.key}  {lesson.title}: {lesson.builds}")
        for e in lesson.exercises:
            forbidden = ", ".join(n for n in e.forbidden if "::" not in n) or "-"
            print(f"  {e.id:<36} {e.points:>3g} pts  {e.signature}")
            if args.verbose:
                print(f"      builds: {e.builds}\n      forbidden: {forbidden}")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from .grading import Limits, grade_notebook

    report = grade_notebook(args.notebook, Limits(cell=args.cell_timeout, notebook=args.timeout))
    print(report.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description="minidl's autograder")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="print the exercise catalogue")
    p.add_argument("-v", "--verbose", action="store_true", help="also what each builds and what is forbidden")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("grade", help="run a notebook headless and grade every exercise of its lesson")
    p.add_argument("notebook")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--cell-timeout", type=float, default=120, help="seconds per cell (default 120)")
    p.add_argument("--timeout", type=float, default=900, help="seconds for the whole notebook (default 900)")
    p.set_defaults(run=cmd_grade)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
