"""MultimodalFusionClassifier: the scikit-learn face of the fusion network."""

from __future__ import annotations

import os
import warnings
from copy import deepcopy
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted
from sklearn_compat.base import _fit_context
from sklearn_compat.utils.validation import validate_data

from .._data import MultimodalData, resolve_modality_spec
from .._data.messages import rows_text as _rows_text
from .._data.parsing import (
    check_known_modalities,
    check_no_array_columns,
    fitted_column_spec,
    multimodal_input,
    presence_matrix,
    resolve_modalities,
)
from .._preprocessing import fit_preprocessors, sample_shape
from .._torch.encoders import (
    EmbeddingEncoder,
    ModuleEncoder,
    build_encoder,
    module_output_width,
)
from .._torch.losses import contrastive_pairs
from .._torch.model import MultimodalFusionNet
from .._training.calibration import fit_temperature_table
from .._training.callbacks import check_callbacks
from .._training.devices import resolve_device
from .._training.distributed import DistributedContext, main_process, resolve_distributed
from .._training.ensemble import MemberPlan, train_members
from .._training.nets import PRECISIONS, FusionDataset, torch_threads
from .._training.plans import history_frame, member_plans, resolve_ensemble_size
from .._training.sources import FrozenFeatures, ReadLog, predict_log_proba, training_dataset


class MultimodalFusionClassifier(ClassifierMixin, BaseEstimator):
    """Classify from several modalities, any of which may be missing.

    Each modality has an encoder (tabular MLP, 2-D or 3-D CNN, LayerNorm+linear for
    precomputed embeddings, or a user module). A learnable token per modality stands
    in for its features wherever it is absent; the per-modality features are fused by
    an MLP (or a transformer) and classified. Training uses simultaneous modality
    dropout (the full input and every single-modality configuration in each step) and,
    optionally, a supervised sigmoid contrastive pretraining stage (Gu, Saito and Ma,
    MICCAI 2025).

    Parameters
    ----------
    modalities : dict, list or None, default=None
        None infers the modalities and their kinds from the data. A dict maps each
        name to a kind (``"tabular"``, ``"image"``, ``"volume"``, ``"embedding"``), a
        :class:`~mmfusion_sklearn.Modality`, or, for DataFrame input, the column(s)
        forming it.
    fusion : {"mlp", "transformer"}, default="mlp"
        Fusion head: the paper's MLP block, or a transformer over modality tokens.
    embed_dim : int, default=128
        Width of every encoder's output, the modality tokens and the fused vector.
    missing_token : {"learned", "zero"}, default="learned"
        Learnable zero-initialised tokens for absent modalities, or plain
        zero-filling: an absent modality's normalised features are zeros.
    modality_dropout : {"simultaneous", "random", "none"}, default="simultaneous"
        "simultaneous": loss = CE(full) + unimodal_weight * sum of the single-modality
        CEs. "random": each modality of each sample dropped with probability
        ``dropout_rate`` (one always kept). "none": no modality dropout.
    dropout_rate : float, default=0.3
        Drop probability of ``modality_dropout="random"``.
    unimodal_weight : float, default=1.0
        Weight of the single-modality terms of ``modality_dropout="simultaneous"``.
    contrastive : {"fused", "unimodal"} or None, default="fused"
        Pairs of the contrastive stage: unimodal-unimodal and unimodal-fused
        ("fused"), unimodal-unimodal only ("unimodal"), or no contrastive stage.
    contrastive_loss : {"balanced", "paper"}, default="balanced"
        Setting of the supervised sigmoid loss. "balanced": positive (same-class) and
        negative pairs weighted equally, bias initialised to 0 and scale to 10, so that
        the loss starts at its uninformative level ln 2 and falls only as classes
        separate. "paper": SigLIP's scale 10 and bias -10 with unweighted pairs, as in
        the paper; with about half the pairs positive (two classes) it tends to pull all
        projections together (a loss stuck at ln 2).
    pretrain_epochs : int, default=10
        Epochs of the contrastive stage (0 skips it).
    max_epochs : int, default=100
        Maximum epochs of the classification stage.
    batch_size : int, default=64
        Minibatch size.
    lr : float, default=1e-3
        AdamW learning rate.
    weight_decay : float, default=1e-4
        AdamW weight decay.
    early_stopping : bool, default=True
        Hold out a stratified ``validation_fraction`` of the training data and stop
        when its loss has not improved for ``patience`` epochs; the weights of the
        best epoch are restored.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
    patience : int, default=10
        Epochs without improvement before stopping.
    ensemble_size : int or "auto", default="auto"
        Networks trained in one fit, whose probabilities are averaged. With early
        stopping and more than one member, the training data are split into
        ``ensemble_size`` stratified folds and member k holds out fold k (cross-fitting:
        every sample is held out once, and ``validation_fraction`` is not used); all
        members train in lockstep and stop together when the validation loss pooled
        over every held-out sample stops improving. Without early stopping, the members
        differ by their seeds only. "auto" is 5 when early stopping is on, there are at
        most 5,000 training samples and every modality is tabular, an embedding or
        the output of a frozen encoder; else 1 (images and volumes train their CNNs
        on all the data instead).
    linear_path : bool, default=True
        Give every tabular and embedding modality (and frozen-encoder features) a
        linear path straight to the class logits, fitted first as an L2-penalised
        logistic model of the same objective, with the penalty chosen on the
        held-out rows from a grid (``C`` from 0.001 to 10, as scikit-learn's
        ``LogisticRegression`` counts it; ``C=1`` without early stopping). The network
        starts from that linear model and learns what it misses.
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into ``sample_weight``.
    device : str or torch.device, default="auto"
        "auto" uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the validation split and batch order: with an
        int, two fits on the CPU give identical predictions.
    verbose : int, default=0
        0 is silent; 1 shows progress bars (per training stage over epochs, per
        prediction over batches, per frozen encoder over the batches it encodes); 2
        also prints a line per epoch.
    precision : {"32", "bf16-mixed", "16-mixed"}, default="32"
        Forward passes in float32, or under ``torch.autocast`` in bfloat16 or float16
        (losses in float32; float16 training uses a gradient scaler). bfloat16 works on
        the CPU and on recent GPUs; float16 is for CUDA (on the CPU it needs
        torch >= 2.3). The linear path is always fitted in float32.
    num_workers : int, default=0
        DataLoader worker processes that read, transform and batch file-backed
        modalities (image and volume paths) in fit and prediction; 0 reads them in
        this process. In-memory arrays are sliced in this process regardless.
    on_read_error : {"raise", "missing"}, default="raise"
        What a file that cannot be read does (missing, corrupt, truncated, not an
        image, or no decoder for it). "raise": an error naming the modality, the row
        and the file. "missing": that sample lacks the modality, and one warning per
        fit or prediction names the files. A sample left with no modality is
        excluded from training (weight 0); in prediction it is an error.
    cache_dir : str, path-like or None, default=None
        Frozen encoders' features are always cached in this process (each sample is
        encoded once, not once per fit, fold or trial); a folder also keeps them on
        disk, shared between processes (``n_jobs``) and sessions.
    calibration : {"temperature"} or None, default=None
        "temperature": after training, fit one temperature per subset of modalities
        on the held-out rows (each row predicted by the member that held it out, from
        that subset alone), and divide each sample's log-probabilities by the
        temperature of the modalities it has. Probabilities are then calibrated
        under every missingness pattern; predicted labels never change. Needs
        ``early_stopping=True`` (the held-out rows); the temperatures are in
        ``temperatures_``.
    callbacks : list or None, default=None
        skorch callbacks of the classification stage (instances, or ``(name,
        callback)`` pairs): learning-rate schedulers, checkpoints, extra scores,
        pruning. Every member of an ensemble runs its own copy (a ``Checkpoint``'s
        ``fn_prefix`` gets ``member{k}_`` when there are several); a callback holding
        an Optuna trial (pruning) is not copied and runs on the first member. Epochs
        end once every member has trained, so ``net.history[-1, "pooled_valid_loss"]``
        is there for them. Numbers they record become columns of ``history_``. The
        estimator's own early stopping is the one to use (skorch's ``EarlyStopping``
        raises ``KeyboardInterrupt``, which ends training as an interruption would).
    n_threads : int or None, default=None
        CPU threads torch uses during this estimator's fit and prediction (set for the
        call and restored afterwards). None keeps torch's setting, which scikit-learn's
        and joblib's worker processes (``n_jobs``) already limit to the cores divided
        by the number of workers.
    distributed : "auto" or bool, default="auto"
        Data-parallel training with torch's ``DistributedDataParallel`` when the script
        runs in several processes: "auto" turns it on when torchrun's ``WORLD_SIZE``
        is above 1 (the process group is started from torchrun's environment, gloo on
        the CPU, NCCL on CUDA, each process on ``cuda:LOCAL_RANK``) or when the script
        started a process group of several processes itself; False trains in each
        process alone; True is "auto" that refuses a single process. Every rank calls
        ``fit`` on the same data; a ``DistributedSampler`` gives each its share of
        every training batch (``batch_size`` stays the rows per optimiser step, over
        all ranks), the held-out losses that early stopping watches are pooled over
        the ranks, and all ranks end with the same weights. Prediction runs in each
        process alone; :meth:`save` writes on rank 0 only. See the "Running on a
        cluster" page.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    modalities_ : dict of str to Modality
        The fitted modalities, in order, with their kinds resolved.
    history_ : pandas.DataFrame
        One row per member, stage and epoch: ``stage`` ("contrastive" or
        "classification"), ``member``, ``epoch``, ``train_loss``, ``valid_loss`` (the
        member's held-out rows; NaN without early stopping), ``pooled_valid_loss``
        (classification: the held-out loss over every member, which early stopping
        watches), ``pooled_valid_log_loss`` (the held-out log loss of the full input
        alone over every member: unlike the objective, comparable between settings of
        ``unimodal_weight`` or ``modality_dropout``; what tuning prunes on), the
        contrastive stage's mean cosines between projections of two samples of the
        same class and of different classes (``same_class_cosine``,
        ``diff_class_cosine``, and their ``valid_`` counterparts on held-out rows),
        ``dur`` (seconds), and any number that ``callbacks`` record.
    ensemble_size_ : int
        The number of networks trained (``ensemble_size`` resolved).
    best_epoch_ : int or None
        The classification epoch whose weights were kept (0: the starting point, i.e.
        the linear path alone or a constant); None without early stopping.
    linear_C_ : float or None
        Inverse penalty of the linear path (None without one).
    temperatures_ : pandas.DataFrame
        Only with ``calibration="temperature"``: one row per subset of modalities,
        ``modalities`` (joined by "+"), ``temperature`` and ``n_samples`` (held-out
        rows it was fitted on; a subset without any takes the temperature fitted on
        every subset's rows together).
    n_features_in_ : int
        Number of features, only when fitted on a plain 2-D array or DataFrame.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, only when fitted on a DataFrame with string column names.
    device_ : torch.device
        The device used.

    See Also
    --------
    MultimodalData : The sliceable container that model selection tools accept.
    mmfusion_sklearn.metrics.missing_modality_report : Scores per subset of modalities.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfusion_sklearn import MultimodalFusionClassifier
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 60)
    >>> X = {
    ...     "clinical": rng.normal(size=(60, 3)) + y[:, None],
    ...     "image": [rng.normal(size=(8, 8)) + y[i] if i % 3 else None for i in range(60)],
    ... }
    >>> clf = MultimodalFusionClassifier(
    ...     embed_dim=16, max_epochs=5, pretrain_epochs=2, random_state=0)
    >>> clf.fit(X, y).predict({"clinical": X["clinical"][:2]}).shape
    (2,)
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
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "precision": [StrOptions(set(PRECISIONS))],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "on_read_error": [StrOptions({"raise", "missing"})],
        "cache_dir": [None, str, os.PathLike],
        "calibration": [StrOptions({"temperature"}), None],
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
        contrastive="fused",
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
        class_weight=None,
        device="auto",
        random_state=None,
        verbose=0,
        precision="32",
        num_workers=0,
        on_read_error="raise",
        cache_dir=None,
        calibration=None,
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
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.precision = precision
        self.num_workers = num_workers
        self.on_read_error = on_read_error
        self.cache_dir = cache_dir
        self.calibration = calibration
        self.callbacks = callbacks
        self.n_threads = n_threads
        self.distributed = distributed

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

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
        sources = {}
        for name, module in self._frozen_encoders.items():
            source = FrozenFeatures(
                name, module, self._preprocessors[name], self.device_, self.precision,
                self.batch_size, self.num_workers,
                None if self.cache_dir is None else os.fspath(self.cache_dir),
                namespace=self._frozen_keys.get(name),
            )
            source.width = self._input_shapes[name][0]
            sources[name] = source
        return sources

    def _training_data(
        self, data: MultimodalData, y_index: np.ndarray, weight: np.ndarray, log: ReadLog,
        present: np.ndarray | None = None,
    ) -> FusionDataset:
        """The training FusionDataset: tensors, lazy file sources and frozen features."""
        check_known_modalities(data, self.modalities_)
        names = list(self.modalities_)
        if present is None:
            present = presence_matrix(data, names)
        return training_dataset(
            data, names, self._preprocessors, self._frozen_features(), present, y_index,
            weight, on_read_error=self.on_read_error, log=log, verbose=self.verbose,
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
    def _build_network(self, input_shapes: dict[str, tuple[int, ...]]) -> MultimodalFusionNet:
        encoders = {}
        linear_widths = {}
        for name, modality in self.modalities_.items():
            shape = input_shapes[name]
            if self.linear_path and (
                name in self._frozen_encoders
                or (modality.encoder is None and modality.kind in ("tabular", "embedding"))
            ):
                linear_widths[name] = int(np.prod(shape))
            if name in self._frozen_encoders:
                encoders[name] = EmbeddingEncoder(shape[0], self.embed_dim)
            elif modality.encoder is not None:
                backbone = deepcopy(modality.encoder)
                width = module_output_width(backbone, shape)
                encoders[name] = ModuleEncoder(backbone, width, self.embed_dim)
            else:
                encoders[name] = build_encoder(
                    modality.kind, shape if len(shape) > 1 else shape[0], self.embed_dim
                )
        return MultimodalFusionNet(
            encoders, len(self.classes_), self.embed_dim, self.fusion, self.missing_token,
            linear_widths=linear_widths,
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
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MultimodalFusionClassifier:
        """Fit the encoders, tokens and fusion network.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Training samples in any accepted form (see :class:`MultimodalData`); a
            plain 2-D array is one tabular modality. Every sample needs at least one
            modality.
        y : array-like of shape (n_samples,)
            Class labels (any hashable values: strings, ints, bools).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights of the classification loss.

        Returns
        -------
        self : MultimodalFusionClassifier
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

    def _fit(self, X: Any, y: Any, sample_weight: Any) -> MultimodalFusionClassifier:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        data = self._as_data(X, reset=True)
        y = column_or_1d(y, warn=True)
        if len(y) != len(data):
            raise ValueError(
                f"Number of samples in X ({len(data)}) and y ({len(y)}) do not match."
            )
        if len(y) == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y contains only one class ({_plain(self.classes_[0])!r}): a classifier needs "
                "samples of at least 2 classes."
            )
        weight = _check_sample_weight(sample_weight, np.empty((len(y), 0)), dtype=np.float64)
        if self.class_weight is not None:
            weight = weight * compute_sample_weight(self.class_weight, y)
        _check_training_weights(weight, sample_weight is not None)
        if self.calibration is not None and not self.early_stopping:
            raise ValueError(
                f"calibration={self.calibration!r} fits its temperatures on the held-out "
                "rows, which early_stopping=False does not keep. Set early_stopping=True, "
                "or wrap the estimator in sklearn.calibration.CalibratedClassifierCV."
            )
        callbacks = check_callbacks(self.callbacks)
        self.device_ = resolve_device(self.device, type(self).__name__)
        distributed = resolve_distributed(self.distributed, self.device_)
        if distributed is not None:
            self.device_ = distributed.device  # cuda:LOCAL_RANK under torchrun

        self.modalities_ = resolve_modalities(data, resolve_modality_spec(self.modalities))
        names = list(self.modalities_)
        present = presence_matrix(data, names)
        log = ReadLog()
        self._preprocessors = fit_preprocessors(data, self.modalities_, self.on_read_error,
                                                log.failures)
        for name, row in log.failures:
            present[row, names.index(name)] = False
        self._frozen_encoders = {
            name: deepcopy(m.encoder).eval().requires_grad_(False)
            for name, m in self.modalities_.items()
            if m.encoder is not None and not m.trainable
        }
        self._frozen_keys = {}
        self._input_shapes = {}
        for name, preprocessor in self._preprocessors.items():
            shape = sample_shape(preprocessor)
            if name in self._frozen_encoders:
                shape = (module_output_width(self._frozen_encoders[name], shape),)
            self._input_shapes[name] = shape
        # the cache namespaces hash the encoders' weights: once per fit, not per call
        self._frozen_keys = {name: source.namespace
                             for name, source in self._frozen_features().items()}
        dataset = self._training_data(data, y_index, weight, log, present)

        rng = check_random_state(self.random_state)
        split_seed, torch_seed = rng.randint(np.iinfo(np.int32).max, size=2)
        plans = self._member_plans(y_index, int(split_seed), rng)
        if distributed is not None:
            # random_state=None draws other seeds in every process: rank 0's hold
            torch_seed, plans = distributed.broadcast_object((int(torch_seed), plans))
        devices = [self.device_] if self.device_.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(torch_seed))
            self._fit_network(dataset, plans, callbacks, distributed)
        self._fit_calibration(dataset, plans)
        log.failures.update(dataset.read_failures)
        log.warn("fit", stacklevel=4)  # the user's call of fit
        return self

    def _member_plans(
        self, y_index: np.ndarray, split_seed: int, rng: np.random.RandomState
    ) -> list[MemberPlan]:
        """Training and held-out rows of every member, and its seed."""
        cheap = all(
            m.kind in ("tabular", "embedding") or name in self._frozen_encoders
            for name, m in self.modalities_.items()
        )
        size = resolve_ensemble_size(self.ensemble_size, len(y_index), self.early_stopping,
                                     cheap)
        member_seeds = [int(s) for s in rng.randint(np.iinfo(np.int32).max, size=size)]
        return member_plans(y_index, size, self.early_stopping, self.validation_fraction,
                            split_seed, member_seeds)

    def _fit_network(self, dataset: FusionDataset, plans: list[MemberPlan],
                     callbacks: list, distributed: DistributedContext | None = None) -> None:
        pretrain = (
            self.contrastive is not None
            and self.pretrain_epochs > 0
            and bool(contrastive_pairs(len(self.modalities_), self.contrastive))
        )
        net_kwargs = {**self._net_kwargs(), "distributed": distributed}
        result = train_members(
            lambda: self._build_network(self._input_shapes),
            dataset,
            plans,
            task_kwargs={
                "objective": self.modality_dropout,
                "unimodal_weight": self.unimodal_weight,
                "dropout_rate": self.dropout_rate,
                **net_kwargs,
            },
            max_epochs=self.max_epochs,
            patience=self.patience,
            contrastive_kwargs={"contrastive": self.contrastive,
                                "loss": self.contrastive_loss, **net_kwargs}
            if pretrain else None,
            pretrain_epochs=self.pretrain_epochs,
            verbose=self.verbose,
            callbacks=callbacks,
        )
        if result.diverged:
            warnings.warn(
                f"Training diverged: {result.diverged}. Lower the learning rate 'lr' (now "
                f"{self.lr:g}) or check the inputs for extreme values.",
                RuntimeWarning,
                stacklevel=5,  # user <- fit wrapper <- fit <- _fit <- _fit_network
            )
        if result.interrupted:
            warnings.warn(
                "Training was interrupted; the estimator keeps the best weights reached so "
                "far.",
                UserWarning,
                stacklevel=5,
            )
        self._nets = result.nets
        self.ensemble_size_ = len(result.nets)
        self.best_epoch_ = result.best_epoch
        self.linear_C_ = result.linear_C
        self.history_ = history_frame(result.history)

    def _fit_calibration(self, dataset: FusionDataset, plans: list[MemberPlan]) -> None:
        """Temperatures per modality subset on the held-out rows (``calibration``)."""
        self.__dict__.pop("temperatures_", None)
        self._temperatures = None
        if self.calibration is None:
            return
        valids = [None if p.valid_index is None else dataset.subset(p.valid_index)
                  for p in plans]
        table = fit_temperature_table(
            [net.module_ for net in self._nets], valids, len(self.modalities_),
            batch_size=self.batch_size, device=self.device_, precision=self.precision,
            num_workers=self.num_workers,
        )
        self._temperatures = table
        self.temperatures_ = table.frame(list(self.modalities_))

    # -- prediction ----------------------------------------------------------------
    def _log_proba(self, X: Any) -> torch.Tensor:
        """Log of the members' mean class probabilities, (n, n_classes) float64."""
        check_is_fitted(self)
        # inline, not a helper: the warnings' stacklevels count the frames to the user
        with torch_threads(self.n_threads):
            data = self._as_data(X, reset=False)
            check_known_modalities(data, self.modalities_)
            names = list(self.modalities_)
            log_proba = predict_log_proba(
                [net.module_ for net in self._nets], data, names, self._preprocessors,
                self._frozen_features(), presence_matrix(data, names),
                batch_size=self.batch_size, device=self.device_, precision=self.precision,
                num_workers=self.num_workers, on_read_error=self.on_read_error,
                verbose=self.verbose, temperatures=getattr(self, "_temperatures", None),
            )
        return torch.from_numpy(log_proba)

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores (logits): shape (n_samples,) for two classes, else (n, n_classes).

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.

        Returns
        -------
        ndarray
            For two classes the log-odds of ``classes_[1]``.
        """
        log_proba = self._log_proba(X)
        if log_proba.shape[1] == 2:
            return (log_proba[:, 1] - log_proba[:, 0]).numpy()
        return log_proba.numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probability of each class of ``classes_``; rows sum to 1.
        """
        return torch.exp(self._log_proba(X)).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted class labels.

        Parameters
        ----------
        X : dict, list of dict, MultimodalData, DataFrame or array-like
            Samples; modalities left out are treated as missing.

        Returns
        -------
        ndarray of shape (n_samples,)
            The most probable class of each sample, taken from ``classes_``.
        """
        index = self._log_proba(X).argmax(dim=1).numpy()
        return self.classes_[index]

    # -- persistence ---------------------------------------------------------------
    def save(self, path: str) -> None:
        """Save the fitted model to the folder ``path`` without pickle.

        Weights go to ``model.safetensors``; parameters, classes, modalities and the
        fitted preprocessing to ``config.json``. Load with :meth:`load`.

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
    def load(cls, path: str, device: Any = "cpu") -> MultimodalFusionClassifier:
        """Load a model saved by :meth:`save`, on ``device`` (default the CPU).

        Parameters
        ----------
        path : str or path-like
            The folder written by :meth:`save`.
        device : str or torch.device, default="cpu"
            Where to put the model; a GPU-trained model loads on the CPU.

        Returns
        -------
        MultimodalFusionClassifier
            A fitted estimator.
        """
        from .._persistence.files import load_model

        return load_model(cls, path, device)


#: Largest sample weight (times class weight) accepted: the losses run in float32, and a
#: weighted sum of losses must not overflow it.
MAX_SAMPLE_WEIGHT = 1e30


def _check_training_weights(weight: np.ndarray, given: bool) -> None:
    """Refuse negative, non-finite, float32-overflowing or all-zero training weights."""
    source = "sample_weight" if given else "class_weight"
    bad = np.flatnonzero(~np.isfinite(weight) | (weight < 0))
    if len(bad):
        raise ValueError(
            f"Sample weights (sample_weight times class_weight) must be finite and "
            f"non-negative. Got {float(weight[bad[0]])!r} for rows {_rows_text(bad)} instead."
        )
    big = np.flatnonzero(weight > MAX_SAMPLE_WEIGHT)
    if len(big):
        raise ValueError(
            f"Sample weights (sample_weight times class_weight) above {MAX_SAMPLE_WEIGHT:g} "
            f"overflow the float32 losses. Got {weight[big[0]]:g} for rows {_rows_text(big)}; "
            f"rescale {source} (only ratios between weights matter)."
        )
    if not (weight > 0).any():
        raise ValueError("Every sample weight is zero: at least one sample must count.")


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value
