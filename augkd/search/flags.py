"""The command-line flags that search.py and the `augkd` CLI share, declared once so that
both say the same thing and default the same way."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

TRACKING_DEFAULT = "default: $AUGKD_TRACKING_URI, else mlflow.db in the working directory"


def add_address_flag(parser: ArgumentParser | Any, whose: str) -> None:
    """--address: the Ray cluster a command joins (``whose``: whose own local Ray it starts
    otherwise, e.g. "this search's")."""
    parser.add_argument(
        "--address",
        help="the Ray cluster to join: auto (the one `ray start` runs on this machine, as on "
        "a cluster's head node) or HOST:PORT; default: $RAY_ADDRESS, else a local Ray of "
        f"{whose} own",
    )


def add_tracking_flag(parser: ArgumentParser | Any, what: str) -> None:
    """--tracking-uri: ``what`` the store is to this command; the default is the search's
    (augkd.storage.locations.default_tracking_uri)."""
    parser.add_argument("--tracking-uri", default=None, help=f"{what} ({TRACKING_DEFAULT})")


def add_baselines_flag(parser: ArgumentParser | Any) -> None:
    """--baselines: the methods an evaluation compares the search's configs against."""
    from augkd.search.answer.candidates import BASELINES

    parser.add_argument(
        "--baselines",
        default=",".join(BASELINES),
        help="comma-separated methods to compare against",
    )
    parser.add_argument(
        "--tune-baselines", action="store_true",
        help="before the race, give each baseline a search of its own at the same compute "
        "(the searched keys its method reads); its best config races as a third recipe",
    )  # fmt: skip


def add_race_flags(parser: ArgumentParser | Any, first_seeds_flag: str) -> None:
    """--max-seeds and --margin of an evaluation's race (augkd.search.answer.racing)."""
    from augkd.search.answer.racing import DEFAULT_MARGIN, DEFAULT_MAX_SEEDS, RaceSettings

    parser.add_argument(
        "--max-seeds", type=int, default=DEFAULT_MAX_SEEDS,
        help=f"add fresh seeds in rounds of {RaceSettings.round_seeds} after the first "
        f"{first_seeds_flag} until the verdict is decided or this many ran",
    )  # fmt: skip
    parser.add_argument(
        "--margin", type=float, default=DEFAULT_MARGIN,
        help="points of test Acc@1 within which the winner and a reference count as "
        "equivalent (an interval inside ±margin decides 'keep the defaults')",
    )  # fmt: skip
