"""MLflow's validation rules for tracking input (``mlflow/utils/validation.py``), with its
limits and messages, so that clients see the errors they already handle.

Functions either return the value to store (long param and tag values are truncated, as
MLflow does by default) or raise ``InvalidParameter``.
"""

from __future__ import annotations

import math
import posixpath
import re
from typing import Any

import orjson

from labdeck.errors import InvalidParameter

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_BATCH_LOG_REQUEST_SIZE = 1_000_000
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_KEY_LENGTH = 250
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_ENTITY_KEY_LENGTH = 250
MAX_RUN_NAME_LENGTH = 250
MAX_DATASET_NAME_SIZE = 500
MAX_DATASET_DIGEST_SIZE = 36
MAX_DATASET_SOURCE_SIZE = 65535
MAX_DATASET_SCHEMA_SIZE = 1048575
MAX_DATASET_PROFILE_SIZE = 16777215
MAX_INPUT_TAG_KEY_SIZE = 255
MAX_INPUT_TAG_VALUE_SIZE = 500
MAX_SEARCH_RESULTS = 50000
DOUBLE_MAX = 1.7976931348623157e308
MAX_EXPERIMENT_ID = 2**31 - 1  # experiment ids are 32-bit integer columns
# Strings stored in bounded columns (``tracking/tables.py``): longer ones are refused
# rather than left to the database, which on PostgreSQL fails the whole request.
MAX_USER_ID_LENGTH = 256
MAX_MODEL_ID_LENGTH = 64
MAX_LOGGED_MODEL_NAME_LENGTH = 500
MAX_LOGGED_MODEL_TYPE_LENGTH = 500

_NAME_CHARS = re.compile(r"^[/\w.\- :]*$")
_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_EXPERIMENT_ID = re.compile(r"^[0-9]{1,18}$")
_BAD_CHARACTERS = (
    "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), "
    "spaces ( ), colon(:) and slashes (/)."
)


def invalid_value(path: str, value: Any, message: str | None = None) -> InvalidParameter:
    try:
        shown = orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # nested deeper than orjson writes (the request parser reads deeper)
        shown = f"<{type(value).__name__} nested too deeply to show>"
    if len(shown) > 300:
        shown = shown[:300] + "..."
    suffix = f": {message}" if message else "."
    return InvalidParameter(f"Invalid value {shown} for parameter '{path}' supplied{suffix}")


def missing(path: str) -> InvalidParameter:
    return InvalidParameter(f"Missing value for required parameter '{path}'.")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _resolves_elsewhere(name: str) -> bool:
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


# Keys already found valid: a batch logs the same few keys thousands of times.
_VALID_KEYS: set[str] = set()
_VALID_KEYS_MAX = 10_000


def key_name(name: Any, path: str, what: str = "key", *, length_name: str | None = None) -> str:
    """A metric, param or tag key: allowed characters, no path tricks, at most 250 chars.

    ``length_name`` is how MLflow names the key when it is too long ("Param key",
    "Metric name"); by default the ``path``.
    """
    if type(name) is str and name in _VALID_KEYS:
        return name
    if name is None:
        raise missing(path)
    if not isinstance(name, str):
        raise invalid_value(path, name, f"the {what} must be a string")
    if not _NAME_CHARS.match(name):
        raise invalid_value(path, name, _BAD_CHARACTERS)
    if _resolves_elsewhere(name):
        raise invalid_value(
            path,
            name,
            "Names may be treated as files in certain cases, and must not resolve to other names "
            f"when treated as such. This name would resolve to {posixpath.normpath(name)!r}",
        )
    if len(name) > MAX_ENTITY_KEY_LENGTH:
        raise exceeds_length(length_name or path, MAX_ENTITY_KEY_LENGTH)
    if len(_VALID_KEYS) < _VALID_KEYS_MAX:
        _VALID_KEYS.add(name)
    return name


def exceeds_length(name: str, limit: int) -> InvalidParameter:
    return InvalidParameter(f"'{name}' exceeds the maximum length of {limit} characters")


def limited(value: Any, path: str, limit: int, *, truncate: bool) -> str:
    if not isinstance(value, str):
        raise invalid_value(path, value, "expected a string")
    if len(value) <= limit:
        return value
    if truncate:
        return value[:limit]
    raise exceeds_length(path, limit)


def optional_limited(value: Any, path: str, limit: int) -> str | None:
    """An optional string (None or "" mean unset) of at most ``limit`` characters."""
    if value is None or value == "":
        return None
    return limited(value, path, limit, truncate=False)


def param(key: Any, value: Any, prefix: str = "") -> tuple[str, str]:
    key = key_name(key, _join(prefix, "key"), length_name="Param key")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise invalid_value(_join(prefix, "value"), value, "expected a string")
    return key, value[:MAX_PARAM_VAL_LENGTH]


def run_tag(key: Any, value: Any, prefix: str = "") -> tuple[str, str]:
    key = key_name(key, _join(prefix, "key"))
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise invalid_value(_join(prefix, "value"), value, "expected a string")
    return key, value[:MAX_TAG_VAL_LENGTH]


def experiment_tag(key: Any, value: Any) -> tuple[str, str]:
    key = key_name(key, "key")
    if len(key) > MAX_EXPERIMENT_TAG_KEY_LENGTH:
        raise exceeds_length("key", MAX_EXPERIMENT_TAG_KEY_LENGTH)
    if value is None:
        raise missing("value")
    return key, limited(value, "value", MAX_EXPERIMENT_TAG_VAL_LENGTH, truncate=False)


def metric_value(value: Any, path: str, key: str, timestamp: Any) -> tuple[float, bool]:
    """The value to store and its NaN flag. ±Inf are clamped to ±DOUBLE_MAX, as MLflow does."""
    if type(value) is float and -DOUBLE_MAX <= value <= DOUBLE_MAX:
        return value, False
    if value is None:
        raise missing(path)
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(value)
        if special is None:
            try:
                value = float(value)
            except ValueError:
                raise invalid_value(path, value, _not_double(timestamp)) from None
        else:
            value = special
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_value(path, value, _not_double(timestamp))
    value = float(value)
    if value != value:
        return 0.0, True
    if value == math.inf:
        return DOUBLE_MAX, False
    if value == -math.inf:
        return -DOUBLE_MAX, False
    return value, False


def _not_double(timestamp: Any) -> str:
    return f"(timestamp={timestamp}). Please specify value as a valid double (64-bit floating point)"


def int64(value: Any, path: str, *, nonnegative: bool = False, what: str = "value") -> int:
    if type(value) is int and (0 if nonnegative else -(2**63)) <= value < 2**63:
        return value
    if isinstance(value, bool):
        raise invalid_value(path, value, f"{what} must be a 64-bit integer")
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        result = int(value)
    else:
        raise invalid_value(path, value, f"{what} must be a 64-bit integer")
    if not -(2**63) <= result < 2**63 or (nonnegative and result < 0):
        raise invalid_value(path, value, f"{what} must be a {'nonnegative ' if nonnegative else ''}64-bit integer")
    return result


def run_id(value: Any, path: str = "run_id") -> str:
    if not isinstance(value, str) or not _RUN_ID.match(value):
        raise invalid_value(path, value)
    return value


def experiment_id(value: Any, path: str = "experiment_id") -> int:
    """Experiment ids are integers written as strings; anything else cannot exist."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _EXPERIMENT_ID.match(value):
        raise InvalidParameter(f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer.")
    number = int(value)
    if number > MAX_EXPERIMENT_ID:
        raise InvalidParameter(
            f"Invalid experiment ID '{value}'. Experiment ID must be a valid integer "
            f"no greater than {MAX_EXPERIMENT_ID}."
        )
    return number


def experiment_name(name: Any) -> str:
    if name is None or name == "":
        raise InvalidParameter(f"Invalid experiment name: '{'' if name is None else name}'")
    if not isinstance(name, str):
        raise InvalidParameter(f"Invalid experiment name: {name}. Expects a string.")
    if not name.strip():
        raise InvalidParameter(f"Invalid experiment name: '{name}'")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise InvalidParameter(f"'name' exceeds the maximum length of {MAX_EXPERIMENT_NAME_LENGTH} characters")
    return name


_LOGGED_MODEL_NAME_BAD_CHARS = ("/", ":", ".", "%", '"', "'")


def logged_model_name(name: str | None) -> str | None:
    """MLflow's rule for logged model names; None or "" leave the name to be generated."""
    if not name:
        return None
    if any(c in name for c in _LOGGED_MODEL_NAME_BAD_CHARS):
        raise InvalidParameter(
            f"Invalid model name ({name!r}) provided. Model name must be a non-empty string "
            f"and cannot contain the following characters: {_LOGGED_MODEL_NAME_BAD_CHARS}"
        )
    return limited(name, "name", MAX_LOGGED_MODEL_NAME_LENGTH, truncate=False)


def artifact_location(location: Any) -> str | None:
    if location is None or location == "":
        return None
    if not isinstance(location, str):
        raise invalid_value("artifact_location", location, "expected a string")
    if location.startswith("runs:"):
        raise InvalidParameter(f"Artifact location cannot be a runs:/ URI. Given: '{location}'")
    return location


def batch_limits(metrics: int, params: int, tags: int) -> None:
    for what, limit, count in (
        ("metrics", MAX_METRICS_PER_BATCH, metrics),
        ("params", MAX_PARAMS_TAGS_PER_BATCH, params),
        ("tags", MAX_PARAMS_TAGS_PER_BATCH, tags),
        ("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, metrics + params + tags),
    ):
        if count > limit:
            raise InvalidParameter(
                f"A batch logging request can contain at most {limit} {what}. Got {count} {what}. "
                f"Please split up {what} across multiple requests and try again."
            )


def max_results(value: int | None, limit: int | None, path: str = "max_results") -> int:
    """A page size of 1..``limit`` (None: no upper bound). Unset reads as 0, as in MLflow's
    protos, so a search without ``max_results`` is refused with MLflow's message."""
    if value is None:
        value = 0
    if value < 1:
        raise InvalidParameter(f"Invalid value {value} for parameter '{path}' supplied. It must be a positive integer")
    if limit is not None and value > limit:
        raise InvalidParameter(f"Invalid value {value} for parameter '{path}' supplied. It must be at most {limit}")
    return value


def dataset(raw: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise invalid_value(prefix, raw, "expected an object")
    out: dict[str, Any] = {}
    for name, limit, required in (
        ("name", MAX_DATASET_NAME_SIZE, True),
        ("digest", MAX_DATASET_DIGEST_SIZE, True),
        ("source_type", 36, True),
        ("source", MAX_DATASET_SOURCE_SIZE, True),
        ("schema", MAX_DATASET_SCHEMA_SIZE, False),
        ("profile", MAX_DATASET_PROFILE_SIZE, False),
    ):
        value = raw.get(name)
        if value is None or value == "":
            if required:
                raise missing(f"{prefix}.{name}")
            out[name] = None
            continue
        if not isinstance(value, str):
            raise invalid_value(f"{prefix}.{name}", value, "expected a string")
        if len(value) > limit:
            raise InvalidParameter(f"Dataset {name} exceeds the maximum length of {limit} characters")
        out[name] = value
    return out


def input_tag(raw: Any, prefix: str) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise invalid_value(prefix, raw, "expected an object")
    key, value = raw.get("key"), raw.get("value")
    if not isinstance(key, str) or key == "":
        raise missing(f"{prefix}.key")
    if not isinstance(value, str):
        raise missing(f"{prefix}.value")
    if len(key) > MAX_INPUT_TAG_KEY_SIZE:
        raise InvalidParameter(f"Input tag key exceeds the maximum length of {MAX_INPUT_TAG_KEY_SIZE} characters")
    if len(value) > MAX_INPUT_TAG_VALUE_SIZE:
        raise InvalidParameter(f"Input tag value exceeds the maximum length of {MAX_INPUT_TAG_VALUE_SIZE} characters")
    return key, value
