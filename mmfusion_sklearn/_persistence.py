"""Save and load fitted models without pickle: safetensors weights plus JSON config."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._data import Modality
from ._preprocessing import preprocessor_from_state
from ._training import FusionNet

FORMAT_VERSION = 3
#: Formats this version reads: 1 held one network (unprefixed weights), 2 holds
#: ``ensemble_size`` members whose weights are prefixed ``members.<k>.``, 3 stores the
#: encoders under their modality's position (``encoders.<i>.``), not its name.
READABLE_FORMATS = (1, 2, 3)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


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
        elif key == "device" or (key == "cache_dir" and value is not None):
            value = str(value)
        elif key == "random_state" and not (value is None or isinstance(value, int)):
            value = None  # a RandomState instance is not reproducible from JSON
        elif key == "class_weight" and isinstance(value, dict):
            value = {"__items__": [[_label_to_json(k), float(v)] for k, v in value.items()]}
        out[key] = value
    return out


def _params_from_json(params: dict[str, Any]) -> dict[str, Any]:
    params = dict(params)
    if isinstance(params.get("modalities"), dict):
        params["modalities"] = {
            k: Modality(**v["__modality__"]) if isinstance(v, dict) else v
            for k, v in params["modalities"].items()
        }
    if isinstance(params.get("class_weight"), dict):
        params["class_weight"] = {k: v for k, v in params["class_weight"]["__items__"]}
    return params


def _label_to_json(label: Any) -> Any:
    if isinstance(label, np.generic):
        label = label.item()
    if not isinstance(label, (str, int, float, bool)):
        raise ValueError(
            f"save() stores class labels as JSON; label {label!r} of type "
            f"{type(label).__name__} is not a string, number or bool. Use pickle instead."
        )
    return label


def save_model(estimator: Any, path: str | Path) -> None:
    """Write ``config.json`` and ``model.safetensors`` of a fitted estimator to ``path``."""
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": FORMAT_VERSION,
        "estimator": type(estimator).__name__,
        "params": _json_params(estimator.get_params(deep=False)),
        "classes": [_label_to_json(c) for c in estimator.classes_],
        "classes_dtype": estimator.classes_.dtype.str
        if estimator.classes_.dtype != object else "object",
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
    if hasattr(estimator, "n_features_in_"):
        config["n_features_in_"] = int(estimator.n_features_in_)
    if hasattr(estimator, "feature_names_in_"):
        config["feature_names_in_"] = [str(c) for c in estimator.feature_names_in_]
    state = {
        f"members.{i}.{k}": v.detach().to("cpu").contiguous()
        for i, net in enumerate(estimator._nets)
        for k, v in net.module_.state_dict().items()
    }
    save_file(state, str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=1))


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


def load_model(cls: type, path: str | Path, device: Any = "cpu") -> Any:
    """Rebuild a fitted estimator of class ``cls`` from the folder ``path``."""
    from safetensors.torch import load_file

    from ._estimator import _resolve_device
    from ._plans import history_frame

    folder = Path(path)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"No saved model at {str(folder)!r}: {CONFIG_FILE} is missing.")
    config = json.loads(config_path.read_text())
    version = config.get("format_version")
    if version not in READABLE_FORMATS:
        raise ValueError(
            f"{str(folder)!r} was saved in format {version}; this version reads formats "
            f"{list(READABLE_FORMATS)}."
        )
    estimator = cls(**_params_from_json(config["params"]))
    estimator.device = device
    estimator.device_ = _resolve_device(device)
    dtype = object if config["classes_dtype"] == "object" else np.dtype(config["classes_dtype"])
    estimator.classes_ = np.array(config["classes"], dtype=dtype)
    estimator.modalities_ = {k: Modality(**v) for k, v in config["modalities"].items()}
    for modality in estimator.modalities_.values():
        if modality.image_size is not None:
            modality.image_size = tuple(modality.image_size)
    estimator._preprocessors = {
        k: preprocessor_from_state(v) for k, v in config["preprocessors"].items()
    }
    for preprocessor in estimator._preprocessors.values():
        if hasattr(preprocessor, "shape_"):
            preprocessor.shape_ = list(preprocessor.shape_)
    estimator._frozen_encoders = {}
    estimator._frozen_keys = {}
    estimator._input_shapes = {k: tuple(v) for k, v in config["input_shapes"].items()}
    estimator.history_ = history_frame(config["history"])
    if "n_features_in_" in config:
        estimator.n_features_in_ = config["n_features_in_"]
    if "feature_names_in_" in config:
        estimator.feature_names_in_ = np.array(config["feature_names_in_"], dtype=object)
    weights = load_file(str(folder / WEIGHTS_FILE), device="cpu")
    size = int(config.get("ensemble_size", 1))
    estimator._nets = []
    for k in range(size):
        prefix = f"members.{k}." if version >= 2 else ""
        module = estimator._build_network(estimator._input_shapes)
        state = {key[len(prefix):]: value for key, value in weights.items()
                 if key.startswith(prefix)}
        if version < 3:
            state = _positional_encoder_keys(state, list(estimator.modalities_))
        module.load_state_dict(state)
        net = FusionNet(
            module, batch_size=estimator.batch_size, device=estimator.device_, verbose=0,
            train_split=None,
        )
        estimator._nets.append(net.initialize())
    estimator.ensemble_size_ = size
    return estimator
