"""The answer of a search: its candidates re-run on fresh seeds against the defaults and the
baselines, raced to a verdict; the evaluation table and files; the exported configs."""
