"""Where the suite finds npm-groovy-lint (the Groovy parser) and the Groovy runtime it ships: on PATH,
else in the prefix scripts/bootstrap.sh installs it into ($JR_NPM_PREFIX, or .cache/npm)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
INSTALL = ("install it with `npm install -g --prefix .cache/npm npm-groovy-lint@15` (it runs on "
           "Node 20 and Java 17: `apt-get install nodejs npm openjdk-17-jre-headless`); "
           "scripts/bootstrap.sh installs all of them")


def find_linter() -> str | None:
    """npm-groovy-lint on PATH, else in the prefix scripts/bootstrap.sh installs it into."""
    found = shutil.which("npm-groovy-lint")
    if found is not None:
        return found
    for prefix in (os.environ.get("JR_NPM_PREFIX"), str(ROOT / ".cache" / "npm")):
        candidate = Path(prefix or "", "bin", "npm-groovy-lint")
        if prefix and os.access(candidate, os.X_OK):
            return str(candidate)
    return None
