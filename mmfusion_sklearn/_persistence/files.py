"""Save and load fitted models without pickle: safetensors weights plus JSON config.

``save`` writes both files into a temporary sibling folder and renames it into place,
so that a crash never leaves a half-written model. ``load`` checks the weights' SHA-256
and the config (see :mod:`._persistence_schema`) before it builds anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._data import Modality
from .._preprocessing import preprocessor_from_state
from .._training.devices import resolve_device
from .._training.nets import FusionNet
from .schema import (
    ModelFileError,
    check_sizes,
    invalid,
    member_tensors,
    read_config,
    read_header,
    validate_config,
)

FORMAT_VERSION = 3
#: Formats this version reads: 1 held one network (unprefixed weights), 2 holds
#: ``ensemble_size`` members whose weights are prefixed ``members.<k>.``, 3 stores the
#: encoders under their modality's position (``encoders.<i>.``), not its name, and
#: (in later format 3 files) the modality order, the package version and the weights'
#: SHA-256; earlier files lack them, their order is that of ``modalities``.
READABLE_FORMATS = (1, 2, 3)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_TORCH_DTYPES = {"float32": "F32", "float64": "F64", "float16": "F16", "bfloat16": "BF16",
                 "int64": "I64", "int32": "I32", "bool": "BOOL", "uint8": "U8"}


# -- JSON forms ------------------------------------------------------------------------------
def _modality_to_json(name: str, modality: Modality) -> dict[str, Any]:
    if modality.encoder is not None:
        raise ValueError(
            f"Modality {name!r} uses a custom encoder module, which save() cannot store "
            "without pickle. Use pickle or joblib for this model."
        )
    for field_name in ("transform", "augment"):
        if getattr(modality, field_name) is not None:
            raise ValueError(
                f"Modality {name!r} has a {field_name} callable, which save() cannot "
                "store without pickle. Use pickle or joblib for this model."
            )
    state = {k: v for k, v in asdict(replace(modality, encoder=None)).items()
             if k not in ("encoder", "transform", "augment")}
    if state["image_size"] is not None:
        state["image_size"] = list(state["image_size"])
    return state


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if key == "modalities" and isinstance(value, dict):
            value = {
                k: {"__modality__": _modality_to_json(k, v)} if isinstance(v, Modality) else v
                for k, v in value.items()
            }
        elif key == "callbacks":
            value = None  # training-time objects: neither JSON nor needed to predict
        elif key == "device" or (key == "cache_dir" and value is not None):
            value = str(value)
        elif key == "random_state" and not (value is None or isinstance(value, int)):
            value = None  # a RandomState instance is not reproducible from JSON
        elif key == "class_weight" and isinstance(value, dict):
            value = {"__items__": [[_label_to_json(k), float(v)] for k, v in value.items()]}
        out[key] = value
    return out


def _label_to_json(label: Any) -> Any:
    if isinstance(label, np.generic):
        label = label.item()
    if not isinstance(label, (str, int, float, bool)):
        raise ValueError(
            f"save() stores class labels as JSON; label {label!r} of type "
            f"{type(label).__name__} is not a string, number or bool. Use pickle instead."
        )
    return label


def classes_to_json(classes: np.ndarray) -> dict[str, Any]:
    """A classifier's ``classes`` and ``classes_dtype`` config entries."""
    return {
        "classes": [_label_to_json(c) for c in classes],
        "classes_dtype": classes.dtype.str if classes.dtype != object else "object",
    }


def _config(estimator: Any) -> dict[str, Any]:
    from .._version import __version__

    config = {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "estimator": type(estimator).__name__,
        "weights_sha256": None,  # set once the weights are written
        "params": _json_params(estimator.get_params(deep=False)),
        **estimator._target_config(),
        # the network's order; the dicts below may be reordered by JSON tools
        "modality_order": list(estimator.modalities_),
        "modalities": {
            name: _modality_to_json(name, m) for name, m in estimator.modalities_.items()
        },
        "preprocessors": {
            name: p.get_state() for name, p in estimator._preprocessors.items()
        },
        "input_shapes": {k: list(v) for k, v in estimator._input_shapes.items()},
        "ensemble_size": len(estimator._nets),
        "history": json.loads(estimator.history_.to_json(orient="records")),
    }
    table = getattr(estimator, "_temperatures", None)
    if table is not None:
        config["temperatures"] = {
            "patterns": [list(p) for p in table.patterns],
            "values": table.temperatures,
            "default": table.default,
            "counts": table.counts,
        }
    if hasattr(estimator, "n_features_in_"):
        config["n_features_in_"] = int(estimator.n_features_in_)
    if hasattr(estimator, "feature_names_in_"):
        config["feature_names_in_"] = [str(c) for c in estimator.feature_names_in_]
    return config


# -- save --------------------------------------------------------------------------------------
def save_model(estimator: Any, path: str | Path) -> None:
    """Write ``config.json`` and ``model.safetensors`` of a fitted estimator to ``path``.

    Both go to a temporary sibling folder, which then replaces ``path``: an existing
    model there is replaced as a whole, and a folder holding anything else is refused.
    """
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    config = _config(estimator)  # raises for what JSON cannot hold, before any write
    state = {
        f"members.{i}.{k}": v.detach().to("cpu").contiguous()
        for i, net in enumerate(estimator._nets)
        for k, v in net.module_.state_dict().items()
    }
    target = Path(os.path.abspath(path))
    if target.is_symlink():
        target = target.resolve()
    _check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _sibling(target, "tmp")
    temp.mkdir()
    try:
        save_file(state, str(temp / WEIGHTS_FILE))
        config["weights_sha256"] = _sha256(temp / WEIGHTS_FILE)
        with open(temp / CONFIG_FILE, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(config, indent=1))
            stream.flush()
            os.fsync(stream.fileno())
        _fsync(temp / WEIGHTS_FILE)
        _replace(temp, target)
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # gone already unless something failed


def _check_replaceable(folder: Path) -> bool:
    """True when ``folder`` exists and may be replaced: empty, or a saved model."""
    if not os.path.lexists(folder):
        return False
    if not folder.is_dir():
        raise FileExistsError(f"Cannot save to {str(folder)!r}: it is a file, not a folder.")
    entries = {p.name: p for p in folder.iterdir()}
    if not entries:
        return True
    foreign = sorted(set(entries) - {CONFIG_FILE, WEIGHTS_FILE})
    ours = CONFIG_FILE in entries and all(p.is_file() and not p.is_symlink()
                                         for p in entries.values())
    if ours:
        try:
            old = json.loads(entries[CONFIG_FILE].read_text(encoding="utf-8"))
            ours = isinstance(old, dict) and {"format_version", "estimator"} <= set(old)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            ours = False
    if foreign or not ours:
        raise FileExistsError(
            f"Cannot save to {str(folder)!r}: the folder holds files that save() did not "
            f"write ({', '.join(foreign or sorted(entries))}), which saving would delete. "
            "Save to a new or empty folder, or to one that save() wrote."
        )
    return True


def _sibling(target: Path, tag: str) -> Path:
    return target.with_name(f".{target.name}.{tag}-{secrets.token_hex(6)}")


def _replace(temp: Path, target: Path) -> None:
    """Rename ``temp`` to ``target``; an old ``target`` is renamed away, then removed."""
    if not _check_replaceable(target):  # checked again: it may have appeared meanwhile
        os.rename(temp, target)
        return
    old = _sibling(target, "old")
    os.rename(target, old)
    try:
        os.rename(temp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


# -- load --------------------------------------------------------------------------------------
def _positional_encoder_keys(state: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Formats 1 and 2 stored encoder weights under ``encoders.<name>.``: rename them to
    ``encoders.<position>.``. The longest name matches first (one may prefix another)."""
    out = {}
    ordered = sorted(enumerate(names), key=lambda item: -len(item[1]))
    for key, value in state.items():
        for position, name in ordered:
            if key.startswith(f"encoders.{name}."):
                key = f"encoders.{position}." + key[len(f"encoders.{name}."):]
                break
        out[key] = value
    return out


def _check_format(config: dict[str, Any], folder: Path, config_path: Path) -> int:
    from .._version import __version__

    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise invalid(config_path, "format_version", f"is {version!r}; this version reads "
                      f"formats {', '.join(map(str, READABLE_FORMATS))}.")
    if version not in READABLE_FORMATS:
        by = config.get("package_version")
        raise ModelFileError(
            f"{str(folder)!r} was saved in format {version} by mmfusion_sklearn "
            f"{by if isinstance(by, str) else '(unknown version)'}; this version "
            f"({__version__}) reads formats {', '.join(map(str, READABLE_FORMATS))}. "
            "Upgrade mmfusion_sklearn to load it."
        )
    return version


def _read_weights(path: Path, checksum: str | None) -> bytes:
    """The weights file's bytes, their SHA-256 checked when the config records it."""
    if not path.is_file():
        raise FileNotFoundError(f"No saved model at {str(path.parent)!r}: {WEIGHTS_FILE} "
                                "is missing.")
    data = path.read_bytes()
    if checksum is not None and hashlib.sha256(data).hexdigest() != checksum:
        raise ModelFileError(
            f"Cannot load {str(path)!r}: its SHA-256 checksum does not match the one "
            f"recorded in {CONFIG_FILE} when it was saved: the file is damaged or was "
            "changed (or config.json was)."
        )
    return data


def _field_of(key: str, order: list[str]) -> str:
    """The config field that sizes the tensor ``key`` (for messages)."""
    parts = key.split(".")
    if parts[0] == "encoders" and len(parts) > 1 and parts[1].isdigit() \
            and int(parts[1]) < len(order):
        name = order[int(parts[1])]
        return f"modalities.{name}.kind or input_shapes.{name}"
    return {"linear": "params.linear_path or input_shapes", "fusion": "params.fusion",
            "tokens": "params.missing_token"}.get(parts[0], "params")


def _check_architecture(estimator: Any, members: list[dict[str, tuple]], order: list[str],
                        path: Path) -> None:
    """Every member's tensors: the keys, shapes and dtypes of the network the config
    describes, built on the meta device (no memory) to compare."""
    import torch

    with torch.device("meta"):
        expected = {k: (_TORCH_DTYPES.get(str(v.dtype).removeprefix("torch."), "?"),
                        tuple(v.shape))
                    for k, v in estimator._build_network(estimator._input_shapes)
                    .state_dict().items()}
    for k, tensors in enumerate(members):
        wrong = sorted(set(expected) ^ set(tensors)) or [
            key for key in expected if tensors[key] != expected[key]]
        if wrong:
            key = wrong[0]
            found, want = (f"{t[key][0]} {list(t[key][1])}" if key in t else "absent"
                           for t in (tensors, expected))
            raise ModelFileError(
                f"Cannot load {str(path)!r}: member {k}'s tensors do not match the network "
                f"that {CONFIG_FILE} describes (check {_field_of(key, order)}): {key!r} is "
                f"{found}, expected {want}" + (f" ({len(wrong)} tensors differ)."
                                               if len(wrong) > 1 else ".")
            )


def saved_estimator_name(path: str | Path) -> str | None:
    """The estimator class named in a saved model's config.json (None if unreadable:
    ``load`` then reports what is wrong)."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        return None
    try:
        name = read_config(config_path).get("estimator")
    except (ValueError, OSError):
        return None
    return name if isinstance(name, str) else None


def load_model(cls: type, path: str | Path, device: Any = "cpu") -> Any:
    """Rebuild a fitted estimator of class ``cls`` from the folder ``path``.

    Nothing is built before config.json passed its checks and the weights' checksum
    (when recorded: formats 1, 2 and early format 3 files have none) and tensor shapes
    agree with it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    from .._training.calibration import TemperatureTable
    from .._training.plans import history_frame

    folder = Path(path)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"No saved model at {str(folder)!r}: {CONFIG_FILE} is missing.")
    config = read_config(config_path)
    version = _check_format(config, folder, config_path)
    spec = validate_config(config, cls, version, config_path)
    data = _read_weights(weights_path, config.get("weights_sha256"))
    header = read_header(data, weights_path)
    order = spec["order"]
    members = member_tensors(header, version, spec["ensemble_size"], weights_path)
    if version < 3:
        members = [_positional_encoder_keys(m, order) for m in members]
    estimator = cls(**spec["params"])
    estimator._set_target_config(spec["target"])
    check_sizes(members[0], order, estimator.embed_dim, estimator._task().n_outputs,
                weights_path)

    estimator.device = device
    estimator.device_ = resolve_device(device, cls.__name__)
    estimator.modalities_ = spec["modalities"]
    estimator._preprocessors = {
        k: preprocessor_from_state(v) for k, v in spec["preprocessors"].items()
    }
    for preprocessor in estimator._preprocessors.values():
        if hasattr(preprocessor, "shape_"):
            preprocessor.shape_ = list(preprocessor.shape_)
    estimator._frozen_encoders = {}
    estimator._frozen_keys = {}
    estimator._input_shapes = spec["input_shapes"]
    try:
        estimator.history_ = history_frame(config["history"],
                                           estimator._task().full_loss_name)
    except (TypeError, ValueError) as exc:
        raise invalid(config_path, "history", f"cannot be read ({exc}).") from exc
    estimator._temperatures = None
    if spec["temperatures"] is not None:
        t = spec["temperatures"]
        estimator._temperatures = TemperatureTable(t["patterns"], t["values"], t["default"],
                                                   t["counts"])
        estimator.temperatures_ = estimator._temperatures.frame(order)
    if "n_features_in_" in config:
        estimator.n_features_in_ = config["n_features_in_"]
    if "feature_names_in_" in config:
        estimator.feature_names_in_ = np.array(config["feature_names_in_"], dtype=object)
    _check_architecture(estimator, members, order, weights_path)

    try:
        weights = load_tensors(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"Cannot load {str(weights_path)!r}: {exc}") from exc
    del data
    estimator._nets = []
    for k in range(spec["ensemble_size"]):
        prefix = f"members.{k}." if version >= 2 else ""
        state = {key[len(prefix):]: value for key, value in weights.items()
                 if key.startswith(prefix)}
        if version < 3:
            state = _positional_encoder_keys(state, order)
        module = estimator._build_network(estimator._input_shapes)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(
                f"Cannot load {str(weights_path)!r}: member {k}'s weights do not fit the "
                f"network that {CONFIG_FILE} describes: {exc}"
            ) from exc
        net = FusionNet(
            module, task=estimator._task(), batch_size=estimator.batch_size,
            device=estimator.device_, verbose=0, train_split=None,
        )
        estimator._nets.append(net.initialize())
    estimator.ensemble_size_ = spec["ensemble_size"]
    return estimator


# -- in-memory form ----------------------------------------------------------------------------
def model_to_bytes(estimator: Any) -> dict[str, bytes]:
    """The two files that :func:`save_model` writes, as ``{file name: bytes}``.

    They are written to a private temporary folder and read back, so that the bytes are
    exactly those of a saved model (config.json records the weights' SHA-256).
    """
    with tempfile.TemporaryDirectory(prefix="mmfusion-") as temp:
        folder = Path(temp) / "model"
        save_model(estimator, folder)
        return {name: (folder / name).read_bytes() for name in (CONFIG_FILE, WEIGHTS_FILE)}


def model_from_bytes(cls: type, files: dict[str, bytes], device: Any = "cpu") -> Any:
    """:func:`load_model` from the bytes of :func:`model_to_bytes`, with all its checks.

    The bytes go to a private temporary folder that is removed once the model is built.
    """
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if name not in files]
    if missing:
        raise ModelFileError(f"Cannot load the model from bytes: {missing[0]} is missing.")
    with tempfile.TemporaryDirectory(prefix="mmfusion-") as temp:
        folder = Path(temp) / "model"
        folder.mkdir()
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            (folder / name).write_bytes(files[name])
        return load_model(cls, folder, device)
