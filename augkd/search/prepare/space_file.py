"""A search-space YAML file read into a SearchSpace: found by path or by a packaged name,
parsed, validated (unknown keys, bounds, every param against the config schema) and its
base config resolved, all before any trial starts; each fault is one sentence naming the
key and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from augkd.basics.config import Config, config_keys, load_config, with_overrides
from augkd.basics.dotted import flatten_dotted
from augkd.basics.errors import ConfigError
from augkd.search.prepare.space import Param, SearchSpace

PACKAGED_SPACES = Path(__file__).resolve().parents[3] / "search_spaces"
"""The checkout's spaces: found by name from any directory (as `ray submit` runs search.py)."""


def _installed_space(stem: str) -> Path | None:
    """A space shipped as package data (augkd.search_spaces) by a non-editable install."""
    from importlib import resources

    try:
        found = resources.files("augkd.search_spaces").joinpath(f"{stem}.yaml")
    except ModuleNotFoundError:
        return None
    return Path(str(found)) if found.is_file() else None


def _format(error: ValidationError, source: str, from_command_line: set[str]) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        if key.split(".")[0] in from_command_line:
            problems.append(f"--set {key}: {item['msg'].removeprefix('Value error, ')}")
        elif item["type"] == "extra_forbidden":
            problems.append(f"unknown search-space key '{key}'")
        else:
            problems.append(
                f"search-space key '{key}': {item['msg'].removeprefix('Value error, ')}"
            )
    return f"{source}: " + "; ".join(problems) + "."


def read_space_file(path: Path) -> dict[str, Any]:
    """The YAML mapping of a space file, or one sentence on why it is not one."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(
            f"Search space '{path}' is not valid YAML{line} "
            f"({getattr(error, 'problem', None) or 'parse error'}); fix the file."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"Search space '{path}' cannot be read ({error}); check --space."
        ) from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(
            f"Search space '{path}' holds a YAML {type(raw).__name__}, not a mapping of "
            "search-space keys (params, sampler, ...); see search_spaces/digits.yaml."
        )
    return raw or {}


def load_space(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    from_command_line: set[str] | None = None,
) -> SearchSpace:
    """Read, validate and resolve a search-space YAML (packaged names like 'digits' work).
    Errors in the top-level keys of ``from_command_line`` blame --set, not the file."""
    path = resolve_space_path(path)
    raw = read_space_file(path)
    raw.update(overrides or {})
    try:
        space = SearchSpace.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(
            _format(error, f"Search space '{path}'", from_command_line or set())
        ) from None
    base = load_config(path.parent / space.base_config if space.base_config else None)
    base = with_overrides(base, flatten_dotted(space.base))
    space.base_resolved = base.to_dict()
    validate_params(space, base)
    return space


def resolve_space_path(path: str | Path) -> Path:
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    for folder in (Path("search_spaces"), PACKAGED_SPACES):
        named = folder / f"{candidate.stem}.yaml"
        if named.is_file():
            return named
    installed = _installed_space(candidate.stem)
    if installed is not None:
        return installed
    if candidate.is_dir():
        raise ConfigError(f"Search space '{path}' is a folder; pass --space a YAML file.")
    raise ConfigError(f"Search space '{path}' does not exist; pass --space with a YAML file path.")


def validate_params(space: SearchSpace, base: Config) -> None:
    """Every param names a real config key, and its extreme values pass the schema."""
    known = set(config_keys())
    for key, param in space.params.items():
        if key not in known:
            raise ConfigError(
                f"Search space param '{key}' is not a config key; check its spelling "
                "against augkd.basics.config (e.g. module2.anchor_weight)."
            )
        for value in param.bounds_to_check():
            try:
                with_overrides(base, {key: value})
            except ConfigError as error:
                raise ConfigError(
                    f"Search space param '{key}' allows a bad value: {error}"
                ) from None
        for other, value in (param.when or {}).items():
            if other not in space.params:
                raise ConfigError(
                    f"Search space param '{key}' is conditional on '{other}', which is not a param."
                )
            check_condition(key, other, value, space.params[other])
    if space.sampler.name == "grid":
        missing = [key for key, param in space.params.items() if param.grid_values() is None]
        if missing:
            raise ConfigError(
                f"The grid sampler needs a 'grid' list for params {missing}; add one to each."
            )
    if space.sampler.name == "nsga2" and space.second_objective is None:
        raise ConfigError("The nsga2 sampler needs 'second_objective' (e.g. student_params, min).")


def can_take(param: Param, value: Any) -> bool:
    """Whether ``param`` can ever be sampled as ``value`` (a `when:` condition on it)."""
    if param.type == "categorical":
        return any(
            value == choice and isinstance(value, bool) == isinstance(choice, bool)
            for choice in param.choices or []
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if param.type == "int" and value != int(value):
        return False
    return param.low <= value <= param.high


def check_condition(key: str, other: str, value: Any, condition: Param) -> None:
    """A `when:` value its param can never take means ``key`` is never sampled."""
    if can_take(condition, value):
        return
    if condition.type == "categorical":
        allowed = f"among its choices {condition.choices}"
    else:
        allowed = f"a {condition.type} value in [{condition.low}, {condition.high}]"
    raise ConfigError(
        f"Search space param '{key}' is conditional on {other} = {value!r}, which is not "
        f"{allowed}, so '{key}' would never be sampled; use a value '{other}' can take."
    )
