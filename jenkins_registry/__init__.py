"""jenkins-registry: publish images built in Jenkins to a private registry, safely."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jenkins-registry")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
