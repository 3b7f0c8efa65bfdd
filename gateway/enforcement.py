"""The node's policy enforcement: agreements decide every exchange it provides, consent where it is the basis.

Default deny: with agreements configured, only an agreement that covers this client, service, purpose
(and REST method and path) and is in force lets an exchange through, within its rate limit; where its
lawful basis is consent, the data subject's active consent must cover the recipient, purpose and the
agreement's data categories. Without agreements (a development node), the services' allow lists apply.
"""

from __future__ import annotations

from pathlib import Path

import policies
from consent import ConsentStore
from gateway import errors
from gateway.catalog import LocalService
from gateway.errors import ConfigError, GatewayError
from gateway.exchange import Exchange
from gateway.identifiers import ClientId, ServiceId
from gateway.ratelimit import MemoryRateLimiter, RateLimiter


def denied(reason: str, message: str) -> GatewayError:
    """An AccessDenied whose message starts with the reason code, as clients and DPOs read it."""
    return GatewayError(errors.ACCESS_DENIED, f"{reason}: {message}")


def load_decision_point(agreement_paths: list[Path], forbid_paths: list[Path]) -> policies.PolicyDecisionPoint:
    """The node's agreements (and cross-cutting forbid rules), compiled once at start."""
    try:
        agreements = policies.load_agreements(agreement_paths)
        forbid = [p.read_text() for p in forbid_paths]
        return policies.PolicyDecisionPoint(agreements, forbid=forbid)
    except (policies.PolicyError, OSError) as exc:
        raise ConfigError(f"policy: {exc}") from None


class Enforcement:
    def __init__(
        self,
        pdp: policies.PolicyDecisionPoint | None,
        consent: ConsentStore | None,
        *,
        controller: str | None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.pdp = pdp
        self.consent = consent
        self.controller = controller
        self.limiter = limiter or MemoryRateLimiter()

    def may_call(self, client: ClientId, service: ServiceId, local: LocalService) -> bool:
        """For allowedMethods: some agreement (or the allow list) admits this client to this service."""
        if self.pdp is None:
            return local.allows(client)
        return bool(self.pdp.agreements_for(client=str(client), service=str(service)))

    def decide(
        self, ex: Exchange, service: LocalService, method: str | None, path: str | None
    ) -> policies.Decision | None:
        """The agreement that lets this exchange through, or the refusal with its reason code."""
        assert ex.client is not None
        assert ex.service is not None
        if self.pdp is None:
            if not service.allows(ex.client):
                raise denied("no_agreement", f"client {ex.client} may not call {ex.service}")
            return None
        decision = self.pdp.decide(
            policies.DecisionRequest(
                client=str(ex.client), service=str(ex.service), purpose=ex.purpose or "", method=method, path=path
            )
        )
        ex.agreement_id = decision.agreement_id
        ex.agreement_version = decision.agreement_version
        ex.decision = decision.reason
        ex.lawful_basis = decision.lawful_basis
        ex.cache_seconds = decision.cache_seconds
        if not decision.allowed:
            raise denied(decision.reason, decision.message)
        limit = decision.rate_limit
        if limit is not None and not self.limiter.allow(
            f"{decision.agreement_id}|{ex.client}", limit.count, limit.per_seconds
        ):
            ex.decision = "rate_limited"
            raise denied(
                "rate_limited",
                f"agreement {decision.agreement_id} allows {limit.count} exchanges per {limit.per_seconds} s "
                f"for {ex.client}; try again later",
            )
        return decision

    def check_consent(self, ex: Exchange, decision: policies.Decision | None, subject: str | None) -> None:
        """Where the agreement's lawful basis is consent: an active consent of this subject that covers it."""
        if decision is None or decision.lawful_basis != "consent":
            return
        if self.consent is None:
            raise denied("consent_missing", "this gateway keeps no consent registry, so consent cannot be established")
        if subject is None:
            raise denied("consent_missing", "the exchange names no data subject, so consent cannot be established")
        assert ex.client is not None
        check = self.consent.check(
            subject_id=subject,
            recipient=str(ex.client),
            purpose=ex.purpose or "",
            data_categories=decision.data_categories,
            reference=ex.consent_reference,
            controller=self.controller,
        )
        ex.consent_record = check.record_id
        if not check.allowed:
            ex.decision = check.reason
            raise denied(check.reason, check.message)
