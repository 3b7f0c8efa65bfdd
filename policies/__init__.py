"""Data-sharing agreements, the policy decision point (Cedar) and field minimisation (see docs/agreements.md).

Nothing here imports the gateway or the other domain packages: requests and answers cross the border as
plain strings, dataclasses and JSON/XML values.
"""

from policies.agreements import Agreement, RateLimit, ServiceGrant, load_agreement, load_agreements
from policies.check import check_agreements
from policies.errors import AgreementError, PolicyError
from policies.minimise import minimise_json, minimise_xml
from policies.pdp import Decision, DecisionRequest, PolicyDecisionPoint

__all__ = [
    "Agreement",
    "AgreementError",
    "Decision",
    "DecisionRequest",
    "PolicyDecisionPoint",
    "PolicyError",
    "RateLimit",
    "ServiceGrant",
    "check_agreements",
    "load_agreement",
    "load_agreements",
    "minimise_json",
    "minimise_xml",
]
