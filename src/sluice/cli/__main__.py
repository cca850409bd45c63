"""`python -m sluice.cli`."""

from sluice.cli import main

raise SystemExit(main())
