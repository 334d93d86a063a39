"""Everything a fit does, below the estimators: data sources and streaming, the frozen
feature cache, member plans, the skorch nets and the ensemble loop, callbacks, DDP and
calibration. Nothing here imports an estimator."""
