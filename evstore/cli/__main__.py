from __future__ import annotations

from evstore.cli.app import main

main()
