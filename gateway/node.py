"""A gateway node: its settings made into the parts that serve exchanges, and their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

import certs
from connectors import ConnectorError, RestConnector, RestSettings, build_connectors
from consent import ConsentError, ConsentStore, ReceiptSigner
from gateway import migrations
from gateway.cache import AnswerCache
from gateway.catalog import Catalog
from gateway.database import make_engine
from gateway.endpoints import EndpointCache
from gateway.enforcement import Enforcement, load_decision_point
from gateway.errors import ConfigError
from gateway.events import EventsError, EventService, create_events_app
from gateway.exchange import Exchange, Pipeline
from gateway.exchangelog import ExchangeLog, LogError
from gateway.federation import Federation
from gateway.metaservices import Metaservices
from gateway.metrics import NodeMetrics
from gateway.monitoring import OperationalMonitor
from gateway.settings import NodeSettings
from gateway.sharedstate import open_state
from gateway.subjects import node_secret
from gateway.vsr import VsrError, VsrService, create_vsr_app

#: Seconds the last signed tree head may take at shutdown before the node stops without it.
SHUTDOWN_SIGNING_SECONDS = 10


class Loopback:
    """The node's own app, as an ASGI app that exists before it does (set once the app is made)."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("the gateway app is not attached yet")
        await self.app(scope, receive, send)


class Node:
    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        try:
            migrations.check_node(settings)  # before any store opens: refuse an unmigrated database
        except migrations.MigrationError as exc:
            raise ConfigError(str(exc)) from None
        self.databases = {db.store.name: db.url for db in migrations.node_databases(settings)}
        self.catalog = Catalog(settings)
        try:
            self.connectors = build_connectors(settings.systems)
        except ConnectorError as exc:
            raise ConfigError(f"systems: {exc}") from None
        self.loopback = Loopback()
        self.vsr: VsrService | None = self._host_vsr(settings) if settings.vsr is not None else None
        self.events: EventService | None = self._host_events(settings) if settings.events is not None else None
        try:
            self.secret = node_secret(settings.subject_secret_file or settings.data_dir / "subject.secret")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"subject_secret_file: {exc}") from None
        self.monitor = OperationalMonitor(self.databases["monitoring"])
        self.metrics = NodeMetrics()
        self.metrics.monitoring_dropped.set_function(lambda: float(self.monitor.dropped))
        self.state = open_state(settings.state)
        self.state.breakers.on_open = lambda name: self.metrics.circuits_opened.labels(name).inc()
        self.federation = (
            Federation(settings.federation, nonces=self.state.nonces, breakers=self.state.breakers)
            if settings.federation is not None
            else None
        )
        self.log = self._open_log(settings)
        self.endpoints = EndpointCache()
        self.consent: ConsentStore | None = None
        self.receipts: ReceiptSigner | None = None
        pdp = None
        controller = settings.federation.member if settings.federation else None
        if settings.policy is not None:
            pdp = load_decision_point(settings.policy.agreements, settings.policy.forbid)
            self.consent, self.receipts, controller = self._consent_registry(settings, controller)
        self.enforcement = Enforcement(pdp, self.consent, controller=controller, limiter=self.state.limiter)
        self.meta = Metaservices(self.catalog, self.connectors, self.endpoints, self.enforcement.may_call)
        self.pipeline = Pipeline(
            self.catalog,
            self.connectors,
            self.monitor,
            self.metrics,
            settings.server.provider_timeout,
            self.log,
            self.state.breakers,
            AnswerCache(self.state.answers, self.secret),
        )
        self._signing: asyncio.Task[None] | None = None

    def _host_vsr(self, settings: NodeSettings) -> VsrService:
        """The virtual registry in this process: reached by the gateway as its system, reaching the gateway back."""
        assert settings.vsr is not None
        try:
            vsr = VsrService(
                settings.vsr, settings.data_dir, httpx.ASGITransport(app=self.loopback), jobs_url=self.databases["jobs"]
            )
        except VsrError as exc:
            raise ConfigError(f"vsr: {exc}") from None
        self._attach(settings.vsr.system, create_vsr_app(vsr))
        return vsr

    def _host_events(self, settings: NodeSettings) -> EventService:
        """The civil registry's event service in this process, hosted like the virtual registry."""
        assert settings.events is not None
        try:
            events = EventService(
                settings.events, settings.data_dir, httpx.ASGITransport(app=self.loopback), url=self.databases["events"]
            )
        except EventsError as exc:
            raise ConfigError(f"events: {exc}") from None
        self._attach(settings.events.system, create_events_app(events))
        return events

    def _attach(self, system: str, app: ASGIApp) -> None:
        """A service hosted in this process, reached by the gateway as the system `system` (no socket)."""
        self.connectors[system] = RestConnector(
            system,
            RestSettings(base_url=f"http://{system}.local", timeout=self.settings.server.provider_timeout, retries=0),
            # a hosted service's own failure comes back as its 500 answer, like any system's, not as an
            # exception inside the gateway's exchange
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        )

    def _open_log(self, settings: NodeSettings) -> ExchangeLog:
        url = self.databases["log"]
        fed = self.federation
        name = fed.member if fed else settings.name
        try:
            return ExchangeLog.open(
                url,
                node=name,
                signer=fed.sign_key if fed else None,
                signer_cert_pem=fed.sign_cert_pem if fed else None,
                tsa_url=settings.log.tsa_url,
                keep_bodies_key=settings.log.bodies_key_file.read_bytes() if settings.log.bodies_key_file else None,
            )
        except (LogError, OSError) as exc:
            raise ConfigError(f"log: {exc}") from None

    async def _sign_tree_heads(self) -> None:
        """Sign (and time-stamp) the log's tree head on a schedule, so tampering has a horizon."""
        while True:
            await asyncio.sleep(self.settings.log.sign_interval_seconds)
            try:
                await asyncio.to_thread(self.log.sign_tree_head)
            except LogError:
                self.metrics.log_failures.inc()

    def _consent_registry(
        self, settings: NodeSettings, controller: str | None
    ) -> tuple[ConsentStore, ReceiptSigner | None, str | None]:
        config = settings.consent
        fed = settings.federation
        controller = (config.controller if config else None) or controller
        self._consent_engine = make_engine(self.databases["consent"])
        try:
            store = ConsentStore(self._consent_engine, self.secret)
        except ConsentError as exc:
            raise ConfigError(f"consent: {exc}") from None
        key_path = (config.receipt_key if config else None) or (fed.sign_key if fed else None)
        if key_path is None or controller is None:
            return store, None, controller
        passphrase_file = (config.passphrase_file if config else None) or (fed.passphrase_file if fed else None)
        try:
            key = certs.load_private_key(key_path, certs.passphrase_from(file=passphrase_file))
        except certs.CertsError as exc:
            raise ConfigError(f"consent.receipt_key: {exc}") from None
        return store, ReceiptSigner(key, controller), controller

    def _last_head(self) -> None:
        if self.log.size() > 0:
            self.log.sign_tree_head()

    def mark_subjects(self, ex: Exchange, subjects: list[str]) -> None:
        """Whose data the exchange concerns, as keyed hashes: the first, and all of them for a batch."""
        hashes = [self.subject_hash(s) for s in subjects]
        ex.subject_hash = hashes[0] if hashes else None
        ex.subject_hashes = hashes if len(hashes) > 1 else None

    def subject_hash(self, subject_id: str) -> str:
        """The keyed hash by which logs find one person's exchanges without holding her identifier."""
        return hmac.new(self.secret, subject_id.strip().upper().encode(), hashlib.sha256).hexdigest()

    def start(self) -> None:
        if self.federation is not None:
            self.federation.start()
        if self.vsr is not None:
            self.vsr.start()
        if self.events is not None:
            self.events.start()
        if self.log.signer is not None:
            self._signing = asyncio.get_running_loop().create_task(self._sign_tree_heads(), name="log-signing")

    async def aclose(self) -> None:
        if self.vsr is not None:
            await self.vsr.aclose()
        if self.events is not None:
            await self.events.aclose()
        if self._signing is not None:
            self._signing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._signing
        if self.log.signer is not None:
            # a last head covering everything this process logged; signed only, since at shutdown the
            # time-stamp authority may be going away too (the next scheduled head is stamped again);
            # bounded, so that a database that stopped answering cannot hold the shutdown
            self.log.tsa_url = None
            with contextlib.suppress(LogError, TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(self._last_head), SHUTDOWN_SIGNING_SECONDS)
        self.log.close()
        if self.federation is not None:
            await self.federation.aclose()
        for connector in self.connectors.values():
            await connector.aclose()
        if self.consent is not None:
            self.consent.close()
            self._consent_engine.dispose()
        self.monitor.close()
        self.state.close()
