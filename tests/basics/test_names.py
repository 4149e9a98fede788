"""The schema's lists of names are exactly the registries' keys: a method, teacher term or
architecture added to one and not the other is either refused on load or fails in a trial."""

from augkd.basics.names import ARCHITECTURES, METHODS, TEACHER_TERMS
from augkd.method.plans import METHOD_PLANS
from augkd.method.plans import TEACHER_TERMS as TEACHER_TERM_RULES
from augkd.models.classifiers import CLASSIFIERS


def test_every_method_has_a_plan_and_every_plan_a_name():
    assert set(METHOD_PLANS) == set(METHODS)


def test_every_teacher_term_has_a_rule_and_every_rule_a_name():
    assert set(TEACHER_TERM_RULES) == set(TEACHER_TERMS)


def test_every_architecture_can_be_built_and_every_builder_has_a_name():
    assert set(CLASSIFIERS) == set(ARCHITECTURES)


def test_the_schema_validates_names_without_importing_torch():
    import subprocess
    import sys

    code = "import sys, augkd.basics.config as c; c.load_config(None, ['student.arch=resnet18']); "
    code += "print('torch' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.stdout.strip() == "False", imported.stderr
