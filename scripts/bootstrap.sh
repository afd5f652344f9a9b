# Shared by demo.sh and test.sh: install what the project needs on a fresh Debian machine.
# Sourced, not run. Idempotent: installs only what is missing.

need_apt=()
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
if [ "${JR_BOOTSTRAP_TEST:-0}" = 1 ]; then
  command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
  command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

JR_VENV="${JR_VENV:-$PWD/.venv}"
if [ ! -x "$JR_VENV/bin/python" ]; then
  python3 -m venv "$JR_VENV"
fi
extras="fast"
[ "${JR_BOOTSTRAP_TEST:-0}" = 1 ] && extras="fast,test"
# pip's output is kept for when it fails; on success it is only noise in the log.
pip_quiet() {
  local log; log=$(mktemp)
  if ! "$JR_VENV/bin/python" -m pip "$@" >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; return 1; fi
  rm -f "$log"
}
pip_quiet install -q --upgrade pip
pip_quiet install -q -e ".[${extras}]"
export PATH="$JR_VENV/bin:$PATH"

if [ "${JR_BOOTSTRAP_TEST:-0}" = 1 ]; then
  # A real Groovy parser for rendered Jenkinsfiles (npm-groovy-lint 15 runs on Node 20 + Java 17).
  JR_NPM_PREFIX="${JR_NPM_PREFIX:-$PWD/.cache/npm}"
  if [ ! -x "$JR_NPM_PREFIX/bin/npm-groovy-lint" ]; then
    npm install -g --silent --no-fund --no-audit --prefix "$JR_NPM_PREFIX" npm-groovy-lint@15 >/dev/null
  fi
  export PATH="$JR_NPM_PREFIX/bin:$PATH"
fi
