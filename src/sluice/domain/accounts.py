"""What a connection's keys may do, and how long its events are kept unless told otherwise.

Here, not in the store, so the CLI's parser can offer them without a database driver.
"""

from __future__ import annotations

from typing import Final

SCOPES: Final = ("ingest", "read", "operate", "admin")
ADMIN: Final = "admin"  # implies every other scope
DEFAULT_RETENTION_HOURS: Final = 168
