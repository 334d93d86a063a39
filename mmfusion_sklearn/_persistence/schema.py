"""Checks of a saved model's files before anything is built from them.

``config.json`` is checked against a schema (known keys and their types, the
estimator's parameter constraints, consistent classes, modalities, preprocessing and
input shapes), and the sizes it states against the shapes of the tensors in the
header of ``model.safetensors``, so that a damaged or edited file is an error naming
the file and the field, never a silently different model or a huge allocation.
It is one module (about 670 lines) because every field of one file format is checked
here, each by a small function, so that a reader sees the whole format in one place.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .._data import KINDS, Modality, resolve_modality_spec
from .._training.plans import HISTORY_COLUMNS

#: Largest number of values one sample of a modality may have (1 GiB of float32).
MAX_SAMPLE_SIZE = 2**28
#: Largest config.json read, checked with ``stat`` before reading (a long history and
#: many categories take a few MiB).
MAX_CONFIG_BYTES = 64 * 2**20
#: Largest safetensors header read (the safetensors library's own limit).
MAX_HEADER_BYTES = 100_000_000
#: Most keys and values one JSON text (config.json, a safetensors header) may hold,
#: counted before parsing, so that a file cannot make load build millions of objects.
MAX_JSON_ITEMS = 2_000_000
#: Deepest nesting of JSON arrays and objects (config.json nests 5 levels), measured
#: before parsing: the JSON parser recurses once per level.
MAX_JSON_DEPTH = 64
#: Bytes per element of the tensor dtypes a model file may hold.
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
               "I8": 1, "U8": 1, "BOOL": 1}
_CLASSES_DTYPE = re.compile(r"[<>|=]?(?:[iu][1248]|f[248]|b1|U[1-9][0-9]{0,5})")
_SHA256 = re.compile(r"[0-9a-f]{64}")

#: Top-level keys of config.json: the type of each, and whether it is required.
TOP_LEVEL = {
    "format_version": (int, True), "package_version": (str, False),
    "estimator": (str, True), "params": (dict, True), "classes": (list, False),
    "classes_dtype": (str, False), "target": (dict, False), "survival": (dict, False),
    "modalities": (dict, True),
    "modality_order": (list, False),
    "preprocessors": (dict, True), "input_shapes": (dict, True),
    "ensemble_size": (int, False), "history": (list, True), "n_features_in_": (int, False),
    "feature_names_in_": (list, False), "weights_sha256": (str, False),
    "temperatures": (dict, False),
}
MODALITY_FIELDS = {"kind", "columns", "trainable", "image_size", "categorical"}
PREPROCESSOR_FIELDS = {
    "tabular": {"kind", "name", "categorical", "columns_", "categorical_", "numeric_",
                "mean_", "scale_", "indicator_", "categories_", "n_features_out_", "named_",
                "durations_"},
    "embedding": {"kind", "name", "n_features_out_"},
    "image": {"kind", "name", "image_size", "standardize", "channels_", "shape_", "mean_",
              "scale_"},
}
PREPROCESSOR_FIELDS["volume"] = PREPROCESSOR_FIELDS["image"]
SPATIAL_DIMS = {"image": 2, "volume": 3}


class ModelFileError(ValueError):
    """A saved model file that is damaged, edited or inconsistent with its other file."""


def invalid(path: Path, field: str, problem: str) -> ModelFileError:
    """The error for ``field`` of the file ``path``: ``Cannot load '<path>': <field> ...``."""
    return ModelFileError(f"Cannot load {str(path)!r}: {field} {problem}")


# -- reading -------------------------------------------------------------------------------
_STRING = re.compile(rb'"[^"]*"')  # a JSON string, once its escaped quotes are removed
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def parse_json(data: bytes, path: Path, what: str) -> Any:
    """Parse the JSON text ``data`` (of the file ``path``; ``what`` names it in errors) in
    time and memory linear in its size: a text of more than :data:`MAX_JSON_ITEMS` keys and
    values, nested deeper than :data:`MAX_JSON_DEPTH`, with a key twice in one object, or
    not valid UTF-8 JSON is a :class:`ModelFileError`.

    Both limits are measured before parsing, on the text's skeleton (its strings
    removed: escaped backslashes, then escaped quotes, then what lies between quotes,
    each one linear pass), so that neither Python objects nor recursion are spent on a
    text that exceeds them.
    """
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    items = unescaped.count(b'"') // 2  # each string is a key or a value: a first bound
    if items <= MAX_JSON_ITEMS:
        skeleton = _STRING.sub(b"", unescaped)
        items = skeleton.count(b",") + skeleton.count(b":") + 1
    del unescaped
    if items > MAX_JSON_ITEMS:
        raise invalid(path, what, f"holds more than {MAX_JSON_ITEMS} JSON keys and values "
                      f"({items} or more).")
    if _max_depth(skeleton.translate(None, _NOT_BRACKETS)) > MAX_JSON_DEPTH:
        raise invalid(path, what, f"nests arrays and objects more than {MAX_JSON_DEPTH} "
                      "levels deep.")
    del skeleton

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):  # linear: only a repeated key makes the dict shorter
            seen: set[str] = set()
            repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
            raise invalid(path, f"key {repeated!r}", "appears twice in one JSON object.")
        return out

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except ModelFileError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError: also a number of more digits than int() converts
        raise invalid(path, what, f"is not valid JSON ({exc}).") from exc


def _max_depth(brackets: bytes) -> int:
    """The deepest nesting of a string of brackets (stops early past the limit)."""
    codes = np.frombuffer(brackets, dtype=np.uint8)
    level = deepest = 0
    for start in range(0, len(codes), 1 << 20):
        chunk = codes[start : start + (1 << 20)]
        levels = np.cumsum(np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1)) + level
        deepest = max(deepest, int(levels.max()))
        if deepest > MAX_JSON_DEPTH:
            break
        level = int(levels[-1])
    return deepest


def open_regular(path: Path, dir_fd: int | None = None) -> BinaryIO:
    """``path`` opened for reading (symbolic links followed), refusing what is not a
    regular file: a FIFO or a device would make load wait or read without end.

    Opened non-blocking, so that a FIFO cannot block ``open`` itself; ``dir_fd`` opens
    ``path`` (a name) inside that open folder.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_BINARY", 0)
    fd = os.open(path.name, flags, dir_fd=dir_fd) if dir_fd is not None \
        else os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise invalid(path, "the file", "is not a regular file.")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_config(path: Path, stream: BinaryIO | None = None) -> dict[str, Any]:
    """Parse config.json (from ``stream`` when given, else opened), refusing a file of
    more than :data:`MAX_CONFIG_BYTES` (by its size, before reading), what
    :func:`parse_json` refuses and a non-object."""
    if stream is None:
        with open_regular(path) as own:
            return read_config(path, own)
    size = os.fstat(stream.fileno()).st_size
    data = b""
    if size <= MAX_CONFIG_BYTES:  # the size first, nothing read; then the bytes stat
        # announced, and past them (a file that grows, or whose size stat does not know)
        # at most one byte more than the limit
        chunks = [stream.read(size + 1)]
        total = len(chunks[0])
        while size < total <= MAX_CONFIG_BYTES:
            chunks.append(stream.read(min(1 << 20, MAX_CONFIG_BYTES + 1 - total)))
            if not chunks[-1]:
                break
            total += len(chunks[-1])
        data = b"".join(chunks)
    if size > MAX_CONFIG_BYTES or len(data) > MAX_CONFIG_BYTES:
        raise invalid(path, "the file", f"is larger than {MAX_CONFIG_BYTES} bytes, the "
                      "most a config.json may have.")
    config = parse_json(data, path, "it")
    if not isinstance(config, dict):
        raise invalid(path, "the file", f"must hold a JSON object, not {_kind(config)}.")
    return config


def read_header(stream: BinaryIO, size: int,
                path: Path) -> tuple[dict[str, tuple[str, tuple[int, ...]]], int]:
    """``({key: (dtype, shape)}, header length)`` of the safetensors file open in
    ``stream`` (``size`` bytes), reading only its 8-byte header length and its header.

    Every tensor's byte range must lie in the file and match its shape and dtype, the
    ranges must tile the data without gap or overlap, and the file's size must be what
    the header announces (8 + the header's length + the end of the last tensor), so that
    the shapes read here are backed by the file's own bytes and nothing else is in it.
    """
    stream.seek(0)
    prefix = stream.read(8)
    if len(prefix) < 8 or size < 8:
        raise invalid(path, "the file", "is too short to be a safetensors file.")
    length = int.from_bytes(prefix, "little")
    if length > min(size - 8, MAX_HEADER_BYTES):
        raise invalid(path, "the header", f"claims {length} bytes; the file has {size}.")
    raw = stream.read(length)
    if len(raw) != length:
        raise invalid(path, "the file", "became shorter while it was read.")
    header = parse_json(raw, path, "the header")
    if not isinstance(header, dict):
        raise invalid(path, "the header", "is not a JSON object.")
    room = size - 8 - length
    out, ranges = {}, []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not (isinstance(entry, dict) and entry.get("dtype") in DTYPE_SIZES
                and _int_list(entry.get("shape"), low=0)
                and _int_list(entry.get("data_offsets"), low=0)
                and len(entry["data_offsets"]) == 2):
            raise invalid(path, f"tensor {key!r}", "has no valid dtype, shape and offsets.")
        start, end = entry["data_offsets"]
        nbytes = math.prod(entry["shape"]) * DTYPE_SIZES[entry["dtype"]]
        if not start <= end <= room or end - start != nbytes:
            raise invalid(path, f"tensor {key!r}", "has data offsets that do not match "
                          "its shape or lie beyond the end of the file.")
        out[key] = (entry["dtype"], tuple(entry["shape"]))
        ranges.append((start, end))
    position = 0
    for start, end in sorted(ranges):
        if start != position:
            raise invalid(path, "the header", "has tensors whose data offsets leave a gap "
                          f"or overlap (at byte {start} of the data).")
        position = end
    if 8 + length + position != size:
        raise invalid(path, "the file", f"is {size} bytes, but its header announces "
                      f"{8 + length + position} (8 + a {length}-byte header + {position} "
                      "bytes of tensors): it was cut or extended, or is another file.")
    return out, length


# -- config.json ---------------------------------------------------------------------------
def check_top_level(config: dict[str, Any], path: Path) -> None:
    """Known keys only, of the right types, the required ones present."""
    for key, value in config.items():
        if key not in TOP_LEVEL:
            raise invalid(path, f"key {key!r}", f"is unknown; known keys: {sorted(TOP_LEVEL)}.")
        kind, _ = TOP_LEVEL[key]
        if not _is(value, kind):
            raise invalid(path, key, f"must be {_kind_name(kind)}, not {_kind(value)}.")
    missing = [k for k, (_, required) in TOP_LEVEL.items() if required and k not in config]
    if missing:
        raise invalid(path, missing[0], "is missing.")


def validate_config(config: dict[str, Any], cls: type, version: int,
                    path: Path) -> dict[str, Any]:
    """Check config.json (its format already accepted) and return what load builds from.

    Returns
    -------
    dict
        ``order`` (modality names in the network's order), ``params`` (constructor
        arguments), ``target`` (a classifier's ``{"classes": ndarray}``, a regressor's
        ``{"mean": float, "scale": float}``), ``modalities``, ``preprocessors`` (states)
        and ``input_shapes``, each in ``order``; ``ensemble_size``.
    """
    check_top_level(config, path)
    names = [c.__name__ for c in cls.__mro__]
    if config["estimator"] not in names:
        raise invalid(path, "estimator", f"is {config['estimator']!r}; this is {names[0]}.")
    order = _modality_order(config, version, path)
    modalities = {name: _modality(config["modalities"][name], name, path) for name in order}
    preprocessors = _keyed(config, "preprocessors", order, path)
    shapes = _keyed(config, "input_shapes", order, path)
    for name in order:
        kind = modalities[name].kind
        preprocessors[name] = _preprocessor(preprocessors[name], name, kind, path)
        shapes[name] = _input_shape(shapes[name], name, kind, preprocessors[name], path)
    if sum(math.prod(s) for s in shapes.values()) > MAX_SAMPLE_SIZE:
        raise invalid(path, "input_shapes", f"total more than {MAX_SAMPLE_SIZE} values.")
    size = config.get("ensemble_size", 1)
    if size < 1 or (version == 1 and size != 1):
        raise invalid(path, "ensemble_size", f"is {size}; it must be 1 or more (1 in "
                      "format 1).")
    _check_history(config["history"], path)
    _check_features(config, path)
    temperatures = _temperatures(config.get("temperatures"), len(order), path)
    if "weights_sha256" in config and not _SHA256.fullmatch(config["weights_sha256"]):
        raise invalid(path, "weights_sha256", "must be 64 lowercase hexadecimal digits.")
    return {
        "order": order, "params": check_params(config["params"], cls, order, path),
        "target": _target(config, cls, path),
        "modalities": modalities, "preprocessors": preprocessors, "input_shapes": shapes,
        "ensemble_size": size, "temperatures": temperatures,
    }


def _temperatures(value: Any, n_modalities: int, path: Path) -> dict[str, Any] | None:
    """The calibration table: patterns of M bools, positive finite temperatures."""
    if value is None:
        return None
    field = "temperatures"
    if set(value) != {"patterns", "values", "default", "counts"}:
        raise invalid(path, field, "must have the keys 'patterns', 'values', 'default' and "
                      f"'counts'; got {sorted(value)}.")
    patterns, values, counts = value["patterns"], value["values"], value["counts"]
    if not (isinstance(patterns, list) and isinstance(values, list)
            and isinstance(counts, list) and len(patterns) == len(values) == len(counts)):
        raise invalid(path, field, "must hold lists 'patterns', 'values' and 'counts' of "
                      "one length.")
    for i, pattern in enumerate(patterns):
        if not (isinstance(pattern, list) and len(pattern) == n_modalities
                and all(isinstance(v, bool) for v in pattern) and any(pattern)):
            raise invalid(path, f"{field}.patterns[{i}]", f"must be {n_modalities} booleans "
                          f"(one per modality), at least one true; got {_short(pattern)}.")
    for i, t in enumerate([*values, value["default"]]):
        if not (_number(t) and 0 < t < math.inf):
            where = f"{field}.values[{i}]" if i < len(values) else f"{field}.default"
            raise invalid(path, where, f"must be a positive finite number; got {t!r}.")
    if not all(_int(c, low=0) for c in counts):
        raise invalid(path, f"{field}.counts", "must be non-negative integers.")
    return value


def _modality_order(config: dict[str, Any], version: int, path: Path) -> list[str]:
    names = list(config["modalities"])
    if not names:
        raise invalid(path, "modalities", "is empty.")
    if "modality_order" not in config:  # formats 1, 2 and early 3: the dict's order
        return names
    order = config["modality_order"]
    if version < 3 and order != names:  # these formats' networks follow the dict
        raise invalid(path, "modality_order", f"is not part of format {version}, whose "
                      f"network follows the order of 'modalities' ({names}); got {order!r}.")
    if not all(isinstance(n, str) for n in order) or len(set(order)) != len(order) \
            or set(order) != set(names):
        raise invalid(path, "modality_order", f"must list each modality of 'modalities' "
                      f"({sorted(names)}) once; got {order!r}.")
    return list(order)


def _keyed(config: dict[str, Any], key: str, order: list[str], path: Path) -> dict:
    value = config[key]
    if set(value) != set(order):
        raise invalid(path, key, f"has the modalities {sorted(value)}; 'modalities' has "
                      f"{sorted(order)}.")
    return {name: value[name] for name in order}


def _modality(state: Any, name: str, path: Path, field: str = "modalities") -> Modality:
    """A fitted modality (its kind resolved), or, in ``params.modalities``, a declared one
    (its kind may be null: inferred in fit)."""
    fitted = field == "modalities"
    field = f"{field}.{name}"
    if not name:
        raise invalid(path, field, "is an empty modality name.")
    if not isinstance(state, dict) or not set(state) <= MODALITY_FIELDS:
        raise invalid(path, field, f"must be an object with keys among "
                      f"{sorted(MODALITY_FIELDS)}; got {state!r}.")
    if state.get("kind") not in KINDS and (fitted or state.get("kind") is not None):
        raise invalid(path, f"{field}.kind", f"must be one of {list(KINDS)}; got "
                      f"{state.get('kind')!r}.")
    checks = {"columns": lambda v: v is None or isinstance(v, str) or _str_list(v),
              "trainable": lambda v: isinstance(v, bool),
              "image_size": lambda v: v is None or (_int_list(v, low=1, high=2**16)
                                                    and len(v) in (2, 3)),
              "categorical": lambda v: v is None or _str_list(v)}
    for key, check in checks.items():
        if key in state and not check(state[key]):
            raise invalid(path, f"{field}.{key}", f"has an invalid value {state[key]!r}.")
    return Modality(**state)


def _preprocessor(state: Any, name: str, kind: str, path: Path) -> dict[str, Any]:
    field = f"preprocessors.{name}"
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise invalid(path, f"{field}.kind", f"must be {kind!r} (the modality's kind).")
    allowed = PREPROCESSOR_FIELDS[kind]
    required = allowed - {"standardize", "named_", "durations_"}  # absent in early files
    if not required <= set(state) <= allowed:
        raise invalid(path, field, f"must have the keys {sorted(required)}; got "
                      f"{sorted(state)}.")
    checks: dict[str, Callable[[Any], bool]] = {"name": lambda v: v == name}
    if kind == "tabular":
        columns = state["columns_"]
        checks |= {
            "categorical": _str_list, "columns_": lambda v: _str_list(v, unique=True),
            "categorical_": lambda v: _str_list(v) and set(v) <= set(columns),
            "numeric_": lambda v: v == [c for c in columns if c not in state["categorical_"]],
            "mean_": lambda v: _float_list(v, len(state["numeric_"])),
            "scale_": lambda v: _float_list(v, len(state["numeric_"]), positive=True),
            "indicator_": lambda v: _str_list(v) and set(v) <= set(state["numeric_"]),
            "categories_": lambda v: isinstance(v, dict) and set(v) == set(state["categorical_"])
            and all(_str_list(c, unique=True) for c in v.values()),
            "named_": lambda v: isinstance(v, bool),
            "durations_": lambda v: _str_list(v) and set(v) <= set(state["numeric_"]),
            "n_features_out_": lambda v: _int(v, low=1) and v == len(state["numeric_"])
            + len(state["indicator_"]) + sum(len(c) for c in state["categories_"].values()),
        }
    elif kind == "embedding":
        checks["n_features_out_"] = lambda v: _int(v, low=1)
    else:
        dims = SPATIAL_DIMS[kind]
        checks |= {
            "image_size": lambda v: v is None or (_int_list(v, low=1) and len(v) == dims),
            "standardize": lambda v: isinstance(v, bool),
            "channels_": lambda v: _int(v, low=1),
            "shape_": lambda v: _int_list(v, low=1) and len(v) == dims,
            "mean_": lambda v: _float_list(v, state["channels_"]),
            "scale_": lambda v: _float_list(v, state["channels_"], positive=True),
        }
    for key, check in checks.items():  # in order: later checks use earlier fields
        if key in state and not _safe(check, state[key]):
            raise invalid(path, f"{field}.{key}", f"has an invalid or inconsistent value "
                          f"{_short(state[key])}.")
    if kind == "tabular":  # the one-hot blocks follow categorical_, whatever the JSON order
        state = {**state, "categories_": {c: state["categories_"][c]
                                          for c in state["categorical_"]}}
    return state


def _input_shape(shape: Any, name: str, kind: str, state: dict[str, Any],
                 path: Path) -> tuple[int, ...]:
    field = f"input_shapes.{name}"
    if not _int_list(shape, low=1, high=MAX_SAMPLE_SIZE) or math.prod(shape) > MAX_SAMPLE_SIZE:
        raise invalid(path, field, f"must be a list of positive ints of at most "
                      f"{MAX_SAMPLE_SIZE} values in all; got {_short(shape)}.")
    expected = ([state["n_features_out_"]] if kind in ("tabular", "embedding")
                else [state["channels_"], *state["shape_"]])
    if shape != expected:
        raise invalid(path, field, f"is {shape}, but the preprocessing of {name!r} gives "
                      f"{expected}.")
    return tuple(shape)


#: The config keys that hold each kind of fitted target; an estimator class names its
#: kind in ``_target_kind`` ("classes" by default).
TARGET_KEYS = {"classes": ("classes", "classes_dtype"), "continuous": ("target",),
               "survival": ("survival",)}


def _target(config: dict[str, Any], cls: type, path: Path) -> dict[str, Any]:
    """The fitted target: a classifier's classes, a regressor's standardisation, or a
    survival model's baseline hazards."""
    kind = getattr(cls, "_target_kind", "classes")
    for key in TARGET_KEYS[kind]:
        if key not in config:
            raise invalid(path, key, "is missing.")
    for other, keys in TARGET_KEYS.items():
        stray = [k for k in keys if other != kind and k in config]
        if stray:
            raise invalid(path, stray[0], f"does not belong to a {cls.__name__}.")
    if kind == "classes":
        return {"classes": _classes(config["classes"], config["classes_dtype"], path)}
    if kind == "survival":
        params = config.get("params") if _is(config.get("params"), dict) else {}
        return _survival(config["survival"], config.get("ensemble_size", 1),
                         params.get("loss", "cox"), path)
    target = config["target"]
    if set(target) != {"mean", "scale"} or not all(
        _number(target[k]) and math.isfinite(target[k]) for k in target
    ) or not target["scale"] > 0:
        raise invalid(path, "target", "must be {'mean': finite number, 'scale': finite "
                      f"number > 0}}; got {_short(target)}.")
    return {"mean": float(target["mean"]), "scale": float(target["scale"])}


def _survival(survival: Any, ensemble_size: Any, loss: Any, path: Path) -> dict[str, Any]:
    """A survival model's event times, last training time and either its baseline
    cumulative hazards and calibration slope (``loss="cox"``: one row per member, as
    :func:`breslow_baseline` makes them) or its interval edges (``loss="discrete"``)."""
    keys = {"cuts"} if loss == "discrete" else {"cum_baseline", "slope"}
    shape = ("'cuts': [...]" if loss == "discrete"
             else "'cum_baseline': [[...], ...], 'slope': number")
    if not _is(survival, dict) or set(survival) != {"unique_times", *keys, "max_time"}:
        raise invalid(path, "survival", f"must be {{'unique_times': [...], {shape}, "
                      f"'max_time': number}} for loss={loss!r}; got {_short(survival)}.")
    times, max_time = survival["unique_times"], survival["max_time"]
    field = "survival.unique_times"
    if not _is(times, list) or not times or not all(
            _number(t) and math.isfinite(t) and t >= 0 for t in times):
        raise invalid(path, field, "must be a non-empty list of finite times >= 0; got "
                      f"{_short(times)}.")
    times = np.array(times, dtype=np.float64)
    if not (np.diff(times) > 0).all():
        raise invalid(path, field, "must be strictly ascending, as fit stores them.")
    if not (_number(max_time) and math.isfinite(max_time) and max_time >= times[-1]):
        raise invalid(path, "survival.max_time", "must be a finite number at least the "
                      f"last event time {times[-1]!r}; got {_short(max_time)}.")
    out = {"unique_times": times, "max_time": float(max_time)}
    if loss == "discrete":
        cuts = survival["cuts"]
        if not _is(cuts, list) or len(cuts) < 2 or not all(
                _number(c) and math.isfinite(c) for c in cuts) or cuts[0] != 0 or not (
                np.diff(np.array(cuts, dtype=np.float64)) > 0).all():
            raise invalid(path, "survival.cuts", "must be a strictly ascending list of at "
                          f"least 2 finite edges from 0; got {_short(cuts)}.")
        return {**out, "cuts": [float(c) for c in cuts]}
    base = survival["cum_baseline"]
    field = "survival.cum_baseline"
    rows = ensemble_size if _int(ensemble_size, 1) else 1
    if not _is(base, list) or len(base) != rows or not all(
            _is(row, list) and len(row) == len(times) for row in base):
        raise invalid(path, field, f"must hold {rows} list(s) (one per member) of "
                      f"{len(times)} numbers (one per time); got {_short(base)}.")
    if not all(_number(v) and math.isfinite(v) and v > 0 for row in base for v in row):
        raise invalid(path, field, "must hold finite cumulative hazards > 0.")
    base = np.array(base, dtype=np.float64)
    if not (np.diff(base, axis=1) >= 0).all():
        raise invalid(path, field, "must be non-decreasing over time (a cumulative "
                      "hazard).")
    slope = survival["slope"]
    if not (_number(slope) and math.isfinite(slope) and slope >= 0):
        raise invalid(path, "survival.slope", f"must be a finite number >= 0; got "
                      f"{_short(slope)}.")
    return {**out, "cum_baseline": base, "slope": float(slope)}


def _classes(classes: list, dtype_text: str, path: Path) -> np.ndarray:
    if dtype_text != "object" and not _CLASSES_DTYPE.fullmatch(dtype_text):
        raise invalid(path, "classes_dtype", f"is {dtype_text!r}; expected a numpy dtype "
                      "of ints, floats, bools or strings (e.g. '<i8', '<U5') or 'object'.")
    dtype = np.dtype(object if dtype_text == "object" else dtype_text)
    if len(classes) < 2:
        raise invalid(path, "classes", f"must hold at least 2 labels; got {classes!r}.")
    fits = {
        "b": lambda c: isinstance(c, bool),
        "i": lambda c: _int(c, int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)),
        "u": lambda c: _int(c, 0, int(np.iinfo(dtype).max)),
        "f": lambda c: isinstance(c, (int, float)) and not isinstance(c, bool)
        and math.isfinite(c),
        "U": lambda c: isinstance(c, str) and len(c) <= dtype.itemsize // 4,
        "O": lambda c: isinstance(c, (str, int, float, bool)),
    }[dtype.kind]
    bad = [c for c in classes if not fits(c)]
    if bad:
        raise invalid(path, "classes", f"holds {bad[0]!r}, which is not a label of "
                      f"classes_dtype {dtype_text!r}.")
    array = np.array(classes, dtype=dtype)
    try:
        unique = np.unique(array)
    except TypeError as exc:
        raise invalid(path, "classes", "mixes labels that cannot be sorted.") from exc
    if len(unique) != len(array) or any(a != b for a, b in zip(unique, array)):
        raise invalid(path, "classes", "must be sorted and distinct, as fit stores them.")
    return array


def check_params(params: dict[str, Any], cls: type, order: list[str],
                 path: Path) -> dict[str, Any]:
    """The constructor arguments from ``params``, each checked with the estimator's
    ``_parameter_constraints``; a ``modalities`` dict follows the modality order."""
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )

    known = cls._get_param_names()
    out = {}
    for key, value in params.items():
        field = f"params.{key}"
        if key not in known:
            raise invalid(path, field, f"is not a parameter of {cls.__name__}.")
        if key == "modalities":
            value = _modalities_param(value, order, path)
        elif key == "class_weight" and isinstance(value, dict):
            value = _class_weight_param(value, path)
        constraints = getattr(cls, "_parameter_constraints", {})
        if key in constraints:
            try:
                validate_parameter_constraints({key: constraints[key]}, {key: value},
                                               caller_name=cls.__name__)
            except InvalidParameterError as exc:
                raise invalid(path, field, f"is invalid: {exc}") from exc
        out[key] = value
    return out


def _modalities_param(value: Any, order: list[str], path: Path) -> Any:
    field = "params.modalities"
    if isinstance(value, dict):
        value = {name: _modality(v["__modality__"], name, path, field)
                 if isinstance(v, dict) and set(v) == {"__modality__"} else v
                 for name, v in value.items()}
    try:
        spec = resolve_modality_spec(value)
    except ValueError as exc:
        raise invalid(path, field, f"is invalid: {exc}") from exc
    if spec is not None and set(spec) != set(order):
        raise invalid(path, field, f"declares {sorted(spec)}, but the model has the "
                      f"modalities {sorted(order)}.")
    if isinstance(value, dict):  # as fit saw it: the declared order is the model's
        value = {name: value[name] for name in order}
    return value


def _class_weight_param(value: dict[str, Any], path: Path) -> dict[Any, float]:
    items = value.get("__items__") if set(value) == {"__items__"} else None
    ok = isinstance(items, list) and all(
        isinstance(item, list) and len(item) == 2
        and isinstance(item[0], (str, int, float, bool))
        and isinstance(item[1], (int, float)) and not isinstance(item[1], bool)
        and math.isfinite(item[1]) and item[1] >= 0
        for item in items
    )
    labels = [(type(k), k) for k, _ in items] if ok else []
    if not ok or len(set(labels)) != len(labels):
        raise invalid(path, "params.class_weight", "must be null, 'balanced' or "
                      "{'__items__': [[label, weight >= 0], ...]} with distinct labels.")
    return {k: float(v) for k, v in items}


def _check_history(history: list, path: Path) -> None:
    numbers = set(HISTORY_COLUMNS) - {"stage", "member", "epoch"}
    for i, row in enumerate(history):
        # columns beyond HISTORY_COLUMNS are numbers that user callbacks recorded
        extra = set(row) - set(HISTORY_COLUMNS) if isinstance(row, dict) else set()
        ok = isinstance(row, dict) \
            and all(isinstance(k, str) and 0 < len(k) <= 200 for k in extra) \
            and isinstance(row.get("stage"), str) \
            and all(_int(row.get(k), low=0) for k in ("member", "epoch") if k in row) \
            and all(row[k] is None or _number(row[k]) for k in (numbers | extra) & set(row))
        if not ok:
            raise invalid(path, f"history[{i}]", f"is not a valid history row: {_short(row)}.")


def _check_features(config: dict[str, Any], path: Path) -> None:
    n = config.get("n_features_in_")
    if n is not None and not _int(n, low=1):
        raise invalid(path, "n_features_in_", f"must be a positive int; got {n!r}.")
    names = config.get("feature_names_in_")
    if names is not None and not (_str_list(names) and (n is None or len(names) == n)):
        raise invalid(path, "feature_names_in_", f"must be {n} strings (n_features_in_).")


# -- the weights against the config ---------------------------------------------------------
def member_tensors(header: dict[str, tuple], version: int, size: int,
                   path: Path) -> list[dict[str, tuple]]:
    """Split the header's tensors into the ensemble's members (prefix removed)."""
    if version == 1:
        return [dict(header)]
    members: dict[int, dict[str, tuple]] = {}
    for key, entry in header.items():
        match = re.fullmatch(r"members\.(0|[1-9][0-9]*)\.(.+)", key)
        if match is None:
            raise invalid(path, f"tensor {key!r}", "is not under 'members.<k>.'.")
        members.setdefault(int(match[1]), {})[match[2]] = entry
    if sorted(members) != list(range(size)):
        raise invalid(path.with_name("config.json"), "ensemble_size",
                      f"is {size}, but {path.name} holds the members {sorted(members)}.")
    return [members[k] for k in range(size)]


def check_sizes(tensors: dict[str, tuple], order: list[str], embed_dim: int, n_outputs: int,
                path: Path) -> None:
    """The sizes config.json states against one member's tensor shapes: the number of
    modalities and ``embed_dim`` (the modality tokens), the head's outputs (the classes,
    or 1 for a continuous target)."""
    config = path.with_name("config.json")
    shapes = {key: shape for key, (_, shape) in tensors.items()}
    tokens, head = shapes.get("tokens.tokens"), shapes.get("classifier.net.2.weight")
    if tokens is None or len(tokens) != 2 or head is None or len(head) != 2:
        raise invalid(path, "the tensors", "lack the modality tokens 'tokens.tokens' or the "
                      "classifier head 'classifier.net.2.weight' (matrices).")
    if tokens[0] != len(order):
        raise invalid(config, "modalities", f"lists {len(order)} modalities, but the "
                      f"tokens in {path.name} have shape {list(tokens)}.")
    if tokens[1] != embed_dim:
        raise invalid(config, "params.embed_dim", f"is {embed_dim}, but the tokens in "
                      f"{path.name} are {tokens[1]} wide (shape {list(tokens)}).")
    if head[0] != n_outputs:
        if n_outputs > 1:
            raise invalid(config, "classes", f"holds {n_outputs} labels, but the classifier "
                          f"head in {path.name} has {head[0]} outputs.")
        raise invalid(config, "estimator", f"names a model of one output, but the head in "
                      f"{path.name} has {head[0]} outputs.")


# -- small type predicates -------------------------------------------------------------------
def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _int(value: Any, low: int | None = None, high: int | None = None) -> bool:
    return _is(value, int) and (low is None or value >= low) and (high is None or value <= high)


def _int_list(value: Any, low: int | None = None, high: int | None = None) -> bool:
    return isinstance(value, list) and all(_int(v, low, high) for v in value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float_list(value: Any, length: int, positive: bool = False) -> bool:
    return isinstance(value, list) and len(value) == length and all(
        _number(v) and math.isfinite(v) and (v > 0 or not positive) for v in value)


def _str_list(value: Any, unique: bool = False) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value) and (
        not unique or len(set(value)) == len(value))


def _safe(check: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except (TypeError, KeyError, ValueError):  # an earlier field of another type
        return False


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a bool",
            int: "an int", float: "a float", type(None): "null"}.get(type(value), "?")


def _kind_name(kind: type) -> str:
    return {dict: "an object", list: "a list", str: "a string", int: "an int"}[kind]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
