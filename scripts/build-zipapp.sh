#!/usr/bin/env bash
# Build the single-file jr-push: dist/jr-push.pyz, a zip application (stdlib `zipapp`) that runs
# with the agent's python3 (the minimum is setup.cfg's python_requires) and installs nothing.
#
#   bash scripts/build-zipapp.sh [--output PATH]     (or JR_ZIPAPP_OUTPUT=PATH)
#
# It holds this checkout's jenkins_registry package (without the templates) and the push's
# dependencies as pure-Python wheels: docker, requests, urllib3, idna, certifi, charset-normalizer,
# at the versions installed for $PYTHON (default: .venv/bin/python, else python3), so the archive
# holds what the tests ran with. A zipapp cannot import a compiled extension from inside itself:
# pip is asked for `py3-none-any` wheels only, and the build fails if any .so slips in.
# python-jenkins, jinja2 and keyring are left out; `jr jenkins`, `jr render`, `jr login` say so.
#
# pip finds the wheels through its usual configuration (PIP_INDEX_URL, PIP_FIND_LINKS, …). With
# JR_ZIPAPP_WHEELS=DIR the wheels are kept in DIR, fetched only when missing: later builds are
# offline. Idempotent: the same checkout and pins give the same bytes (sorted entries, fixed
# timestamps: SOURCE_DATE_EPOCH, else 2000-01-01). Nothing is written but the output file (and
# JR_ZIPAPP_WHEELS), and a temporary directory, removed on exit.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
output="${JR_ZIPAPP_OUTPUT:-$root/dist/jr-push.pyz}"
while [ $# -gt 0 ]; do
    case "$1" in
        --output) output="${2:?--output needs a path}"; shift 2 ;;
        --output=*) output="${1#--output=}"; shift ;;
        -h|--help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-zipapp.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$root/.venv/bin/python" ]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi

# The distributions of the push: docker and requests, and what they require on Linux.
dists="docker requests urllib3 idna certifi charset-normalizer"

stage="$(mktemp -d "${TMPDIR:-/tmp}/jr-zipapp.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

pins="$("$PYTHON" - $dists <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

pins = []
for name in sys.argv[1:]:
    try:
        pins.append(f"{name}=={version(name)}")
    except PackageNotFoundError:
        sys.exit(f"build-zipapp.sh: {name} is not installed for {sys.executable}; run the build with "
                 "the project's environment (PYTHON=.venv/bin/python, after scripts/bootstrap.sh)")
print(" ".join(pins))
EOF
)"
minimum="$("$PYTHON" - "$root/setup.cfg" <<'EOF'
import configparser
import re
import sys

config = configparser.ConfigParser()
config.read(sys.argv[1])
match = re.fullmatch(r">=\s*(\d+)\.(\d+)", config["options"]["python_requires"].strip())
if not match:
    sys.exit("build-zipapp.sh: setup.cfg's python_requires is not of the form >=X.Y")
print(f"{match[1]}.{match[2]}")
EOF
)"

echo "build-zipapp.sh: pure-Python wheels for Python $minimum: $pins" >&2
pure=(--only-binary :all: --platform any --implementation py --abi none --python-version "$minimum")
install() {
    # shellcheck disable=SC2086  # $pins is a list of words
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile --target "$stage/app" \
        "${pure[@]}" "$@" $pins
}
wheels="${JR_ZIPAPP_WHEELS:-}"
if [ -z "$wheels" ]; then
    install
elif ! install --no-index --find-links "$wheels" 2>/dev/null; then
    rm -rf "$stage/app"
    mkdir -p "$wheels"
    # shellcheck disable=SC2086
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --dest "$wheels" \
        "${pure[@]}" $pins
    install --no-index --find-links "$wheels"
fi

mkdir -p "$(dirname "$output")"
TZ=UTC "$PYTHON" - "$root" "$stage/app" "$output" "$minimum" <<'EOF'
import configparser
import os
import shutil
import sys
import zipapp
import zipfile
from pathlib import Path

root, app, output, minimum = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
major, minor = (int(part) for part in minimum.split("."))

# The package: its modules only (templates serve `jr render`, which needs jinja2, left out).
package = root / "jenkins_registry"
for source in sorted(package.rglob("*.py")):
    if "__pycache__" not in source.parts:
        target = app / source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

# Its metadata, so `--version` reports this checkout's version, not another install's.
config = configparser.ConfigParser()
config.read(root / "setup.cfg")
metadata = config["metadata"]
dist_info = app / f"jenkins_registry-{metadata['version']}.dist-info"
dist_info.mkdir()
(dist_info / "METADATA").write_text(
    f"Metadata-Version: 2.1\nName: {metadata['name']}\nVersion: {metadata['version']}\n"
    f"Summary: {metadata['description']}\nLicense: {metadata['license']}\n"
    f"Requires-Python: >={minimum}\n")

# Written out rather than generated by zipapp: the version check must parse on any python3, and
# a generated __main__.py would carry the build's clock.
(app / "__main__.py").write_text(f'''\
# The single-file jr-push, built by scripts/build-zipapp.sh: `python3 jr-push.pyz --help`.
import sys

if sys.version_info < ({major}, {minor}):
    sys.stderr.write("jr-push: error: the single-file jr-push needs Python {minimum} or newer; "
                     "%s is Python %s.\\n" % (sys.executable, sys.version.split()[0]))
    sys.stderr.write("jr-push: what to do: run it with a newer interpreter (python{minimum} "
                     "jr-push.pyz ...), or install the tool: pipx install jenkins-registry.\\n")
    sys.exit(15)  # ExitCode.MISSING_PACKAGE

from jenkins_registry.cli.zipapp_main import main

sys.exit(main())
''')

# pip's installer records and console scripts are not part of what runs.
dropped_names = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def kept(path: Path) -> bool:
    parts = path.parts
    return not (parts[0] == "bin" or "__pycache__" in parts or path.suffix == ".pyc"
                or (parts[0].endswith(".dist-info") and path.name in dropped_names))


compiled = sorted(str(path.relative_to(app)) for path in app.rglob("*")
                  if path.suffix in (".so", ".pyd", ".dylib") or ".so." in path.name)
if compiled:
    sys.exit(f"build-zipapp.sh: compiled extensions cannot run from a zipapp: {', '.join(compiled)}")

epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or 946684800)  # 2000-01-01: zip needs >= 1980
for path in [app, *app.rglob("*")]:
    path.chmod(0o755 if path.is_dir() else 0o644)
    os.utime(path, (epoch, epoch))

partial = output.with_name(f".{output.name}.partial")
zipapp.create_archive(app, partial, interpreter="/usr/bin/env python3", filter=kept,
                      compressed=True)
partial.chmod(0o755)  # `./jr-push.pyz` runs it for every user, through its #! line
partial.replace(output)  # the old archive stays whole until the new one is

with zipfile.ZipFile(output) as archive:
    infos = archive.infolist()
tops = sorted({info.filename.split("/")[0] for info in infos
               if "/" in info.filename and not info.filename.split("/")[0].endswith(".dist-info")})
unpacked = sum(info.file_size for info in infos)
print(f"{output}: {output.stat().st_size / 1e6:.2f} MB ({len(infos)} entries, "
      f"{unpacked / 1e6:.2f} MB unpacked): {' '.join(tops)}", file=sys.stderr)
EOF
