"""`sluice connections | keys` (in-process): ids and keys printed once, hashes stored."""

from __future__ import annotations

import json

import psycopg
import pytest

from sluice.cli import main as cli_main
from sluice.domain.accounts import SCOPES
from sluice.store import keys


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli_main(list(argv))
    return code, capsys.readouterr().out


def test_connections_and_keys(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    code, out = run(capsys, "connections", "create", "prod", "--json", "--daily-limit", "10000",
                    "--retention-hours", "48")
    assert code == 0
    created = json.loads(out)
    assert set(created) == {"connection_id", "api_key"}
    cid, first_key = created["connection_id"], created["api_key"]
    assert first_key.startswith("sk_live_") and len(first_key) >= 8 + 43

    code, out = run(capsys, "connections", "list", "--json")
    [listed] = json.loads(out)
    assert (listed["id"], listed["daily_limit"], listed["retention_hours"],
            listed["active_keys"]) == (cid, 10000, 48, 1)
    assert run(capsys, "connections", "set", cid, "--daily-limit", "none")[0] == 0
    assert json.loads(run(capsys, "connections", "list", "--json")[1])[0]["daily_limit"] is None

    code, out = run(capsys, "keys", "create", "--connection", cid, "--scope", "read", "--json")
    reader = json.loads(out)
    assert reader["scopes"] == ["read"]
    code, out = run(capsys, "keys", "list", "--connection", cid, "--json")
    listed_keys = json.loads(out)
    assert [k["scopes"] for k in listed_keys] == [list(SCOPES), ["read"]]
    assert first_key not in out and reader["api_key"] not in out  # prefixes only
    assert all(reader["api_key"].startswith(k["prefix"]) or first_key.startswith(k["prefix"])
               for k in listed_keys)

    # only hashes are stored
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        dump = conn.execute("SELECT string_agg(api_keys::text, ' ') FROM api_keys").fetchone()
        assert dump and first_key not in dump[0]
        record = keys.lookup(conn, reader["api_key"])
        assert record and record.scopes == ("read",) and not record.revoked

    assert run(capsys, "keys", "revoke", reader["key_id"])[0] == 0
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        record = keys.lookup(conn, reader["api_key"])
        assert record and record.revoked
    text = run(capsys, "keys", "list", "--connection", cid)[1]
    assert "revoked" in text and "active" in text

    # errors: unknown ids, bad scopes
    assert cli_main(["keys", "revoke", "key_nope"]) == 2
    assert cli_main(["keys", "list", "--connection", "not-a-uuid"]) == 2
    with pytest.raises(SystemExit):
        cli_main(["keys", "create", "--connection", cid, "--scope", "root"])


def test_connections_create_plain_output(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    code, out = run(capsys, "connections", "create", "dev")
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert lines["api_key"].strip().startswith("sk_live_")
    assert len(lines["connection_id"].strip()) == 36
