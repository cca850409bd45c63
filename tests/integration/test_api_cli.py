"""`sluice connections | keys` (in-process): ids and keys printed once, hashes stored."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

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
    assert [k["scopes"] for k in listed_keys] == [["ingest", "read"], ["read"]]
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


def test_connections_create_prints_a_block_to_paste(
        fresh_db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    monkeypatch.delenv("SLUICE_ENDPOINT", raising=False)
    code = cli_main(["connections", "create", "dev", "--endpoint", "http://sluice.internal:8000/"])
    captured = capsys.readouterr()
    assert code == 0
    assert "shown only this once" in captured.err and "sluice: database:" in captured.err

    # pasted into a shell as printed, it sets what the SDK and the agent read
    script = tmp_path / "paste.sh"
    script.write_text(captured.out + 'printf "%s\\n" "$SLUICE_API_KEY" "$SLUICE_CONNECTION_ID" '
                      '"$SLUICE_ENDPOINT"\n')
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True,
                          env={"PATH": os.environ["PATH"]})
    api_key, cid, endpoint = done.stdout.split()
    assert api_key.startswith("sk_live_") and len(cid) == 36
    assert endpoint == "http://sluice.internal:8000"
    assert f"# Dashboard: http://sluice.internal:8000/#key={api_key}" in captured.out

    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        record = keys.lookup(conn, api_key)
    assert record is not None and str(record.connection_id) == cid
    assert record.scopes == ("ingest", "read")  # not admin unless asked


@pytest.mark.parametrize(("flags", "scopes"), [
    ((), ("ingest", "read")),
    (("--admin",), tuple(SCOPES)),
    (("--scope", "operate", "--scope", "read"), ("operate", "read")),
])
def test_first_key_scopes(fresh_db_url: str, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str], flags: tuple[str, ...],
                          scopes: tuple[str, ...]) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    code, out = run(capsys, "connections", "create", "app", "--json", *flags)
    assert code == 0
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        record = keys.lookup(conn, json.loads(out)["api_key"])
    assert record is not None and sorted(record.scopes) == sorted(scopes)


def test_a_duplicate_name_is_refused_clearly(
        fresh_db_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLUICE_DATABASE_URL", fresh_db_url)
    code, out = run(capsys, "connections", "create", "myapp", "--json")
    assert code == 0
    cid = json.loads(out)["connection_id"]
    assert cli_main(["connections", "create", "myapp"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"a connection named 'myapp' exists already (id {cid})" in captured.err
    assert f"sluice keys create --connection {cid}" in captured.err
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        rows = conn.execute("SELECT name, (SELECT count(*) FROM api_keys) FROM connections"
                            ).fetchall()
    assert rows == [("myapp", 1)]  # nothing half-made
