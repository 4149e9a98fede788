"""The names a config chooses among are checked on load without torch, and each teacher term
the schema accepts has its rule (methods: tests/method/test_plans.py; architectures:
tests/models/test_classifiers.py)."""

import subprocess
import sys

from augkd.basics.methods import TEACHER_TERM_NAMES
from augkd.method.plans import TEACHER_TERMS


def test_every_teacher_term_name_has_a_rule_in_the_one_lists_order():
    assert tuple(TEACHER_TERMS) == TEACHER_TERM_NAMES


def test_the_schema_checks_names_without_importing_torch():
    code = (
        "import sys, augkd.basics.config as c; "
        "c.load_config(None, ['student.arch=resnet18', 'method=kd', 'module3.teacher_term=none']); "
        "print('torch' in sys.modules)"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.stdout.strip() == "False", imported.stderr
