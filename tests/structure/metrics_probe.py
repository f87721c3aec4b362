"""`PROBE_PACKAGE=<package> python -m tests.structure.metrics_probe`: import a package, print its metrics.

Run in a fresh interpreter, so what a test process happened to import never decides
which metrics a service's registry holds.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

from prometheus_client import REGISTRY, generate_latest


def main(package_name: str) -> None:
    package = importlib.import_module(package_name)
    for module in pkgutil.walk_packages(package.__path__, package_name + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    sys.stdout.write(generate_latest(REGISTRY).decode())


if __name__ == "__main__":
    main(os.environ["PROBE_PACKAGE"])
