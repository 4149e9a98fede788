"""The names of the methods a trial runs: AuG-KD, its ablations and its baselines.

The one list of them. What each one runs is augkd.method.plans.METHOD_PLANS, keyed by these
names; the config's ``method`` key accepts exactly these. Imports nothing heavy.
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["augkd", "ce", "kd", "dfkd", "no_anchor", "no_mixup"]
METHODS: tuple[Method, ...] = get_args(Method)
