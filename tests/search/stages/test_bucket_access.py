"""The preflight's reach check (augkd/search/stages/bucket_access.py) against moto's real S3
server: every prefix the search names is read (the storage written) with the worker's
credentials, in the node's region, and what cannot be is one sentence naming the key, the
URI and the IAM fix.
The shipped worker policy (clusters/iam/worker.json) is enforced by moto's IAM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3
import pytest
import requests

from augkd.basics.errors import AccessError, ExitCode
from augkd.search.prepare.space_file import load_space
from augkd.search.stages.bucket_access import Location, check_locations, named_locations
from augkd.storage.files import write_bytes
from tests.basics.test_exit_codes import one_line
from tests.conftest import ROOT, free_port
from tests.search.conftest import assert_nothing_running

NODE = "node test (host, 127.0.0.1)"


def _readable(s3_server, bucket: str) -> list[Location]:
    root = s3_server.bucket(bucket)
    write_bytes(f"{root}/data/office/dslr/cup/0.png", b"png")
    write_bytes(f"{root}/teachers/office.pt", b"pt")
    return [
        Location("data.root", f"{root}/data/office", "prefix"),
        Location("teacher.checkpoint", f"{root}/teachers/office.pt", "file"),
        Location("--storage", f"{root}/augkd", "write"),
    ]


def test_readable_prefixes_pass_and_the_write_probe_leaves_no_object(s3_server):
    locations = _readable(s3_server, "augkd-access-ok")
    check_locations(locations, NODE)
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="augkd-access-ok")["Contents"]]
    assert not [key for key in keys if key.endswith(".probe")], keys


def test_the_locations_a_search_names_are_its_data_teacher_and_storage():
    space = load_space(
        "digits",
        {
            "params": {},
            "base": {
                "data": {"source": "folders", "root": "s3://b/data/office31"},
                "teacher": {"checkpoint": "s3://b/teachers/t.pt"},
            },
        },
    )
    found = named_locations(space.base_config_object(), "s3://b/augkd")
    assert [(x.key, x.uri, x.mode) for x in found] == [
        ("data.root", "s3://b/data/office31", "prefix"),
        ("teacher.checkpoint", "s3://b/teachers/t.pt", "file"),
        ("--storage", "s3://b/augkd", "write"),
    ]
    local = named_locations(load_space("digits", {"params": {}}).base_config_object(), "/tmp/x")
    assert local == []  # local paths are the loaders' to check


@pytest.mark.parametrize(
    ("key", "uri", "mode", "fix"),
    [
        ("data.root", "s3://no-such-bucket/data/office", "prefix",
         "s3:GetObject on arn:aws:s3:::no-such-bucket/data/office/*"),
        ("teacher.checkpoint", "s3://no-such-bucket/teachers/t.pt", "file",
         "s3:GetObject on arn:aws:s3:::no-such-bucket/teachers/*"),
        ("--storage", "s3://no-such-bucket/augkd", "write",
         "s3:GetObject, s3:PutObject and s3:DeleteObject on arn:aws:s3:::no-such-bucket/augkd/*"),
    ],
)  # fmt: skip
def test_a_bucket_that_does_not_exist_is_one_sentence_naming_key_uri_and_fix(
    s3_server, key, uri, mode, fix
):
    with pytest.raises(AccessError) as refused:
        check_locations([Location(key, uri, mode)], NODE)
    sentence = str(refused.value)
    assert sentence.startswith(f"{key} '{uri}' cannot be ")
    assert (
        f"from {NODE} (bucket 'no-such-bucket' does not exist); check the bucket name" in sentence
    )
    assert "s3:ListBucket on arn:aws:s3:::no-such-bucket and " + fix in sentence
    assert sentence.endswith("(clusters/iam/worker.json).") and "\n" not in sentence


def test_a_bucket_in_another_region_than_the_node_is_refused(s3_server, monkeypatch):
    client = boto3.client("s3", endpoint_url=s3_server.endpoint, region_name="us-east-1")
    client.create_bucket(
        Bucket="augkd-in-europe", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    write_bytes("s3://augkd-in-europe/data/office/dslr/cup/0.png", b"png")
    data = Location("data.root", "s3://augkd-in-europe/data/office", "prefix")
    with pytest.raises(AccessError) as refused:
        check_locations([data], NODE)
    assert str(refused.value) == (
        f"Bucket 'augkd-in-europe' (data.root) is in region eu-west-1 but {NODE} runs in "
        "us-east-1 (AWS_REGION); copy the data to a bucket in us-east-1, or run the cluster in "
        "eu-west-1 (provider.region in clusters/aws.yaml)."
    )
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    check_locations([data], NODE)  # the same bucket, read from its own region


# -- IAM: the shipped worker policy, enforced by moto ----------------------------------

IAM_SETUP_REQUESTS = 7
"""What _iam_server's setup sends before moto starts to enforce IAM on every request."""


def _as_moto_reads_it() -> str:
    """The shipped worker policy for bucket augkd-iam. AWS authorizes HeadBucket (which
    pyarrow sends before creating a folder) with s3:ListBucket; moto checks it as an action
    of its own, s3:HeadBucket, so it is granted wherever s3:ListBucket is."""
    policy = json.loads((ROOT / "clusters" / "iam" / "worker.json").read_text())
    for statement in policy["Statement"]:
        if "s3:ListBucket" in statement["Action"]:
            statement["Action"] = [*statement["Action"], "s3:HeadBucket"]
    return json.dumps(policy).replace("BUCKET", "augkd-iam")


@pytest.fixture(scope="module")
def iam_server(tmp_path_factory):
    """A second moto server that enforces IAM after its first IAM_SETUP_REQUESTS requests:
    a bucket with data, teachers and a private prefix, and a user holding the shipped
    worker policy. Yields (endpoint, access key id, secret)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto_iam") / "server.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(IAM_SETUP_REQUESTS)}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None, log.read_text()
                time.sleep(0.1)
        keys = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **keys)
        s3.create_bucket(Bucket="augkd-iam")  # 1
        s3.put_object(Bucket="augkd-iam", Key="data/office/dslr/cup/0.png", Body=b"png")  # 2
        s3.put_object(Bucket="augkd-iam", Key="private/office/dslr/cup/0.png", Body=b"png")  # 3
        iam.create_user(UserName="augkd-ray-worker")  # 4
        iam.put_user_policy(
            UserName="augkd-ray-worker", PolicyName="worker", PolicyDocument=_as_moto_reads_it()
        )  # 5
        key = iam.create_access_key(UserName="augkd-ray-worker")["AccessKey"]  # 6
        s3.put_object(Bucket="augkd-iam", Key="teachers/office.pt", Body=b"pt")  # 7
        yield endpoint, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        server.terminate()
        server.wait()


def test_the_shipped_worker_policy_reaches_the_documented_prefixes_and_no_other(
    iam_server, monkeypatch
):
    endpoint, key_id, secret = iam_server
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    allowed = [
        Location("data.root", "s3://augkd-iam/data/office", "prefix"),
        Location("teacher.checkpoint", "s3://augkd-iam/teachers/office.pt", "file"),
        Location("--storage", "s3://augkd-iam/augkd", "write"),
    ]
    check_locations(allowed, NODE)

    private = Location("data.root", "s3://augkd-iam/private/office", "prefix")
    with pytest.raises(AccessError) as refused:
        check_locations([private], NODE)
    assert str(refused.value) == (
        f"data.root 's3://augkd-iam/private/office' cannot be read from {NODE} (access denied); "
        "give the workers' role s3:ListBucket on arn:aws:s3:::augkd-iam and s3:GetObject on "
        "arn:aws:s3:::augkd-iam/private/office/* (clusters/iam/worker.json)."
    )
    elsewhere = Location("--storage", "s3://augkd-iam/runs", "write")
    with pytest.raises(AccessError, match=r"^--storage 's3://augkd-iam/runs' cannot be written"):
        check_locations([elsewhere], NODE)


# -- the whole search ------------------------------------------------------------------


def test_search_with_an_unreadable_data_bucket_stops_before_any_trial(
    s3_server, local_ray, search_main, tmp_path, capsys
):
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = search_main(
        ["--space", "digits", "--smoke-test", "--num-samples", "2", "--name", "nobucket",
         "--storage", str(tmp_path / "runs"), "--tracking-uri", tracking_uri,
         "--set", "data.source=folders", "--set", "data.root=s3://no-such-bucket/data/office",
         "--set", "data.student_domain=dslr"]
    )  # fmt: skip
    assert code == ExitCode.BAD_INPUT
    line = one_line(capsys.readouterr())
    assert line.startswith(
        "error: Preflight on a worker failed before any trial: data.root "
        "'s3://no-such-bucket/data/office' cannot be read from node "
    )
    assert "(bucket 'no-such-bucket' does not exist)" in line
    assert not (tmp_path / "runs" / "nobucket").exists()  # no trial, no Tune experiment
    assert_nothing_running(tracking_uri)
