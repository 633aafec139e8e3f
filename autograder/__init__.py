"""autograder: checks a learner's code against minidl's reference, explains and scores it.

    from autograder import check
    check("broadcasting.softmax", softmax)
"""

from .check import check, yours
from .i18n import use_language
from .report import Result

__all__ = ["check", "yours", "Result", "use_language"]
