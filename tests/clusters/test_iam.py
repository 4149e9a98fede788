"""clusters/iam/*.json: the policies of the head's and the workers' roles cover every S3 prefix
docs/cluster.md and clusters/aws.yaml use, and no more than the roles need. (That moto's IAM
lets the worker policy reach exactly those prefixes is tests/search/stages/test_bucket_access.py.)"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase

import pytest
import yaml

from tests.paths import REPO

IAM = REPO / "clusters" / "iam"
AWS_YAML = REPO / "clusters" / "aws.yaml"
DOCS = REPO / "docs" / "cluster.md"
BUCKET_PREFIX = re.compile(r"(?:s3://|arn:aws:s3:::)BUCKET/([A-Za-z0-9_.-]+)")
ACCOUNT = "ACCOUNT_ID"


def _policy(name: str) -> dict:
    return json.loads((IAM / f"{name}.json").read_text())


def allows(policy: dict, action: str, resource: str) -> bool:
    """Whether an Allow statement grants ``action`` on ``resource`` (IAM's '*' wildcards;
    this project's policies use no Deny and no NotAction)."""
    for statement in policy["Statement"]:
        actions = statement["Action"]
        resources = statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        acts = any(fnmatchcase(action.lower(), a.lower()) for a in actions)
        on = any(fnmatchcase(resource, r) for r in resources)
        if statement["Effect"] == "Allow" and acts and on:
            return True
    return False


def _prefixes_used() -> set[str]:
    return set(BUCKET_PREFIX.findall(DOCS.read_text() + AWS_YAML.read_text()))


def _storage_prefix() -> str:
    """The search storage: AUGKD_STORAGE in aws.yaml's head setup."""
    found = re.search(r"AUGKD_STORAGE=s3://BUCKET/([A-Za-z0-9_.-]+)", AWS_YAML.read_text())
    assert found, "aws.yaml no longer exports AUGKD_STORAGE=s3://BUCKET/..."
    return found.group(1)


@pytest.mark.parametrize("name", ["head", "worker", "ec2-trust"])
def test_each_policy_is_valid_iam_json(name):
    policy = _policy(name)
    assert policy["Version"] == "2012-10-17"
    for statement in policy["Statement"]:
        assert statement["Effect"] in ("Allow", "Deny")
        assert statement["Action"]
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z*]+", action), action
            assert action not in ("*", "s3:*", "ec2:*", "iam:*"), action


@pytest.mark.parametrize("role", ["head", "worker"])
def test_every_documented_prefix_is_readable_and_the_storage_writable(role):
    policy = _policy(role)
    prefixes = _prefixes_used()
    assert {"augkd", "data", "teachers"} <= prefixes, prefixes  # what the docs walk through
    assert allows(policy, "s3:ListBucket", "arn:aws:s3:::BUCKET")
    for prefix in prefixes:
        assert allows(policy, "s3:GetObject", f"arn:aws:s3:::BUCKET/{prefix}/a/b.pt"), prefix
    storage = _storage_prefix()
    for action in ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"):
        assert allows(policy, action, f"arn:aws:s3:::BUCKET/{storage}/search/x.pt"), action
    for read_only in prefixes - {storage}:
        assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::BUCKET/{read_only}/x"), read_only
    assert not allows(policy, "s3:GetObject", "arn:aws:s3:::BUCKET/elsewhere/x")


def test_only_the_head_manages_workers_and_passes_the_worker_role():
    cfg = yaml.safe_load(AWS_YAML.read_text())
    types = cfg["available_node_types"]
    head_type = types[cfg["head_node_type"]]
    assert head_type["node_config"]["IamInstanceProfile"]["Name"] == "augkd-ray-head"
    worker_roles = {
        t["node_config"]["IamInstanceProfile"]["Name"]
        for name, t in types.items()
        if name != cfg["head_node_type"]
    }
    assert worker_roles == {"augkd-ray-worker"}
    head, worker = _policy("head"), _policy("worker")
    for action in ("ec2:RunInstances", "ec2:TerminateInstances", "ec2:CreateTags",
                   "ec2:DescribeInstances"):  # fmt: skip
        assert allows(head, action, "*") and not allows(worker, action, "*"), action
    passed = f"arn:aws:iam::{ACCOUNT}:role/augkd-ray-worker"
    assert allows(head, "iam:PassRole", passed) and not allows(worker, "iam:PassRole", passed)
    assert not allows(head, "iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/augkd-ray-head")
    # the AMI is resolved from a public SSM parameter at launch, by the head for workers
    parameter = head_type["node_config"]["ImageId"].removeprefix("resolve:ssm:")
    arn = f"arn:aws:ssm:{cfg['provider']['region']}::parameter{parameter}"
    assert allows(head, "ssm:GetParameters", arn), arn


def test_both_roles_trust_ec2_only():
    trust = _policy("ec2-trust")
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"


def test_docs_point_at_the_policies():
    docs = DOCS.read_text()
    for name in ("head", "worker", "ec2-trust"):
        assert f"clusters/iam/{name}.json" in docs, name
