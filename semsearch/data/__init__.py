"""Data sets in their official formats, and the training mixture built from them."""

from semsearch.data.mixture import (
    MIXTURES,
    MixtureConfig,
    build_mixture,
    normalise,
    scored_training_pairs,
)
from semsearch.data.records import Caption, NliPair, ScoredPair, TrainingPair
from semsearch.data.sources import DATA_ENV, load_snli, load_stsb, resolve_data_dir

__all__ = [
    "DATA_ENV", "MIXTURES", "Caption", "MixtureConfig", "NliPair", "ScoredPair", "TrainingPair",
    "build_mixture", "load_snli", "load_stsb", "normalise", "resolve_data_dir",
    "scored_training_pairs",
]
