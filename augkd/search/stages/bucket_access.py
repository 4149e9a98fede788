"""Can a worker reach every object-store location the search names, in the cluster's region?

The preflight runs this on a worker, with the worker's credentials (its instance profile on
AWS), before any trial: a wrong bucket or a policy without a prefix is then one sentence that
names the config key, the URI and the IAM fix, instead of a trial that stalls or fails after a
GPU node has booted. Missing files inside a readable prefix are left to the loaders, which name
the file. Local paths are left to them too.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Literal

from pyarrow import fs as pafs

from augkd.basics.config import Config
from augkd.basics.errors import AccessError
from augkd.storage.files import join_uri, read_file, resolve_filesystem, write_file

Mode = Literal["prefix", "file", "write"]
IAM_ACTIONS: dict[Mode, str] = {
    "prefix": "s3:GetObject",
    "file": "s3:GetObject",
    "write": "s3:GetObject, s3:PutObject and s3:DeleteObject",
}
"""What the workers' role needs on a location's objects, besides s3:ListBucket on its bucket."""
WORKER_POLICY = "clusters/iam/worker.json"
PROBE_FOLDER = ".preflight"
"""Under the stage cache: where a worker writes (and deletes) an object to prove it can."""
DEPTH = 4
"""How many folder levels below a prefix the check descends to find one object to read."""
REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")
METADATA = "http://169.254.169.254/latest"
"""EC2's instance metadata service: the node's region when no variable names it."""
METADATA_WAIT_S = 2.0
"""Off EC2 nothing answers there; the preflight waits this long per request, then skips."""
HEAD_WAIT_S = 10.0


@dataclass(frozen=True)
class Location:
    key: str
    """The config key or flag that names it, as the sentence says it."""
    uri: str
    mode: Mode


def named_locations(config: Config, storage: str) -> list[Location]:
    """Every object-store URI the search reads or writes: data, teacher, storage."""
    candidates = [
        Location("data.root", config.data.root or "", "prefix"),
        Location("teacher.checkpoint", config.teacher.checkpoint or "", "file"),
        Location("teacher.cache_dir", config.teacher.cache_dir or "", "write"),
        Location("--storage", storage, "write"),
    ]
    return [location for location in candidates if "://" in location.uri]


def check_locations(locations: list[Location], node: str) -> None:
    """Raises AccessError (one sentence) for the first location this node cannot use."""
    for location in locations:
        try:
            _CHECKS[location.mode](location.uri)
        except OSError as error:
            raise AccessError(_access_sentence(location, node, error)) from None
    buckets = _buckets(locations)
    region = node_region() if buckets else None
    if region is None:
        return
    for bucket, keys in buckets.items():
        found = bucket_region(bucket)
        if found is not None and found != region[0]:
            raise AccessError(
                f"Bucket '{bucket}' ({', '.join(keys)}) is in region {found} but {node} runs in "
                f"{region[0]} ({region[1]}); copy the data to a bucket in {region[0]}, or run the "
                f"cluster in {found} (provider.region in clusters/aws.yaml)."
            )


def _read_prefix(uri: str) -> None:
    """List the prefix (s3:ListBucket) and read one byte of an object in it (s3:GetObject)."""
    filesystem, path = resolve_filesystem(uri)
    folder = path
    for _ in range(DEPTH):
        try:
            infos = filesystem.get_file_info(pafs.FileSelector(folder, recursive=False))
        except FileNotFoundError:
            return  # an empty or missing prefix: the loader names what is missing
        files = [i for i in infos if i.type == pafs.FileType.File]
        if files:
            with filesystem.open_input_file(files[0].path) as handle:
                handle.read_at(min(1, files[0].size or 0), 0)
            return
        folders = sorted(i.path for i in infos if i.type == pafs.FileType.Directory)
        if not folders:
            return
        folder = folders[0]


def _read_file(uri: str) -> None:
    """HeadObject (needs s3:GetObject); a missing file is the loader's to name, unless its
    whole bucket is missing (S3 answers 'not found' for both)."""
    filesystem, path = resolve_filesystem(uri)
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        return
    bucket = path.split("/", 1)[0]
    if "/" in path and filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
        raise OSError(f"AWS Error NO_SUCH_BUCKET: bucket '{bucket}' does not exist")


def _write_probe(uri: str) -> None:
    filesystem, path = resolve_filesystem(uri)
    probe = join_uri(path, PROBE_FOLDER, f"{uuid.uuid4().hex}.probe")
    write_file(filesystem, probe, b"augkd preflight")
    read_file(filesystem, probe)
    filesystem.delete_file(probe)


_CHECKS = {"prefix": _read_prefix, "file": _read_file, "write": _write_probe}


def _aws_error(error: OSError) -> str:
    """pyarrow's 'AWS Error ACCESS_DENIED during ...' -> 'ACCESS_DENIED' (and its own
    "Bucket 'b' not found" when creating folders -> 'NO_SUCH_BUCKET'); '' otherwise."""
    found = re.search(r"AWS Error ([A-Z_]+)", str(error))
    if found:
        return found.group(1)
    return "NO_SUCH_BUCKET" if re.match(r"Bucket '[^']*' not found", str(error)) else ""


def _bucket_and_prefix(uri: str) -> tuple[str, str]:
    rest = uri.split("://", 1)[1].strip("/")
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix


def _access_sentence(location: Location, node: str, error: OSError) -> str:
    bucket, prefix = _bucket_and_prefix(location.uri)
    code = _aws_error(error)
    what = {
        "NO_SUCH_BUCKET": f"bucket '{bucket}' does not exist",
        "ACCESS_DENIED": "access denied",
    }.get(code) or str(error).splitlines()[0][:200]
    verb = "written" if location.mode == "write" else "read"
    if not location.uri.startswith("s3://"):
        return (
            f"{location.key} '{location.uri}' cannot be {verb} from {node} ({what}); check the "
            "URI and the node's credentials for it."
        )
    scope = prefix if location.mode != "file" else prefix.rpartition("/")[0]
    objects = f"arn:aws:s3:::{bucket}/{scope}/*" if scope else f"arn:aws:s3:::{bucket}/*"
    check_name = (
        "check the bucket name in " + location.key + ", and " if code == "NO_SUCH_BUCKET" else ""
    )
    return (
        f"{location.key} '{location.uri}' cannot be {verb} from {node} ({what}); {check_name}give "
        f"the workers' role s3:ListBucket on arn:aws:s3:::{bucket} and "
        f"{IAM_ACTIONS[location.mode]} on {objects} ({WORKER_POLICY})."
    )


def _buckets(locations: list[Location]) -> dict[str, list[str]]:
    buckets: dict[str, list[str]] = {}
    for location in locations:
        if location.uri.startswith("s3://"):
            buckets.setdefault(_bucket_and_prefix(location.uri)[0], []).append(location.key)
    return buckets


def node_region() -> tuple[str, str] | None:
    """(region, where it came from): AWS_REGION, AWS_DEFAULT_REGION, else EC2's instance
    metadata (unless AWS_EC2_METADATA_DISABLED); None when nothing says."""
    for name in REGION_ENVS:
        if os.environ.get(name):
            return os.environ[name], name
    if os.environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    try:
        token = urllib.request.Request(
            f"{METADATA}/api/token", method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
        )  # fmt: skip
        with urllib.request.urlopen(token, timeout=METADATA_WAIT_S) as response:
            secret = response.read().decode()
        ask = urllib.request.Request(
            f"{METADATA}/meta-data/placement/region",
            headers={"X-aws-ec2-metadata-token": secret},
        )
        with urllib.request.urlopen(ask, timeout=METADATA_WAIT_S) as response:
            return response.read().decode().strip(), "EC2 instance metadata"
    except OSError:
        return None


def bucket_region(bucket: str) -> str | None:
    """The bucket's region from S3's x-amz-bucket-region header (answered without
    credentials); the endpoint of AWS_ENDPOINT_URL(_S3) when set. None when unknown."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        try:
            return pafs.resolve_s3_region(bucket)
        except OSError:
            return None
    request = urllib.request.Request(f"{endpoint.rstrip('/')}/{bucket}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=HEAD_WAIT_S) as response:
            return response.headers.get("x-amz-bucket-region")
    except urllib.error.HTTPError as error:  # 403/301 still carry the header
        return error.headers.get("x-amz-bucket-region")
    except OSError:
        return None
