from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.settings import from_mapping, load

HASH = "a" * 64


def minimal() -> dict[str, Any]:
    return {
        "instance": "ZZ",
        "clients": {"ZZ/GOV/MSP/mis": {"token_sha256": HASH}},
        "subsystems": {"ZZ/GOV/TAX/taxreg": {}},
        "systems": {"tax": {"connector": "rest", "base_url": "http://127.0.0.1:1"}},
        "services": {"ZZ/GOV/TAX/taxreg/taxpayers": {"system": "tax", "type": "rest", "allow": ["ZZ/GOV/MSP/mis"]}},
    }


def test_a_valid_configuration_loads():
    settings = from_mapping(minimal())
    assert settings.server.port == 8080
    assert settings.services["ZZ/GOV/TAX/taxreg/taxpayers"].type == "rest"


def test_field_mistakes_are_named_with_their_setting():
    config = minimal()
    config["clients"]["ZZ/GOV/MSP/mis"] = {"token_sha256": "not-a-hash"}
    with pytest.raises(ConfigError, match=r"clients.ZZ/GOV/MSP/mis.token_sha256: must be 64 hexadecimal characters"):
        from_mapping(config)


def test_every_cross_reference_mistake_is_named_at_once():
    config = minimal()
    config["clients"]["ZZ/GOV/MSP"] = {"token_sha256": HASH}
    config["services"]["ZZ/GOV/TAX/taxreg/other"] = {"system": "nope", "type": "soap", "allow": ["ZZ/GOV/X/y"]}
    config["services"]["ZZ/GOV/CRA/civreg/x"] = {"system": "tax", "type": "rest"}
    with pytest.raises(ConfigError) as caught:
        from_mapping(config, source="node.toml")
    text = str(caught.value)
    assert text.startswith("node.toml has ")
    for expected in [
        "clients.ZZ/GOV/MSP: a subsystem is required: INSTANCE/CLASS/CODE/SUBSYSTEM",
        "services.ZZ/GOV/TAX/taxreg/other: system 'nope' is not defined in [systems]",
        "services.ZZ/GOV/TAX/taxreg/other: a SOAP service needs `operation`",
        "services.ZZ/GOV/TAX/taxreg/other: allowed client ZZ/GOV/X/y is not listed in [clients]",
        "services.ZZ/GOV/CRA/civreg/x: subsystem ZZ/GOV/CRA/civreg is not listed in [subsystems]",
    ]:
        assert expected in text, text


def test_unknown_keys_and_bad_types():
    config = minimal() | {"colour": "blue"}
    config["server"] = {"port": "eighty"}
    with pytest.raises(ConfigError) as caught:
        from_mapping(config)
    assert "colour: Extra inputs are not permitted" in str(caught.value)
    assert "server.port: Input should be a valid integer" in str(caught.value)


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    path = tmp_path / "node.toml"
    path.write_text('instance = "ZZ"\nname = "from file"\n[server]\nport = 1234\n')
    monkeypatch.setenv("KIUNGO_SERVER__PORT", "4321")
    monkeypatch.setenv("KIUNGO_NAME", "from env")
    settings = load(path)
    assert settings.server.port == 4321
    assert settings.name == "from env"


def test_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="no node configuration at"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("instance = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load(bad)
