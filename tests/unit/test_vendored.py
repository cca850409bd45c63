"""Vendored files are what VENDORED.md says: each listed with its digest, each digest right,
and nothing in vendor/ unlisted."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[2] / "src" / "sluice" / "dashboard" / "static" / "vendor"


def test_vendored_files_match_their_record() -> None:
    record = (VENDOR / "VENDORED.md").read_text()
    listed: dict[Path, str] = {}
    for section in re.split(r"^## ", record, flags=re.MULTILINE)[1:]:
        folder = re.search(r"\(`([^`/]+)/`\)", section.splitlines()[0])
        assert folder, section.splitlines()[0]
        for name, digest in re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", section,
                                       re.MULTILINE):
            listed[VENDOR / folder.group(1) / name] = digest
    present = {p for p in VENDOR.rglob("*") if p.is_file() and p.name != "VENDORED.md"}
    assert present == set(listed), sorted(map(str, present ^ set(listed)))
    for path, digest in listed.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
    assert any(p.name == "LICENSE" for p in listed)
