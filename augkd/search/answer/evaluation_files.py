"""What an evaluation leaves in the search folder: ``evaluation.parquet`` (one row per run,
the verdict in its schema metadata) and ``baselines.json`` (what the report and the
notebook draw), the verdict read back from it, and ``evaluation_runs/`` (each finished run,
as it finishes)."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from augkd.basics.metric_names import REPORTED
from augkd.search.answer.candidates import DEFAULTS, kept_metrics
from augkd.search.answer.racing import Evaluation
from augkd.storage.files import join_uri, read_bytes, uri_is_file, write_bytes
from augkd.storage.locations import BASELINES_FILE, EVALUATION_FILE, EVALUATION_RUNS_FOLDER

WINNER_KEY = "augkd"
"""The winner's key in baselines.json (the report draws it as AuG-KD)."""


VERDICT_METADATA = b"augkd.verdict"
"""evaluation.parquet's schema metadata key holding the verdict (JSON)."""


class FinishedRuns:
    """Every evaluation run that finished, one small file per (config, seed) written the
    moment it ends: a race stopped part-way (Ctrl-C, a lost driver, a machine taken back)
    loses none of its runs. A re-run plans the same candidates and seeds (exact re-runs), so
    it finds each finished run under the same key and runs only the rest. A key is the
    run's whole config (seed, threads and device included); delete the folder to re-run all.
    """

    def __init__(self, search_path: str) -> None:
        self.folder = join_uri(search_path, EVALUATION_RUNS_FOLDER)

    def _uri(self, config: dict[str, Any]) -> str:
        text = json.dumps(config, sort_keys=True, default=str)
        return join_uri(self.folder, hashlib.sha256(text.encode()).hexdigest()[:24] + ".json")

    def get(self, config: dict[str, Any]) -> dict[str, Any] | None:
        uri = self._uri(config)
        return json.loads(read_bytes(uri)) if uri_is_file(uri) else None

    def put(self, config: dict[str, Any], outcome: dict[str, Any]) -> None:
        """Only runs that ended with their metrics: a run that failed runs again."""
        if "error" not in outcome:
            write_bytes(self._uri(config), json.dumps(outcome).encode())


def _rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    rows = []
    for candidate in evaluation.candidates:
        for run in sorted(candidate.runs, key=lambda r: r["seed"]):
            rows.append({
                "label": candidate.label,
                "method": candidate.method,
                "trial_id": candidate.trial_id,
                "winner": candidate is evaluation.winner,
                "defaults": candidate.is_defaults,
                "judged_at_step": candidate.judged_at,
                "recipe": candidate.recipe,
                "dropped": candidate.dropped,
                "seed": run["seed"],
                "run_seconds": run.get("run_seconds"),
                **{k: run.get(k) for k in kept_metrics(evaluation.objective)},
                **{k: run.get(k) for k in ("error", "config_yaml")},
            })  # fmt: skip
    return rows


def write_evaluation_files(evaluation: Evaluation) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    verdict = evaluation.verdict.record() if evaluation.verdict else None
    table = pa.Table.from_pylist(_rows(evaluation))
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), VERDICT_METADATA: json.dumps(verdict).encode()}
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    write_bytes(join_uri(evaluation.search_path, EVALUATION_FILE), buffer.getvalue())
    compared = {WINNER_KEY: evaluation.winner, DEFAULTS: evaluation.defaults}
    compared |= evaluation.baseline_rows()
    methods = {
        key: {m: candidate.values(m) for m in REPORTED}
        for key, candidate in compared.items()
        if candidate is not None
    }
    payload = {
        "seeds": evaluation.seeds,
        "objective": evaluation.objective.model_dump(),
        "winner": evaluation.winner.label if evaluation.winner else None,
        "winner_trial_id": evaluation.winner.trial_id if evaluation.winner else None,
        "defaults": evaluation.defaults.label if evaluation.defaults else None,
        "recipes": {m: c.recipe for m, c in evaluation.baseline_rows().items()},
        "verdict": verdict,
        "methods": methods,
    }
    write_bytes(
        join_uri(evaluation.search_path, BASELINES_FILE), json.dumps(payload, indent=2).encode()
    )


def read_verdict(search_path: str) -> dict[str, Any] | None:
    """The verdict an evaluation wrote into the search folder (None before one ran)."""
    import pyarrow.parquet as pq

    from augkd.storage.files import read_bytes, uri_is_file

    uri = join_uri(search_path, EVALUATION_FILE)
    if not uri_is_file(uri):
        return None
    metadata = pq.read_schema(io.BytesIO(read_bytes(uri))).metadata or {}
    raw = metadata.get(VERDICT_METADATA)
    return json.loads(raw) if raw else None
