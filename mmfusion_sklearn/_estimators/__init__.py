"""The estimators: one base that wires the engine, one short module per task."""
