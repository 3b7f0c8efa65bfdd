"""The virtual social registry, hosted on the ministry's gateway: a federated view of a person, and
eligibility decided on the fly from rules declared as data, with reasons and provenance."""

from gateway.vsr.app import create_vsr_app
from gateway.vsr.eligibility import Decision, Programme, RuleBook, evaluate
from gateway.vsr.errors import IdentityError, JobError, QueryError, RulesError, SourceFailed, VsrError
from gateway.vsr.facts import CATALOGUE, Fact, Facts, Provenance
from gateway.vsr.registry import VirtualRegistry
from gateway.vsr.service import VsrService, check_settings
from gateway.xroadclient import CallContext, XRoadClient

__all__ = [
    "CATALOGUE",
    "CallContext",
    "Decision",
    "Fact",
    "Facts",
    "IdentityError",
    "JobError",
    "Programme",
    "Provenance",
    "QueryError",
    "RuleBook",
    "RulesError",
    "SourceFailed",
    "VirtualRegistry",
    "VsrError",
    "VsrService",
    "XRoadClient",
    "check_settings",
    "create_vsr_app",
    "evaluate",
]
