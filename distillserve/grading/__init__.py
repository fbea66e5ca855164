"""Grading: did a candidate answer as well as the reference? One seam for router labels, the
promotion gate and drift (see ``grade``); graders: exact, normalized, final_answer, json,
embedding, judge; chosen per request class by the ``grading`` config section (``selection``)."""

from distillserve.grading.batch import Pair, grade_all, grade_all_blocking
from distillserve.grading.grade import Grade, Grader
from distillserve.grading.selection import GraderSelection, RequestClass, resolve_grader_name, task_of

__all__ = [
    "Grade",
    "Grader",
    "GraderSelection",
    "Pair",
    "RequestClass",
    "grade_all",
    "grade_all_blocking",
    "resolve_grader_name",
    "task_of",
]
