"""The base of every estimator: shared parameters, the wiring of ``fit``, streamed
prediction, save/load. A task module (classifier, regressor, ...) adds only target
checking and encoding, its torch task, ``score`` and its own outputs."""

from __future__ import annotations

import os
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted
from sklearn_compat.base import _fit_context
from sklearn_compat.utils.validation import validate_data

from .._data import MultimodalData, resolve_modality_spec
from .._data.messages import user_stacklevel
from .._data.parsing import (
    check_no_array_columns,
    fitted_column_spec,
    multimodal_input,
)
from .._torch.tasks import Task
from .._training import engine
from .._training.batches import FusionDataset
from .._training.callbacks import check_callbacks
from .._training.devices import resolve_device
from .._training.distributed import main_process, resolve_distributed
from .._training.plans import history_frame
from .._training.runtime import PRECISIONS, torch_threads
from .._training.sources import FrozenFeatures, ReadLog
from .._training.weights import normalised_weights

#: The parameters every estimator shares, in the order of their signatures.
SHARED_PARAMETERS = [
    "modalities", "fusion", "embed_dim", "missing_token", "modality_dropout",
    "dropout_rate", "unimodal_weight", "contrastive", "contrastive_loss",
    "pretrain_epochs", "max_epochs", "batch_size", "lr", "weight_decay", "early_stopping",
    "validation_fraction", "patience", "ensemble_size", "linear_path", "device",
    "random_state", "verbose", "precision", "num_workers", "on_read_error", "cache_dir",
    "callbacks", "n_threads", "distributed",
]



class BaseMultimodalFusion(BaseEstimator):
    """Fusion of several modalities, any of which may be missing: the shared engine.

    Not used directly: :class:`MultimodalFusionClassifier` and
    :class:`MultimodalFusionRegressor` are its faces. A subclass defines
    :meth:`_encode_target` (check y, return the encoded target and the strata of the
    validation splits), :meth:`_task` (the torch task of the fitted model) and,
    where it persists more than the shared state, :meth:`_target_config` and
    :meth:`_set_target_config`.
    """

    _parameter_constraints: dict = {
        "modalities": [None, dict, list],
        "fusion": [StrOptions({"mlp", "transformer"})],
        "embed_dim": [Interval(Integral, 1, None, closed="left")],
        "missing_token": [StrOptions({"learned", "zero"})],
        "modality_dropout": [StrOptions({"simultaneous", "random", "none"})],
        "dropout_rate": [Interval(Real, 0.0, 1.0, closed="left")],
        "unimodal_weight": [Interval(Real, 0.0, None, closed="left")],
        "contrastive": [StrOptions({"fused", "unimodal"}), None],
        "contrastive_loss": [StrOptions({"balanced", "paper"})],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0.0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0.0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0.0, 1.0, closed="neither")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "ensemble_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "linear_path": ["boolean"],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "precision": [StrOptions(set(PRECISIONS))],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "on_read_error": [StrOptions({"raise", "missing"})],
        "cache_dir": [None, str, os.PathLike],
        "callbacks": [None, list],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "distributed": [StrOptions({"auto"}), "boolean"],
    }

    def __init__(
        self,
        modalities=None,
        *,
        fusion="mlp",
        embed_dim=128,
        missing_token="learned",
        modality_dropout="simultaneous",
        dropout_rate=0.3,
        unimodal_weight=1.0,
        contrastive=None,
        contrastive_loss="balanced",
        pretrain_epochs=10,
        max_epochs=100,
        batch_size=64,
        lr=1e-3,
        weight_decay=1e-4,
        early_stopping=True,
        validation_fraction=0.1,
        patience=10,
        ensemble_size="auto",
        linear_path=True,
        device="auto",
        random_state=None,
        verbose=0,
        precision="32",
        num_workers=0,
        on_read_error="raise",
        cache_dir=None,
        callbacks=None,
        n_threads=None,
        distributed="auto",
    ):
        self.modalities = modalities
        self.fusion = fusion
        self.embed_dim = embed_dim
        self.missing_token = missing_token
        self.modality_dropout = modality_dropout
        self.dropout_rate = dropout_rate
        self.unimodal_weight = unimodal_weight
        self.contrastive = contrastive
        self.contrastive_loss = contrastive_loss
        self.pretrain_epochs = pretrain_epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.ensemble_size = ensemble_size
        self.linear_path = linear_path
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.precision = precision
        self.num_workers = num_workers
        self.on_read_error = on_read_error
        self.cache_dir = cache_dir
        self.callbacks = callbacks
        self.n_threads = n_threads
        self.distributed = distributed

    # contrastive=None: without classes it changed no score in the regression benchmark
    # (docs/benchmarks_regression.md) and doubled fit times; the classifier keeps "fused"
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # -- what a task defines ---------------------------------------------------------
    def _encode_target(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Check ``y`` (already 1-D, as long as X), set the target's fitted attributes,
        and return the encoded target (in the task's dtype) and the strata of the
        validation splits (None: random splits)."""
        raise NotImplementedError

    def _task(self) -> Task:
        """The torch task of the fitted target (loss, head width, member averaging)."""
        raise NotImplementedError

    def _sample_weight(self, weight: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Training weights from ``sample_weight`` (a task may multiply in its own)."""
        return weight

    def _after_training(self, dataset: FusionDataset, plans: list) -> None:
        """Fit what comes after the networks (a classifier's temperatures)."""

    def _temperature_table(self) -> Any:
        """Temperatures applied to the combined outputs at prediction (None: none)."""
        return None

    # -- input -------------------------------------------------------------------
    def _as_data(self, X: Any, reset: bool) -> MultimodalData:
        """Validate X and return it as MultimodalData (plain tables become one modality).

        Without ``modalities``, a model fitted on a MultimodalData built from a
        DataFrame reads a DataFrame at prediction with the columns it was built from.
        """
        spec = resolve_modality_spec(self.modalities)
        if spec is None and not reset and isinstance(X, pd.DataFrame):
            spec = fitted_column_spec(getattr(self, "modalities_", None))
        # at predict the fitted kinds apply; specs may name columns
        data = multimodal_input(X, spec, check_columns=reset)
        if data is not None:
            if reset:
                for attr in ("n_features_in_", "feature_names_in_"):
                    self.__dict__.pop(attr, None)
            return data
        name = next(iter(spec)) if spec is not None and len(spec) == 1 else None
        if isinstance(X, pd.DataFrame):
            check_no_array_columns(X)
            X = validate_data(self, X, reset=reset, skip_check_array=True)
            return MultimodalData({name or "tabular": X})
        if isinstance(X, np.ndarray) and X.ndim >= 3:
            return MultimodalData({name or ("volume" if X.ndim == 5 else "image"): X})
        X = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype="numeric")
        return MultimodalData({name or "tabular": X})

    def _frozen_features(self) -> dict[str, FrozenFeatures]:
        """The feature sources of the frozen encoders (sharing the process cache)."""
        return engine.frozen_sources(
            self._frozen_encoders, self._preprocessors, self._input_shapes,
            self._frozen_keys, device=self.device_, precision=self.precision,
            batch_size=self.batch_size, num_workers=self.num_workers,
            cache_dir=self.cache_dir,
        )

    def _training_data(
        self, data: MultimodalData, target: np.ndarray, weight: np.ndarray, log: ReadLog,
        present: np.ndarray | None = None,
    ) -> FusionDataset:
        """The training FusionDataset: tensors, lazy file sources and frozen features."""
        return engine.dataset_for(
            data, self.modalities_, self._preprocessors, self._frozen_features(), target,
            weight, log, on_read_error=self.on_read_error, verbose=self.verbose,
            present=present, cache_dir=self.cache_dir, num_workers=self.num_workers,
        )

    def _model_arrays(self, data: MultimodalData) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per-modality float32 arrays (frozen encoders applied) and the presence mask,
        all in memory (for inspection and the benchmarks; fit and predict stream)."""
        n = len(data)
        dataset = self._training_data(data, np.zeros(n, dtype=np.int64), np.ones(n),
                                      ReadLog())
        X, _, _ = dataset.read_batch(torch.arange(n))
        return {k: v.numpy() for k, v in X["inputs"].items()}, X["present"].numpy()

    # -- network -----------------------------------------------------------------
    def _build_network(self, input_shapes: dict[str, tuple[int, ...]]) -> torch.nn.Module:
        return engine.build_network(
            self.modalities_, self._frozen_encoders, input_shapes, self._task().n_outputs,
            embed_dim=self.embed_dim, fusion=self.fusion, missing_token=self.missing_token,
            linear_path=self.linear_path,
        )

    def _net_kwargs(self) -> dict[str, Any]:
        return {
            "optimizer": torch.optim.AdamW,
            "optimizer__weight_decay": self.weight_decay,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "device": self.device_,
            "verbose": 0,
            "num_workers": self.num_workers,
            "precision": self.precision,
        }

    # -- fit -----------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BaseMultimodalFusion:
        """Fit the encoders, tokens and fusion network.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Training samples in any accepted form (see :class:`MultimodalData`); a
            plain 2-D array is one tabular modality. Every sample needs at least one
            modality.
        y : array-like of shape (n_samples,)
            The target (see the estimator's class documentation).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the task loss; only their ratios matter.

        Returns
        -------
        self : object
            The fitted estimator.

        Notes
        -----
        A fit that raises (bad input, a diverging loss, a Ctrl-C before any network
        exists) leaves the estimator as it was: unfitted, or with its previous model
        intact. A Ctrl-C once training has begun ends it early, keeps the best weights
        so far and warns.
        """
        before = dict(self.__dict__)
        try:
            with torch_threads(self.n_threads):
                return self._fit(X, y, sample_weight)
        except BaseException:
            # never new fitted attributes beside an old network, nor a half-fitted model
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _check_fit_parameters(self) -> None:
        """Parameter combinations that are invalid together (beyond the constraints)."""

    def _fit(self, X: Any, y: Any, sample_weight: Any) -> BaseMultimodalFusion:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        data = self._as_data(X, reset=True)
        y = self._target_vector(y)
        if len(y) != len(data):
            raise ValueError(
                f"Number of samples in X ({len(data)}) and y ({len(y)}) do not match."
            )
        if len(y) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        target, strata = self._encode_target(y)
        weight = _check_sample_weight(sample_weight, np.empty((len(y), 0)), dtype=np.float64)
        weight = normalised_weights(self._sample_weight(weight, y),
                                     sample_weight is not None)
        self._check_fit_parameters()
        callbacks = check_callbacks(self.callbacks)
        self.device_ = resolve_device(self.device, type(self).__name__)
        if self.precision == "16-mixed" and self.device_.type == "cpu":
            warnings.warn(
                "precision='16-mixed' on the CPU runs float16 arithmetic that CPUs emulate: "
                "training is many times slower than in float32 (30x was measured). Use "
                "precision='32', or 'bf16-mixed' on a CPU with bfloat16 support; float16 "
                "is for CUDA.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        distributed = resolve_distributed(self.distributed, self.device_)
        if distributed is not None:
            self.device_ = distributed.device  # cuda:LOCAL_RANK under torchrun

        inputs = engine.fit_inputs(data, resolve_modality_spec(self.modalities),
                                   self.on_read_error)
        self.modalities_ = inputs.modalities
        self._preprocessors = inputs.preprocessors
        self._frozen_encoders = inputs.frozen_encoders
        self._input_shapes = inputs.input_shapes
        self._frozen_keys = {}
        # the cache namespaces hash the encoders' weights: once per fit, not per call
        self._frozen_keys = {name: source.namespace
                             for name, source in self._frozen_features().items()}
        log = inputs.log
        dataset = self._training_data(data, target, weight, log, inputs.present)

        rng = check_random_state(self.random_state)
        split_seed, torch_seed = rng.randint(np.iinfo(np.int32).max, size=2)
        plans = self._member_plans(strata, int(split_seed), rng, len(y))
        if distributed is not None:
            # random_state=None draws other seeds in every process: rank 0's hold
            torch_seed, plans = distributed.broadcast_object((int(torch_seed), plans))
        devices = [self.device_] if self.device_.type == "cuda" else []
        # torch's generator is the process's: a fit in another thread drawing from it at
        # the same time would change this fit's weights and dropout; one fit at a time
        with engine.GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(torch_seed))
            self._fit_network(dataset, plans, callbacks, distributed)
        self._after_training(dataset, plans)
        log.failures.update(dataset.read_failures)
        log.warn("fit")
        return self

    def _member_plans(self, strata: np.ndarray | None, split_seed: int,
                      rng: np.random.RandomState, n_samples: int | None = None) -> list:
        """Training and held-out rows of every member, and its seed."""
        cheap = all(m.kind in ("tabular", "embedding") or name in self._frozen_encoders
                    for name, m in self.modalities_.items())
        n = len(strata) if n_samples is None else n_samples
        return engine.plan_members(
            strata, n, cheap, ensemble_size=self.ensemble_size,
            early_stopping=self.early_stopping, validation_fraction=self.validation_fraction,
            split_seed=split_seed, rng=rng,
        )

    def _target_vector(self, y: Any) -> np.ndarray:
        """y as a 1-D array (a task may refuse other shapes with its own message)."""
        from sklearn.utils import column_or_1d

        return column_or_1d(y, warn=True)

    def _fit_network(self, dataset: FusionDataset, plans: list, callbacks: list,
                     distributed: Any = None) -> None:
        task = self._task()
        result = engine.fit_members(
            lambda: self._build_network(self._input_shapes), dataset, plans, task,
            net_kwargs=self._net_kwargs(), modality_dropout=self.modality_dropout,
            unimodal_weight=self.unimodal_weight, dropout_rate=self.dropout_rate,
            contrastive=self.contrastive, contrastive_loss=self.contrastive_loss,
            pretrain_epochs=self.pretrain_epochs, max_epochs=self.max_epochs,
            patience=self.patience, verbose=self.verbose, callbacks=callbacks,
            distributed=distributed, n_modalities=len(self.modalities_),
        )
        if result.diverged:
            warnings.warn(
                f"Training diverged: {result.diverged}. Lower the learning rate 'lr' (now "
                f"{self.lr:g}) or check the inputs for extreme values.",
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )
        if result.interrupted:
            warnings.warn(
                "Training was interrupted; the estimator keeps the best weights reached so "
                "far.",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        self._nets = result.nets
        self._interrupted = result.interrupted  # tune stops on it
        self.ensemble_size_ = len(result.nets)
        self.best_epoch_ = result.best_epoch
        self.linear_C_ = result.linear_C
        self.history_ = history_frame(result.history, task.full_loss_name)

    # -- prediction ----------------------------------------------------------------
    def _predict_outputs(self, X: Any) -> np.ndarray:
        """The members' outputs combined by the task, (n, n_outputs) float64 (for
        classes: log of the mean probabilities)."""
        check_is_fitted(self)
        with torch_threads(self.n_threads):
            data = self._as_data(X, reset=False)
            return engine.predict(
                [net.module_ for net in self._nets], self._task(), data, self.modalities_,
                self._preprocessors, self._frozen_features(), batch_size=self.batch_size,
                device=self.device_, precision=self.precision, num_workers=self.num_workers,
                on_read_error=self.on_read_error, verbose=self.verbose,
                temperatures=self._temperature_table(), cache_dir=self.cache_dir,
            )

    def _unreadable(self, data: MultimodalData) -> np.ndarray:
        """(n, M) bool: which files of ``data`` cannot be read (for the reports)."""
        check_is_fitted(self)
        return engine.unreadable_mask(data, self.modalities_, self._preprocessors,
                                      max(self.batch_size, 1))

    # -- persistence ---------------------------------------------------------------
    def _target_config(self) -> dict[str, Any]:
        """What ``save`` writes about the fitted target (JSON values)."""
        raise NotImplementedError

    def _set_target_config(self, state: dict[str, Any]) -> None:
        """Restore the fitted target from :meth:`_target_config`'s validated form."""
        raise NotImplementedError

    def save(self, path: str) -> None:
        """Save the fitted model to the folder ``path`` without pickle.

        Weights go to ``model.safetensors``; parameters, the fitted target, modalities
        and the fitted preprocessing to ``config.json``. Load with :meth:`load`.

        Parameters
        ----------
        path : str or path-like
            A folder (created if needed).

        Notes
        -----
        In a process group (under ``torchrun``) only rank 0 writes, unless
        ``distributed=False``; the other ranks return at once, without waiting for it.
        """
        from .._persistence.files import save_model

        if self.distributed is not False and not main_process():
            return  # under torchrun every rank holds the same model: rank 0 writes it
        save_model(self, path)

    @classmethod
    def load(cls, path: str, device: Any = "cpu") -> BaseMultimodalFusion:
        """Load a model saved by :meth:`save`, on ``device`` (default the CPU).

        Settings that only say how and where the loading machine computes are never
        taken from the file: ``num_workers`` is 0, ``n_threads``, ``cache_dir`` and
        ``callbacks`` are None, ``verbose`` is 0, ``distributed`` is "auto" and
        ``device`` is this argument; set them on the loaded estimator as needed.

        Parameters
        ----------
        path : str or path-like
            The folder written by :meth:`save`.
        device : str or torch.device, default="cpu"
            Where to put the model; a GPU-trained model loads on the CPU.

        Returns
        -------
        object
            A fitted estimator of this class.
        """
        from .._persistence.files import load_model

        return load_model(cls, path, device)


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value
