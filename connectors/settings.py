"""Validated settings of the built-in connectors, with one clear message per mistake."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from connectors.errors import ConfigurationError

S = TypeVar("S", bound=BaseModel)


class HttpSettings(BaseModel):
    """What every HTTP-based connector needs: bounded time, bounded pool, bounded answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout: float = Field(10.0, gt=0, le=600, description="seconds for the whole answer")
    connect_timeout: float = Field(3.0, gt=0, le=60, description="seconds to open a connection")
    max_connections: int = Field(20, ge=1, le=1000)
    max_keepalive: int = Field(10, ge=0, le=1000)
    retries: int = Field(2, ge=0, le=5, description="extra tries of idempotent calls on connection failure")
    retry_backoff: float = Field(0.05, ge=0, le=5, description="seconds before the first retry, doubling")
    max_response_bytes: int = Field(10 * 1024 * 1024, ge=1024)


class RestSettings(HttpSettings):
    base_url: str = Field(description="the agency system's base URL, e.g. http://127.0.0.1:8002")
    headers: dict[str, str] = Field(default_factory=dict, description="sent with every call (API keys)")

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")


class SoapSettings(HttpSettings):
    wsdl: str = Field(description="URL or file path of the WSDL, loaded once")
    endpoint: str | None = Field(None, description="overrides the WSDL's soap:address")
    service: str | None = Field(None, description="WSDL service name, when it has several")
    port: str | None = Field(None, description="WSDL port name, when the service has several")
    idempotent_operations: list[str] = Field(
        default_factory=list, description="operations safe to retry on connection failure (reads)"
    )


def parse(model: type[S], name: str, settings: Mapping[str, Any]) -> S:
    """Build settings, turning pydantic's report into a ConfigurationError naming the system."""
    try:
        return model.model_validate(dict(settings))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}", system=name) from None
