"""The program tests/compat/run.sh traces with every bundled script.

It has packages (a parent imported inside its child, a package importing its
own submodule), an import cycle, failing imports (a missing package, a missing
submodule, a body that raises, imported twice) and threads importing
concurrently. It writes nothing on stderr and ends with one line on stdout,
so the runner can tell the program ran to its end.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import json  # noqa: E402  (a stdlib package with submodules)

try:
    import nonexistent_mod.sub  # noqa: F401  (missing package)
except ImportError:
    pass
try:
    import json.nope  # noqa: F401  (missing submodule)
except ImportError:
    pass

import pkg.a  # noqa: E402,F401  (pkg.a and pkg.b import each other)

for _ in range(2):
    try:
        import pkg.broken  # noqa: F401  (raises, so it is imported afresh each time)
    except RuntimeError:
        pass

from pkg.sub import leaf  # noqa: E402,F401


def work(n):
    """Imports one worker module (each imports stdlib modules of its own)."""
    __import__(f"pkg.workers.w{n}")


threads = [threading.Thread(target=work, args=(n,), name=f"worker-{n}") for n in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()

loaded = [m for m in sys.modules if m.startswith("pkg.workers.w")]
print(f"compat-app: done, {len(loaded)} worker modules, json {json.dumps([1])}")
