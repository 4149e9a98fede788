import itertools

import pytest

from augkd.method.schedules import linear_schedule, mixup_schedule, step_schedule


def test_linear_schedule_rises_from_b_to_one_at_a():
    total, a, b = 10, 0.5, 0.2
    assert linear_schedule(0, total, a, b) == pytest.approx(0.2)
    assert linear_schedule(2, total, a, b) == pytest.approx(0.2 + 0.8 * 2 / 5)
    assert linear_schedule(5, total, a, b) == pytest.approx(1.0)
    assert linear_schedule(9, total, a, b) == 1.0


def test_step_schedule_moves_in_tenths():
    total, a, b = 20, 1.0, 0.0
    values = [step_schedule(e, total, a, b) for e in range(total)]
    assert values[:2] == [0.0, 0.0]
    assert values[2] == pytest.approx(0.1)
    assert values[19] == pytest.approx(0.9)
    assert all(later >= earlier for earlier, later in itertools.pairwise(values))
    assert set(round(v, 6) for v in values) == {round(k / 10, 6) for k in range(10)}


def test_named_schedules_and_student_only():
    assert mixup_schedule("student_only", 0, 10, 0.5, 0.0) == 1.0
    assert mixup_schedule("linear", 0, 10, 0.5, 0.3) == pytest.approx(0.3)
