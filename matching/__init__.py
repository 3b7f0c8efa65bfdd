"""Identity resolution for the virtual social registry: normalisation, Splink models, online matching.

Plain data crosses the package border: pandas frames and dicts in, dataclasses out; nothing here
imports the gateway or the other domain packages.
"""

from matching.comparisons import DEFAULT_BLOCKING, DEFAULT_COMPARISONS, Comparison, Level
from matching.errors import MatchingError, ModelError, SourceError, TrainingError
from matching.evaluate import Score, markdown_table, sweep
from matching.model import TrainedModel, train
from matching.normalise import MODEL_COLUMNS, normalise_frame, normalise_record
from matching.online import Candidate, OnlineMatcher
from matching.record import CANONICAL_COLUMNS, PersonRecord
from matching.sources import CRA_PERSON, FEBRL, MSP_BENEFICIARY, SourceMapping, load, load_frame, read_sqlite

__all__ = [
    "CANONICAL_COLUMNS",
    "CRA_PERSON",
    "DEFAULT_BLOCKING",
    "DEFAULT_COMPARISONS",
    "FEBRL",
    "MODEL_COLUMNS",
    "MSP_BENEFICIARY",
    "Candidate",
    "Comparison",
    "Level",
    "MatchingError",
    "ModelError",
    "OnlineMatcher",
    "PersonRecord",
    "Score",
    "SourceError",
    "SourceMapping",
    "TrainedModel",
    "TrainingError",
    "load",
    "load_frame",
    "markdown_table",
    "normalise_frame",
    "normalise_record",
    "read_sqlite",
    "sweep",
    "train",
]
