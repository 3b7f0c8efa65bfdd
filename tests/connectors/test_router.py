from pathlib import Path

import pytest

from connectors import ConfigurationError, InvalidRequestError, RestConnector, Router, ServiceRequest


def test_unknown_connector_kind_lists_the_installed_ones():
    with pytest.raises(ConfigurationError, match=r"unknown connector kind 'ftp' \(installed: .*rest.*soap"):
        Router.from_mapping({"systems": {"x": {"connector": "ftp"}}})


def test_system_without_kind():
    with pytest.raises(ConfigurationError, match="system 'x' needs a `connector` kind"):
        Router.from_mapping({"systems": {"x": {"base_url": "http://127.0.0.1:1"}}})


def test_invalid_settings_name_the_system_and_the_field():
    with pytest.raises(ConfigurationError, match=r"tax: invalid settings: base_url: Value error, must start with http"):
        Router.from_mapping({"systems": {"tax": {"connector": "rest", "base_url": "ftp://x"}}})
    with pytest.raises(ConfigurationError, match=r"tax: invalid settings: timeout: Input should be greater than 0"):
        Router.from_mapping({"systems": {"tax": {"connector": "rest", "base_url": "http://x", "timeout": 0}}})
    with pytest.raises(ConfigurationError, match=r"tax: invalid settings: colour: Extra inputs are not permitted"):
        Router.from_mapping({"systems": {"tax": {"connector": "rest", "base_url": "http://x", "colour": 1}}})


def test_service_routes_are_checked():
    systems = {"tax": {"connector": "rest", "base_url": "http://127.0.0.1:1"}}
    with pytest.raises(ConfigurationError, match="service 'getX' names unknown system 'nope'"):
        Router.from_mapping({"systems": systems, "services": {"getX": {"system": "nope", "operation": "/x"}}})
    with pytest.raises(ConfigurationError, match="service 'getX' needs `operation`"):
        Router.from_mapping({"systems": systems, "services": {"getX": {"system": "tax"}}})
    with pytest.raises(ConfigurationError, match=r"service 'getX': unknown key\(s\) verb"):
        Router.from_mapping({"systems": systems, "services": {"getX": {"system": "tax", "operation": "/", "verb": 1}}})
    with pytest.raises(ConfigurationError, match="unsupported method 'FETCH'"):
        Router.from_mapping(
            {"systems": systems, "services": {"getX": {"system": "tax", "operation": "/", "method": "fetch"}}}
        )


def test_config_file_errors(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="no connector configuration at"):
        Router.from_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[systems\n")
    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        Router.from_file(bad)


@pytest.mark.anyio
async def test_unknown_service_code():
    router = Router.from_mapping({})
    with pytest.raises(ConfigurationError, match="unknown service 'getNothing'"):
        await router.call("getNothing")


@pytest.mark.anyio
async def test_missing_path_parameter_is_refused_before_anything_is_sent():
    # port 9 (discard) on loopback: nothing is listening, and nothing must be tried
    async with RestConnector.from_config("tax", {"base_url": "http://127.0.0.1:9"}) as conn:
        with pytest.raises(InvalidRequestError, match=r"tax: /v1/taxpayers/\{tin\}: missing parameter\(s\) tin"):
            await conn.call(ServiceRequest(operation="/v1/taxpayers/{tin}"))
