"""Saving and loading fitted models without pickle (safetensors + JSON); never imports an
estimator: the class to build is passed in."""
