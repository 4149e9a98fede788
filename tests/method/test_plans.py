"""The methods a trial runs are listed once (augkd.basics.methods); every one has a plan."""

from __future__ import annotations

from augkd.basics.methods import METHODS
from augkd.method.plans import METHOD_PLANS, methods_that


def test_every_method_name_has_a_plan_in_the_one_lists_order():
    assert tuple(METHOD_PLANS) == METHODS


def test_the_methods_that_train_a_generator_are_named_from_the_plans():
    assert methods_that(lambda plan: plan.module1) == "augkd, dfkd, no_anchor or no_mixup"
    assert methods_that(lambda plan: plan.schedule == "student_only") == "no_mixup"
