"""``python -m bridge`` is ``incident-bridge``."""

from bridge.cli import main

raise SystemExit(main())
