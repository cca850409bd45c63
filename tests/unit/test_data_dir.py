"""Where the data lives: one per-user data directory whatever the working directory,
overridden by SLUICE_DATA_DIR or --data-dir; which database a command uses, told without
its password."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.cli import main
from sluice.store import db


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("SLUICE_DATA_DIR", "SLUICE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # platformdirs on Linux
    return tmp_path


def test_default_is_the_user_data_dir_from_any_working_directory(
        no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = set()
    for cwd in ("one", "two"):
        (no_config / cwd).mkdir()
        monkeypatch.chdir(no_config / cwd)
        seen.add(db.data_dir())
    assert seen == {(no_config / "xdg" / "sluice").resolve()}
    assert db.embedded_dir() == (no_config / "xdg" / "sluice" / "pg").resolve()
    assert not (no_config / "one" / ".sluice").exists()


def test_sluice_data_dir_overrides(no_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_DATA_DIR", str(no_config / "mine"))
    assert db.data_dir() == (no_config / "mine").resolve()
    assert db.describe_database() == f"embedded PostgreSQL in {(no_config / 'mine' / 'pg')}"


@pytest.mark.parametrize(("argv", "handler"), [
    (["--data-dir", "{d}", "migrate"], "sluice.cli.data.cmd_migrate"),
    (["migrate", "--data-dir", "{d}"], "sluice.cli.data.cmd_migrate"),
    (["connections", "list", "--data-dir", "{d}", "--json"],
     "sluice.cli.admin.cmd_connections_list"),
])
def test_data_dir_option_before_or_after_the_command(
        no_config: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], handler: str
) -> None:
    target = no_config / "opt"
    seen: list[Path] = []
    monkeypatch.setattr(handler, lambda args: seen.append(db.data_dir()) or 0)
    assert main([a.format(d=target) for a in argv]) == 0
    assert seen == [target.resolve()]


def test_external_database_is_named_without_its_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", "postgresql://app:s3cret@db.example:6543/sluice")
    text = db.describe_database()
    assert "s3cret" not in text
    assert text == "postgresql://app@db.example:6543/sluice (SLUICE_DATABASE_URL)"
