"""The entry of the single-file jr-push (`dist/jr-push.pyz`, built by scripts/build-zipapp.sh).

`python3 jr-push.pyz [OPTIONS]` is `jr-push [OPTIONS]`; `python3 jr-push.pyz jr COMMAND …` is
`jr COMMAND …` (jr-push takes no positional argument, so the word `jr` cannot be one of its own).
Installed under the name `jr` (a link to the archive, run through its `#!` line) it is `jr`.
The archive's `__main__.py` checks the Python version before it imports this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

JR = "jr"


def main(argv: Sequence[str] | None = None, program: str | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name = os.path.basename(sys.argv[0] if program is None else program)
    if name == JR or args[:1] == [JR]:
        from jenkins_registry.cli.main import main as jr

        return jr(args[1:] if name != JR else args)
    from jenkins_registry.cli.push import main as jr_push

    return jr_push(args)


if __name__ == "__main__":
    raise SystemExit(main())
