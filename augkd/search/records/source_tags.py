"""MLflow's standard source tags on a search's runs (the entry point and the code's commit),
which its UI shows and links."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

COMMIT_ENV = "AUGKD_GIT_COMMIT"
"""Set by the launcher where the code has no .git (a cluster node's installed package)."""


def git_commit() -> str | None:
    """The code's commit: $AUGKD_GIT_COMMIT, else git in the package's checkout."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent, check=True,
        ).stdout.strip() or None  # fmt: skip
    except Exception:
        return None


def source_tags() -> dict[str, str]:
    """MLflow's standard source tags, which its UI shows and links."""
    tags = {"mlflow.source.name": "search.py", "mlflow.source.type": "JOB"}
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags
