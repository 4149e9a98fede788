"""The names of the methods a trial runs (AuG-KD, its ablations and its baselines) and of
Module 3's teacher terms.

The one list of them. What each one runs is augkd.method.plans.METHOD_PLANS, keyed by these
names; the config's ``method`` key accepts exactly these. Imports nothing heavy.
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["augkd", "ce", "kd", "dfkd", "no_anchor", "no_mixup"]
METHODS: tuple[Method, ...] = get_args(Method)

TeacherTermName = Literal["both", "mixed", "none"]
TEACHER_TERM_NAMES: tuple[TeacherTermName, ...] = get_args(TeacherTermName)
"""Which half of Module 3's batch the teacher's soft targets apply to: the keys of
augkd.method.plans.TEACHER_TERMS, and what ``module3.teacher_term`` accepts."""
