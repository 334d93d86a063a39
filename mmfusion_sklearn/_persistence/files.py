"""Save and load fitted models without pickle: safetensors weights plus JSON config.

Saving
------
``save`` writes both files into a hidden sibling folder ``.<name>.tmp-<12 hex>``,
flushes them to disk and switches that folder into place, so that a crash never leaves
a half-written model:

- On Linux the switch is one atomic step, ``renameat2(RENAME_EXCHANGE)``: the folder
  ``<name>`` holds the old model, then the new one, never nothing. Elsewhere, or on a
  file system without it, it is two renames (the old model to ``.<name>.old-<12 hex>``,
  then the new one to ``<name>``): a process killed between them leaves no ``<name>``
  but two complete copies, which ``load`` reads and the next ``save`` puts back.
- Saves to one path are serialised by an exclusive ``flock`` on ``.<name>.lock`` beside
  it (POSIX only: elsewhere, or on a file system without ``flock``, saves are not
  serialised). The lock file is removed as the save ends, while still locked; a save
  that waited checks that the file it locked is still the one at that path, and locks
  anew otherwise. A killed save holds no lock (its lock file stays until the next save).
- Holding the lock, a save knows that no other save of that path runs, so the hidden
  folders of its name pattern that hold nothing but the files save writes are
  leftovers of killed saves: when ``<name>`` is missing, the newest complete one is
  renamed back to ``<name>`` first (the model is never lost), then the others are
  removed. Without the lock, only leftovers unchanged for a day are. Nothing else is
  ever removed.

The folder keeps its plain layout (the two files, nothing else), which users, tools and
older versions read directly; a pointer file or a link to versioned subfolders would
have made every switch atomic everywhere, at the price of that layout.

Loading
-------
``load`` takes no lock and writes nothing, so that it works in read-only folders:

- It opens the model folder once and both files through that open folder, so that they
  come from one save even while another process replaces the folder; when a file was
  removed before it could be opened, the folder was replaced: it starts again.
- When ``<name>`` is missing, it reads the newest complete copy that a killed save left
  (complete: its config.json records the SHA-256 that its weights have).
- config.json is refused above :data:`~.schema.MAX_CONFIG_BYTES` (by its size, before
  reading) and parsed in linear time with limits (:func:`~.schema.parse_json`). Of the
  weights, the 8-byte header length and the header are read first: the file's size must
  be what the header announces, and its tensors those of the network that config.json
  describes, before the tensor data are read and their SHA-256 checked (see
  :mod:`.schema`). No network is built before, and nothing is ever unpickled.
- The settings that only say how and where the loading machine computes
  (:data:`MACHINE_SETTINGS`) are never taken from the file.

It is one module (about 820 lines) because save and load must agree on every step of
one folder protocol (the names, the lock, the switch, the recovery of copies), which a
reader then sees in one place.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, BinaryIO

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
    open_regular,
    read_config,
    read_header,
    validate_config,
)

try:
    import fcntl
except ImportError:  # not POSIX (Windows): saves to one folder are not serialised
    fcntl = None  # type: ignore[assignment]

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
#: The parameters that say only how and where the loading machine computes (its
#: processes, threads and devices, a feature cache on its disk, what it prints), never
#: what the model computes. ``load`` never takes them from a file: it sets these values,
#: and ``device`` to its own ``device`` argument. Every other parameter (the network,
#: training and prediction settings, such as ``precision`` and ``batch_size``) is the
#: model's, restored from the file after its checks.
MACHINE_SETTINGS = {"num_workers": 0, "n_threads": None, "cache_dir": None, "verbose": 0,
                    "distributed": "auto", "callbacks": None}
#: The device types a loaded model's weights can be put on.
LOADABLE_DEVICE_TYPES = ("cpu", "cuda", "mps")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Whether both files can be opened through one open folder (POSIX).
_DIR_FD = os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
#: How often load starts again when the folder is replaced while it opens its files.
_OPEN_ATTEMPTS = 20


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

    Both go to a temporary sibling folder, which then replaces ``path`` (see the module
    docstring): an existing model there is replaced as a whole, and a folder holding
    anything else is refused. Saves to one path wait for each other.
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
    target.parent.mkdir(parents=True, exist_ok=True)
    with _save_lock(target) as locked:
        _recover_leftovers(target, locked)
        _check_replaceable(target)
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
            _fsync_folder(temp)
            _replace(temp, target)
            _fsync_folder(target.parent)
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
            old = read_config(entries[CONFIG_FILE])
            ours = {"format_version", "estimator"} <= set(old)
        except (OSError, ValueError):
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


@contextmanager
def _save_lock(target: Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``.<name>.lock`` beside ``target`` (POSIX); yields
    whether it is held (not where the system or the file system has no ``flock``).

    The file is removed on release, while still locked. A process that waited for it may
    then hold a lock on a removed file: it checks that the file it locked is the one at
    the path, and otherwise opens and locks it anew.
    """
    if fcntl is None:
        yield False
        return
    lock = target.with_name(f".{target.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDONLY | os.O_CREAT | _O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, current = os.fstat(fd), os.stat(lock)
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                break
        except FileNotFoundError:  # removed by the save that held it: lock anew
            pass
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            with suppress(OSError):  # a file system without flock: save unserialised
                os.unlink(lock)
            yield False
            return
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield True
    finally:
        with suppress(OSError):
            os.unlink(lock)
        os.close(fd)


#: Without the save lock, a leftover is a killed save's only when it is this old (s).
_STALE_AFTER = 24 * 3600


#: The files save writes into its folder: the two files, and the temporary file that
#: safetensors may write the weights to before renaming it.
_SAVED_NAME = re.compile(rf"{re.escape(CONFIG_FILE)}|{re.escape(WEIGHTS_FILE)}"
                         r"|\.tmp[0-9A-Za-z]{6}")


def _leftovers(target: Path, older_than: float = 0) -> list[Path]:
    """The temporary and replaced copies of ``target`` that save left: hidden sibling
    folders of save's name pattern that hold nothing but files that save writes (and
    that were last changed ``older_than`` seconds ago or earlier)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:tmp|old)-[0-9a-f]{{12}}")
    found = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return []
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or (
                    older_than and time.time() - entry.stat().st_mtime < older_than):
                continue
            with os.scandir(entry.path) as inside:
                if all(_SAVED_NAME.fullmatch(inner.name) and inner.is_file(
                        follow_symlinks=False) for inner in inside):
                    found.append(Path(entry.path))
        except OSError:  # removed meanwhile
            continue
    return found


def _complete_copy_time(folder: Path) -> int | None:
    """When ``folder`` holds a complete saved model (its config.json records the SHA-256
    that its weights have), the time its config.json was written (ns); else None."""
    try:
        config_stream, weights_stream = _open_pair(folder)
    except (OSError, ValueError, _Moved):
        return None
    with config_stream, weights_stream:
        try:
            checksum = read_config(folder / CONFIG_FILE, config_stream).get("weights_sha256")
            size = os.fstat(weights_stream.fileno()).st_size
            read_header(weights_stream, size, folder / WEIGHTS_FILE)  # before hashing it all
            weights_stream.seek(0)
            if not isinstance(checksum, str) or _sha256_stream(weights_stream) != checksum:
                return None
            return os.fstat(config_stream.fileno()).st_mtime_ns
        except (OSError, ValueError):
            return None


def _newest_complete(copies: list[Path]) -> Path | None:
    """The newest complete copy (a temporary one first on a tie: it is the later save)."""
    times = {c: _complete_copy_time(c) for c in copies}
    complete = [c for c in copies if times[c] is not None]
    return max(complete, key=lambda c: (times[c], ".tmp-" in c.name), default=None)


def _recover_leftovers(target: Path, locked: bool) -> None:
    """When ``target`` is missing, put the newest complete copy that a killed save left
    back in its place; then remove the other leftovers.

    Holding the save lock (``locked``), every leftover is a killed save's, for no other
    save of ``target`` runs; without it, only those unchanged for a day are taken.
    """
    leftovers = _leftovers(target, older_than=0 if locked else _STALE_AFTER)
    if not leftovers:
        return
    if not os.path.lexists(target):
        newest = _newest_complete(leftovers)
        if newest is not None:
            os.rename(newest, target)
            leftovers.remove(newest)
    for folder in leftovers:
        shutil.rmtree(folder, ignore_errors=True)


def _replace(temp: Path, target: Path) -> None:
    """Move ``temp`` to ``target``, whose old model (if any) is then removed: in one
    atomic exchange where the system has it, else by two renames."""
    if not _check_replaceable(target):  # checked again: it may have appeared meanwhile
        os.rename(temp, target)
        return
    if _exchange(temp, target):
        return  # temp now holds the old model, which save_model removes
    old = _sibling(target, "old")
    os.rename(target, old)
    try:
        os.rename(temp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


_RENAMEAT2: list[Any] = []


def _exchange(first: Path, second: Path) -> bool:
    """Swap two folders atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``);
    False, having changed nothing, where the system or the file system lacks it."""
    if not _RENAMEAT2:
        function = None
        if sys.platform.startswith("linux"):
            try:
                function = ctypes.CDLL(None, use_errno=True).renameat2
                function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                     ctypes.c_char_p, ctypes.c_uint]
                function.restype = ctypes.c_int
            except (OSError, AttributeError):  # a C library without it (old glibc, musl)
                function = None
        _RENAMEAT2.append(function)
    function = _RENAMEAT2[0]
    if function is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = function(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second),
                    rename_exchange) == 0
    if not done and ctypes.get_errno() not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                                               errno.EPERM, errno.EXDEV):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(first), None, str(second))
    return done


def _sha256(path: Path) -> str:
    with open(path, "rb") as stream:
        return _sha256_stream(stream)


def _sha256_stream(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (its renames) to disk, where the system allows it."""
    if not _DIR_FD:
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot flush a folder
        pass
    finally:
        os.close(fd)


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


def _read_weights(stream: BinaryIO, size: int, checksum: str | None, path: Path) -> bytes:
    """The weights file's bytes (``size``, checked already against its header and the
    network), their SHA-256 checked when the config records it."""
    stream.seek(0)
    data = stream.read(size + 1)
    if len(data) != size:
        raise invalid(path, "the file", f"changed while it was read ({size} bytes, then "
                      f"{len(data)}{'+' if len(data) > size else ''}).")
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


class _Moved(Exception):
    """The folder was replaced or removed while its files were being opened."""


def _open_pair(folder: Path) -> tuple[BinaryIO, BinaryIO]:
    """config.json and model.safetensors of ``folder``, both opened through one open
    folder (POSIX), so that they come from one save even while another replaces it.

    Raises :class:`_Moved` when the folder was replaced or removed meanwhile, and
    ``FileNotFoundError`` when a file is missing from the folder still at ``folder``.
    """
    def still_there(dir_fd: int | None) -> bool:
        try:
            here = os.stat(folder)
        except OSError:
            return False
        if dir_fd is None:
            return True
        opened = os.fstat(dir_fd)
        return (here.st_dev, here.st_ino) == (opened.st_dev, opened.st_ino)

    dir_fd = None
    if _DIR_FD:
        try:
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
        except NotADirectoryError:
            raise FileNotFoundError(f"No saved model at {str(folder)!r}: it is a file, not "
                                    "a folder.") from None
        except FileNotFoundError as exc:
            raise _Moved from exc
    streams: list[BinaryIO] = []
    try:
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            try:
                streams.append(open_regular(folder / name, dir_fd))
            except FileNotFoundError:
                if not still_there(dir_fd):
                    raise _Moved from None
                raise FileNotFoundError(f"No saved model at {str(folder)!r}: {name} is "
                                        "missing.") from None
    except BaseException:
        for stream in streams:
            stream.close()
        raise
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return streams[0], streams[1]


def _open_model(path: Path) -> tuple[Path, BinaryIO, BinaryIO]:
    """``(folder read, config.json, model.safetensors)`` of the model saved at ``path``:
    that folder, or, where it is missing, the newest complete copy a killed save left."""
    for attempt in range(_OPEN_ATTEMPTS):
        time.sleep(0.002 * attempt)
        where: Path | None = path
        if not os.path.exists(path):
            # save's copies are siblings of the folder a link points to
            where = _newest_complete(_leftovers(Path(os.path.realpath(path))))
            if where is None:
                if os.path.exists(path):
                    continue  # a save put it in place meanwhile
                raise FileNotFoundError(f"No saved model at {str(path)!r}: {CONFIG_FILE} is "
                                        "missing.")
        try:
            return (where, *_open_pair(where))
        except _Moved:
            continue
    raise OSError(errno.EBUSY, f"Cannot load {str(path)!r}: the folder was replaced "
                  f"{_OPEN_ATTEMPTS} times while its files were being opened (another "
                  "process keeps saving to it); try again.")


def saved_estimator_name(path: str | Path) -> str | None:
    """The estimator class named in a saved model's config.json (None if unreadable:
    ``load`` then reports what is wrong)."""
    try:
        where, config_stream, weights_stream = _open_model(Path(path))
        weights_stream.close()
        with config_stream:
            name = read_config(where / CONFIG_FILE, config_stream).get("estimator")
    except (ValueError, OSError):
        return None
    return name if isinstance(name, str) else None


def load_device(device: Any, owner: str) -> Any:
    """The torch.device that ``device`` names, refusing those that cannot hold a loaded
    model's weights (``"meta"`` and other types than :data:`LOADABLE_DEVICE_TYPES`, a GPU
    that is not there)."""
    import torch

    resolved = resolve_device(device, owner)
    where = f"The 'device' parameter of {owner}.load"
    if resolved.type not in LOADABLE_DEVICE_TYPES:
        raise ValueError(
            f"{where} must be 'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device of "
            f"one of these types; got {device!r}, a {resolved.type!r} device, which cannot "
            "hold the weights of a loaded model."
        )
    if resolved.type == "cuda" and resolved.index is not None \
            and resolved.index >= torch.cuda.device_count():
        raise ValueError(f"{where} is {device!r}, but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s).")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{where} is {device!r}, but MPS is not available here. Use "
                         "device='auto' or 'cpu'.")
    return resolved


def load_model(cls: type, path: str | Path, device: Any = "cpu") -> Any:
    """Rebuild a fitted estimator of class ``cls`` from the folder ``path``.

    Nothing is built before config.json passed its checks, the weights' header agrees
    with it and with the file's size, and the weights' checksum (when recorded: formats
    1, 2 and early format 3 files have none) matches. ``device`` is checked before any
    file is read.

    The parameters in :data:`MACHINE_SETTINGS` (``num_workers``, ``n_threads``,
    ``cache_dir``, ``verbose``, ``distributed``, ``callbacks``) and ``device`` say only
    how and where this machine computes: they are never taken from the file (which could
    otherwise start processes, spend threads or write to any folder of the machine that
    loads it). The loaded estimator has the values of :data:`MACHINE_SETTINGS` and
    ``device=device``; every other parameter is the saved model's.
    """
    device_ = load_device(device, cls.__name__)
    where, config_stream, weights_stream = _open_model(Path(path))
    with config_stream, weights_stream:
        return _build(cls, where, config_stream, weights_stream, device, device_)


def _build(cls: type, folder: Path, config_stream: BinaryIO, weights_stream: BinaryIO,
           device: Any, device_: Any) -> Any:
    """:func:`load_model` from the two open files of ``folder``."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    from .._training.calibration import TemperatureTable
    from .._training.plans import history_frame

    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    config = read_config(config_path, config_stream)
    version = _check_format(config, folder, config_path)
    spec = validate_config(config, cls, version, config_path)
    size = os.fstat(weights_stream.fileno()).st_size
    header, _ = read_header(weights_stream, size, weights_path)
    order = spec["order"]
    members = member_tensors(header, version, spec["ensemble_size"], weights_path)
    if version < 3:
        members = [_positional_encoder_keys(m, order) for m in members]
    known = set(cls._get_param_names())
    machine = {k: v for k, v in {**MACHINE_SETTINGS, "device": device}.items() if k in known}
    estimator = cls(**{**spec["params"], **machine})
    estimator._set_target_config(spec["target"])
    check_sizes(members[0], order, estimator.embed_dim, estimator._task().n_outputs,
                weights_path)

    estimator.device_ = device_
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
    # only now, the file's size agreeing with its header and the header with the
    # network, are the tensor data read
    data = _read_weights(weights_stream, size, config.get("weights_sha256"), weights_path)
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
