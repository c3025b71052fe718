"""Experiment tracking: experiments, runs, params, metrics, tags, datasets and logged models."""
