"""The estimators' shared parameter and attribute documentation, written once.

Each estimator's docstring is assembled from these entries (see :func:`parameters`),
so that a shared parameter reads the same for every task and the docstring test
checks it against every signature.
"""

from __future__ import annotations

#: numpydoc entries of the parameters, by name.
PARAMETERS: dict[str, str] = {
    'modalities': """\
    modalities : dict, list or None, default=None
        None infers the modalities and their kinds from the data. A dict maps each
        name to a kind (``"tabular"``, ``"image"``, ``"volume"``, ``"embedding"``), a
        :class:`~mmfusion_sklearn.Modality`, or, for DataFrame input, the column(s)
        forming it.
""",
    'fusion': """\
    fusion : {"mlp", "transformer"}, default="mlp"
        Fusion head: the paper's MLP block, or a transformer over modality tokens.
""",
    'embed_dim': """\
    embed_dim : int, default=128
        Width of every encoder's output, the modality tokens and the fused vector.
""",
    'missing_token': """\
    missing_token : {"learned", "zero"}, default="learned"
        Learnable zero-initialised tokens for absent modalities, or plain
        zero-filling: an absent modality's normalised features are zeros.
""",
    'modality_dropout': """\
    modality_dropout : {"simultaneous", "random", "none"}, default="simultaneous"
        "simultaneous": loss = task loss(full) + unimodal_weight * sum of the
        single-modality task losses (cross-entropy for classes, squared error for a
        continuous target). "random": each modality of each sample dropped with probability
        ``dropout_rate`` (one always kept). "none": no modality dropout.
""",
    'dropout_rate': """\
    dropout_rate : float, default=0.3
        Drop probability of ``modality_dropout="random"``.
""",
    'unimodal_weight': """\
    unimodal_weight : float, default=1.0
        Weight of the single-modality terms of ``modality_dropout="simultaneous"``.
""",
    'contrastive': """\
    contrastive : {"fused", "unimodal"} or None, default="fused"
        Pairs of the contrastive stage: unimodal-unimodal and unimodal-fused
        ("fused"), unimodal-unimodal only ("unimodal"), or no contrastive stage. With
        classes, two samples of one class are a positive pair; without (regression),
        the positives are one sample's unimodal and fused views (label-free).
""",
    'contrastive_loss': """\
    contrastive_loss : {"balanced", "paper"}, default="balanced"
        Setting of the supervised sigmoid loss. "balanced": positive (same-class) and
        negative pairs weighted equally, bias initialised to 0 and scale to 10, so that
        the loss starts at its uninformative level ln 2 and falls only as classes
        separate. "paper": SigLIP's scale 10 and bias -10 with unweighted pairs, as in
        the paper; with about half the pairs positive (two classes) it tends to pull all
        projections together (a loss stuck at ln 2).
""",
    'pretrain_epochs': """\
    pretrain_epochs : int, default=10
        Epochs of the contrastive stage (0 skips it).
""",
    'max_epochs': """\
    max_epochs : int, default=100
        Maximum epochs of the task stage.
""",
    'batch_size': """\
    batch_size : int, default=64
        Minibatch size.
""",
    'lr': """\
    lr : float, default=1e-3
        AdamW learning rate.
""",
    'weight_decay': """\
    weight_decay : float, default=1e-4
        AdamW weight decay.
""",
    'early_stopping': """\
    early_stopping : bool, default=True
        Hold out a ``validation_fraction`` (stratified for classes) of the training data and stop
        when its loss has not improved for ``patience`` epochs; the weights of the
        best epoch are restored.
""",
    'validation_fraction': """\
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
""",
    'patience': """\
    patience : int, default=10
        Epochs without improvement before stopping.
""",
    'ensemble_size': """\
    ensemble_size : int or "auto", default="auto"
        Networks trained in one fit, whose outputs are averaged (class probabilities,
        or predictions). With early
        stopping and more than one member, the training data are split into
        ``ensemble_size`` folds (stratified for classes) and member k holds out fold k
        (cross-fitting: every sample is held out once, and ``validation_fraction`` is not used); all
        members train in lockstep and stop together when the validation loss pooled
        over every held-out sample stops improving. Without early stopping, the members
        differ by their seeds only. "auto" is 5 when early stopping is on, there are at
        most 5,000 training samples and every modality is tabular, an embedding or
        the output of a frozen encoder; else 1 (images and volumes train their CNNs
        on all the data instead).
""",
    'linear_path': """\
    linear_path : bool, default=True
        Give every tabular and embedding modality (and frozen-encoder features) a
        linear path straight to the outputs, fitted first as an L2-penalised linear
        model of the same objective (logistic for classes, ridge for a continuous
        target), with the penalty chosen on the held-out rows from a grid (``C`` from
        0.001 to 10, as scikit-learn's ``LogisticRegression`` counts it; for regression
        ``Ridge``'s ``alpha`` is ``1 / C`` on the standardised target; ``C=1`` without
        early stopping). The network
        starts from that linear model and learns what it misses.
""",
    'class_weight': """\
    class_weight : dict, "balanced" or None, default=None
        Weights per class, multiplied into ``sample_weight``.
""",
    'device': """\
    device : str or torch.device, default="auto"
        "auto" uses CUDA when available, else the CPU.
""",
    'random_state': """\
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, the validation split and batch order: with an
        int, two fits on the CPU give identical predictions.
""",
    'verbose': """\
    verbose : int, default=0
        0 is silent; 1 shows progress bars (per training stage over epochs, per
        prediction over batches, per frozen encoder over the batches it encodes); 2
        also prints a line per epoch.
""",
    'precision': """\
    precision : {"32", "bf16-mixed", "16-mixed"}, default="32"
        Forward passes in float32, or under ``torch.autocast`` in bfloat16 or float16
        (losses in float32; float16 training uses a gradient scaler). bfloat16 works on
        the CPU and on recent GPUs; float16 is for CUDA (on the CPU it needs
        torch >= 2.3). The linear path is always fitted in float32.
""",
    'num_workers': """\
    num_workers : int, default=0
        DataLoader worker processes that read, transform and batch file-backed
        modalities (image and volume paths) in fit and prediction; 0 reads them in
        this process. In-memory arrays are sliced in this process regardless.
""",
    'on_read_error': """\
    on_read_error : {"raise", "missing"}, default="raise"
        What a file that cannot be read does (missing, corrupt, truncated, not an
        image, or no decoder for it). "raise": an error naming the modality, the row
        and the file. "missing": that sample lacks the modality, and one warning per
        fit or prediction names the files. A sample left with no modality is
        excluded from training (weight 0); in prediction it is an error.
""",
    'cache_dir': """\
    cache_dir : str, path-like or None, default=None
        Frozen encoders' features are always cached in this process (each sample is
        encoded once, not once per fit, fold or trial); a folder also keeps them on
        disk, shared between processes (``n_jobs``) and sessions.
""",
    'calibration': """\
    calibration : {"temperature"} or None, default=None
        "temperature": after training, fit one temperature per subset of modalities
        on the held-out rows (each row predicted by the member that held it out, from
        that subset alone), and divide each sample's log-probabilities by the
        temperature of the modalities it has. Probabilities are then calibrated
        under every missingness pattern; predicted labels never change. Needs
        ``early_stopping=True`` (the held-out rows); the temperatures are in
        ``temperatures_``.
""",
    'callbacks': """\
    callbacks : list or None, default=None
        skorch callbacks of the task stage (instances, or ``(name,
        callback)`` pairs): learning-rate schedulers, checkpoints, extra scores,
        pruning. Every member of an ensemble runs its own copy (a ``Checkpoint``'s
        ``fn_prefix`` gets ``member{k}_`` when there are several); a callback holding
        an Optuna trial (pruning) is not copied and runs on the first member. Epochs
        end once every member has trained, so ``net.history[-1, "pooled_valid_loss"]``
        is there for them. Numbers they record become columns of ``history_``. The
        estimator's own early stopping is the one to use (skorch's ``EarlyStopping``
        raises ``KeyboardInterrupt``, which ends training as an interruption would).
""",
    'n_threads': """\
    n_threads : int or None, default=None
        CPU threads torch uses during this estimator's fit and prediction (set for the
        call and restored afterwards). None: torch's setting (which scikit-learn's and
        joblib's worker processes, ``n_jobs``, already limit to the cores divided by
        the number of workers), lowered to the cores that other processes leave free
        when the call starts (Linux: measured over 0.1 s from ``/proc/stat``, at most
        every 10 s, within the process's CPU affinity and cgroup quota). Threads on
        busy cores wait for one another at every operation: on two busy cores a fit
        ran 4.2x slower on two threads than on one (``benchmarks/threads_loaded.py``).
        The thread count can change a fit's results: in their last bits, and through
        early stopping by more (1 vs 2 threads: probabilities apart by up to 1e-8 on
        GSE7390 tables, 9e-3 on a 10-class model). Set ``n_threads`` to reproduce a
        fit bit for bit on a machine whose load varies.
""",
    'distributed': """\
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

""",
}

#: numpydoc entries of the fitted attributes, by name.
ATTRIBUTES: dict[str, str] = {
    'classes_': """\
    classes_ : ndarray of shape (n_classes,)
        Class labels.
""",
    'unique_times_': """\
    unique_times_ : ndarray of shape (n_times,)
        The distinct event times of the training samples (of positive weight),
        ascending: the times of ``predict_survival_function(X, return_array=True)``'s
        columns.
""",
    'modalities_': """\
    modalities_ : dict of str to Modality
        The fitted modalities, in order, with their kinds resolved.
""",
    'history_': """\
    history_ : pandas.DataFrame
        One row per member, stage and epoch: ``stage`` ("contrastive", or the task
        stage: "classification", "regression"), ``member``, ``epoch``, ``train_loss``,
        ``valid_loss`` (the member's held-out rows; NaN without early stopping),
        ``pooled_valid_loss`` (task stage: the held-out loss over every member, which early stopping
        watches), the held-out loss of the full input alone over every member
        (``pooled_valid_log_loss`` for classes, ``pooled_valid_squared_error`` on the
        standardised target for regression: unlike the objective, comparable between settings of
        ``unimodal_weight`` or ``modality_dropout``; what tuning prunes on), the
        contrastive stage's mean cosines between projections of two samples of the
        same class and of different classes (NaN without classes) (``same_class_cosine``,
        ``diff_class_cosine``, and their ``valid_`` counterparts on held-out rows),
        ``dur`` (seconds), and any number that ``callbacks`` record.
""",
    'ensemble_size_': """\
    ensemble_size_ : int
        The number of networks trained (``ensemble_size`` resolved).
""",
    'best_epoch_': """\
    best_epoch_ : int or None
        The task-stage epoch whose weights were kept (0: the starting point, i.e.
        the linear path alone or a constant); None without early stopping.
""",
    'linear_C_': """\
    linear_C_ : float or None
        Inverse penalty of the linear path (None without one).
""",
    'temperatures_': """\
    temperatures_ : pandas.DataFrame
        Only with ``calibration="temperature"``: one row per subset of modalities,
        ``modalities`` (joined by "+"), ``temperature`` and ``n_samples`` (held-out
        rows it was fitted on; a subset without any takes the temperature fitted on
        every subset's rows together).
""",
    'n_features_in_': """\
    n_features_in_ : int
        Number of features, only when fitted on a plain 2-D array or DataFrame.
""",
    'feature_names_in_': """\
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names, only when fitted on a DataFrame with string column names.
""",
    'device_': """\
    device_ : torch.device
        The device used.

""",
}

#: The fitted attributes every estimator has, in the order of the docstrings.
SHARED_ATTRIBUTE_ORDER = ["modalities_", "history_", "ensemble_size_", "best_epoch_",
                          "linear_C_", "n_features_in_", "feature_names_in_", "device_"]


#: The regressor's ``contrastive`` entry: its default differs (measured, see the text).
REGRESSOR_CONTRASTIVE = """\
    contrastive : {"fused", "unimodal"} or None, default=None
        Pairs of the contrastive stage: unimodal-unimodal and unimodal-fused
        ("fused"), unimodal-unimodal only ("unimodal"), or no contrastive stage (None,
        the default). Without classes the positive pairs are one sample's unimodal and
        fused views (label-free). Off by default: in docs/benchmarks_regression.md it
        changed no score significantly on any data set and doubled the fit time.
"""


#: The survival estimator's entries that differ from the shared ones (and its own).
SURVIVAL_OVERRIDES = {
    "loss": """\
    loss : {"cox", "discrete"}, default="cox"
        "cox": the negative log partial likelihood of Cox's model (Efron's ties), a
        risk score per sample, and a Breslow baseline hazard per member for the
        curves (DeepSurv). "discrete": a discrete-time (logistic) hazard per interval
        of time (MultiSurv, PORPOISE, pycox's ``LogisticHazard``), about ten events
        per interval (4 to 20 intervals, edges at quantiles of the training event
        times); the curves are the members' mean, and the risk score is minus the
        restricted mean survival time. See docs/benchmarks_survival.md for the
        comparison that chose the default.
""",
    "contrastive": """\
    contrastive : {"fused", "unimodal"} or None, default=None
        Pairs of the contrastive stage: unimodal-unimodal and unimodal-fused
        ("fused"), unimodal-unimodal only ("unimodal"), or no contrastive stage (None,
        the default). Without classes the positive pairs are one sample's unimodal and
        fused views (label-free). Off by default, as for regression (see
        docs/benchmarks_survival.md).
""",
    "modality_dropout": """\
    modality_dropout : {"simultaneous", "random", "none"}, default="simultaneous"
        "simultaneous": loss = Cox loss(full) + unimodal_weight * sum of the
        single-modality Cox losses (each over the samples that have the modality).
        "random": each modality of each sample dropped with probability
        ``dropout_rate`` (one always kept). "none": no modality dropout.
""",
    "linear_path": """\
    linear_path : bool, default=True
        Give every tabular and embedding modality (and frozen-encoder features) a
        linear path straight to the risk score, fitted first as a ridge Cox model of
        the same objective, with the penalty chosen on the held-out rows from a grid
        (``C`` from 0.001 to 10; scikit-survival's ``CoxPHSurvivalAnalysis`` has
        ``alpha = 1 / C`` on standardised features; ``C=1`` without early stopping).
        The network starts from that linear model and learns what it misses.
""",
    "early_stopping": """\
    early_stopping : bool, default=True
        Hold out a ``validation_fraction`` (stratified by event) of the training data
        and stop when its Cox loss has not improved for ``patience`` epochs; the
        weights of the best epoch are restored.
""",
}


def parameters(names: list[str], overrides: dict[str, str] | None = None) -> str:
    """The numpydoc "Parameters" section body for ``names``, in that order
    (``overrides`` replaces entries by name)."""
    entries = {**PARAMETERS, **(overrides or {})}
    return "".join(entries[name].rstrip() + "\n" for name in names)


def attributes(names: list[str]) -> str:
    """The numpydoc "Attributes" section body for ``names``, in that order."""
    return "".join(ATTRIBUTES[name].rstrip() + "\n" for name in names)
