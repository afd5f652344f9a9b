"""jenkins-registry: publish images built in Jenkins to a private registry, safely."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Resolved on first use: importlib.metadata costs ~40 ms, a third of jr-push's start-up budget.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("jenkins-registry")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0.0.0+unknown"
    raise AttributeError(f"module 'jenkins_registry' has no attribute {name!r}")
