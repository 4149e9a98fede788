"""The repository's root, for tests that run its scripts or read its files."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
