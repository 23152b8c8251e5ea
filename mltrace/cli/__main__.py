"""``python -m mltrace.cli`` runs the ``mltrace`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
