"""Identity resolution for the virtual social registry: normalisation, Splink models, online matching.

Plain data crosses the package border: pandas frames and dicts in, dataclasses out; nothing here
imports the gateway or the other domain packages.
"""

from matching.comparisons import DEFAULT_BLOCKING, DEFAULT_COMPARISONS, Comparison, Level
from matching.errors import MatchingError, ModelError, SourceError, TrainingError
from matching.evaluate import Score, markdown_table, sweep
from matching.groundtruth import evaluate_crosswalk
from matching.link import Crosswalk, CrosswalkRun, LinkError, crosswalk_runs, link, load_crosswalk, read_crosswalk
from matching.model import TrainedModel, train
from matching.normalise import MODEL_COLUMNS, normalise_frame, normalise_record
from matching.online import Candidate, OnlineMatcher, score_candidates
from matching.record import CANONICAL_COLUMNS, PersonRecord
from matching.review import ReviewError, ReviewQueue
from matching.sources import (
    CRA_PERSON,
    FEBRL,
    KNOWN_SOURCES,
    MSP_BENEFICIARY,
    SourceMapping,
    load,
    load_frame,
    parse_source,
    read_sqlite,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "CRA_PERSON",
    "DEFAULT_BLOCKING",
    "DEFAULT_COMPARISONS",
    "FEBRL",
    "KNOWN_SOURCES",
    "MODEL_COLUMNS",
    "MSP_BENEFICIARY",
    "Candidate",
    "Comparison",
    "Crosswalk",
    "CrosswalkRun",
    "Level",
    "LinkError",
    "MatchingError",
    "ModelError",
    "OnlineMatcher",
    "PersonRecord",
    "ReviewError",
    "ReviewQueue",
    "Score",
    "SourceError",
    "SourceMapping",
    "TrainedModel",
    "TrainingError",
    "crosswalk_runs",
    "evaluate_crosswalk",
    "link",
    "load",
    "load_crosswalk",
    "load_frame",
    "markdown_table",
    "normalise_frame",
    "normalise_record",
    "parse_source",
    "read_crosswalk",
    "read_sqlite",
    "score_candidates",
    "sweep",
    "train",
]
