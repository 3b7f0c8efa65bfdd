"""A node refuses to start on an unmigrated database; `kiungo db upgrade` and `status` put it right."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.errors import ConfigError
from gateway.migrations import node_databases
from gateway.migrations.cli import app as db_app
from gateway.settings import from_mapping
from sandbox import federation
from sandbox.servers import SandboxServers


@pytest.fixture
def config_file(sandbox: SandboxServers, tmp_path: Path) -> Path:
    config, _ = federation.gateway_config(sandbox.manifest["systems"], tmp_path / "data")
    path = tmp_path / "node.toml"
    path.write_text(tomli_w.dumps(config))
    return path


def test_a_node_refuses_an_unmigrated_database_and_says_what_to_run(config_file: Path) -> None:
    import tomllib

    settings = from_mapping(tomllib.loads(config_file.read_text()))
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    message = str(refused.value)
    assert message.startswith("the node's databases are not migrated:")
    assert "exchange log (log) in sqlite:///" in message
    assert "at no schema, needs log_0001" in message
    assert "run `kiungo db upgrade -c NODE.toml`" in message
    with sqlite3.connect(settings.data_dir / "log.sqlite") as conn:  # looked at, nothing created
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []


def test_db_upgrade_then_status_then_the_node_starts(config_file: Path) -> None:
    runner = CliRunner()
    behind = runner.invoke(db_app, ["status", "-c", str(config_file)])
    assert behind.exit_code == 1
    assert "behind: exchange log (log)" in behind.output
    done = runner.invoke(db_app, ["upgrade", "-c", str(config_file)])
    assert done.exit_code == 0, done.output
    assert "ok: exchange log (log)" in done.output
    again = runner.invoke(db_app, ["upgrade", "-c", str(config_file)])  # repeating is harmless
    assert again.exit_code == 0
    current = runner.invoke(db_app, ["status", "-c", str(config_file)])
    assert current.exit_code == 0, current.output
    import tomllib

    settings = from_mapping(tomllib.loads(config_file.read_text()))
    assert {db.store.name for db in node_databases(settings)} >= {"log", "consent", "monitoring"}
    create_app(settings)  # no error: every database is current


def test_db_upgrade_of_one_store_and_its_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    done = runner.invoke(db_app, ["upgrade", "--store", "jobs", "--url", url])
    assert done.exit_code == 0, done.output
    assert "ok: virtual registry bulk jobs (jobs)" in done.output
    unknown = runner.invoke(db_app, ["upgrade", "--store", "nosuch", "--url", url])
    assert unknown.exit_code == 2
    assert "no store 'nosuch'; the stores are: log, consent" in unknown.output
    neither = runner.invoke(db_app, ["upgrade"])
    assert neither.exit_code == 2
    assert "give --config NODE.toml, or --store NAME with --url URL" in neither.output
    secret = runner.invoke(db_app, ["status", "--store", "log", "--url", "postgresql://kiungo:hunter2@127.0.0.1:1/x"])
    assert secret.exit_code == 2
    assert "hunter2" not in secret.output
    assert "***" in secret.output
