"""The packages a command may find missing, and the one error that names them.

The full install has every dependency. The single-file jr-push (`dist/jr-push.pyz`, built by
scripts/build-zipapp.sh) holds only what a push needs: docker and requests with their pure-Python
dependencies. python-jenkins, jinja2 and keyring stay out (keyring's backends pull in compiled
code, which a zipapp cannot import). A command that needs one of them asks `require` before it
starts, so it fails with what to install instead of a ModuleNotFoundError that reads like a bug.

Only a top-level package that cannot be found at all counts as missing: nothing here catches an
ImportError, so a broken module inside this package still surfaces as the bug it is.
"""

from __future__ import annotations

import sys
import zipimport
from collections.abc import Iterable

from jenkins_registry.errors import MissingPackageError

# Importable name → the distribution that provides it (what pip installs).
DISTRIBUTIONS: dict[str, str] = {
    "jenkins": "python-jenkins",
    "jinja2": "jinja2",
    "keyring": "keyring",
}

FULL_INSTALL = "pipx install jenkins-registry (or pip install jenkins-registry)"


def is_installed(module: str) -> bool:
    """Whether the top-level *module* can be imported, found without importing it."""
    import importlib.util  # here: `jr-push --help` never needs it

    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules without a spec (a stand-in set up by a test): present
        return True


def running_from_zipapp() -> bool:
    """True when this package is imported from the single-file jr-push (a zip archive)."""
    return isinstance(__spec__.loader, zipimport.zipimporter)


def _and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def missing_package_error(modules: Iterable[str], needed_by: str) -> MissingPackageError:
    """The error for *needed_by* (a command, or what a library call does) lacking *modules*."""
    names = [DISTRIBUTIONS.get(module, module) for module in modules]
    what = f"{needed_by} needs the package{'s' if len(names) > 1 else ''} {_and_list(names)}"
    if running_from_zipapp():
        return MissingPackageError(
            f"{what}, which the single-file jr-push does not hold.",
            hint=f"Install the full tool on this machine: {FULL_INSTALL}.",
        )
    return MissingPackageError(
        f"{what}, which is not installed for {sys.executable}.",
        hint="Reinstall the tool with its dependencies: pipx install --force jenkins-registry, "
        f"or {sys.executable} -m pip install jenkins-registry.",
    )


def require(modules: Iterable[str], needed_by: str) -> None:
    """Raise MissingPackageError naming every one of *modules* that is not installed."""
    absent = [module for module in modules if not is_installed(module)]
    if absent:
        raise missing_package_error(absent, needed_by)
