#!/bin/sh
# The bbinject Bitbucket Pipe. Pipelines runs this image with the pipe's
# `variables:` and the build's BITBUCKET_* variables in the environment, in
# the clone directory. Without COMMAND it runs the preflight (`bbinject
# check`); with COMMAND it runs the preflight and then COMMAND under
# `bbinject exec`, e.g. `git submodule update --init --recursive`.
#
# The credential variables (BITBUCKET_ACCESS_TOKEN, BITBUCKET_API_TOKEN with
# BITBUCKET_EMAIL, BITBUCKET_OAUTH_CLIENT_ID/_SECRET, their _FILE forms) are
# read by bbinject itself: this script never reads, prints or passes them,
# and COMMAND does not see them in its environment.
set -eu

fail() {
  printf '\033[31m✖ %s\033[0m\n' "$*" >&2
  exit 2
}

need=${NEED:-read}
case "$need" in
  read | write) ;;
  *) fail "NEED is '$need': use read or write" ;;
esac
set -- --need "$need"

# REPOS: workspace/slug names, space separated. bbinject defaults to the
# build's own repository ($BITBUCKET_REPO_FULL_NAME) when there are none.
set -f # no globbing while splitting REPOS and EXTRA_ARGS
for repo in ${REPOS:-}; do
  case "$repo" in
    */*) set -- "$@" --repo "$repo" ;;
    *) fail "REPOS: '$repo' is not a workspace/slug name" ;;
  esac
done
# EXTRA_ARGS: more bbinject options, space separated (no quoting).
# shellcheck disable=SC2086
set -- "$@" ${EXTRA_ARGS:-}
set +f

verbose=""
case "${DEBUG:-false}" in
  true | 1 | yes) verbose="-vv" ;;
esac

# The clone directory belongs to the build's user; git refuses to work in a
# repository owned by someone else unless it is declared safe (command-line
# scope, which git honours for safe.directory).
if [ -n "${BITBUCKET_CLONE_DIR:-}" ]; then
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0="$BITBUCKET_CLONE_DIR"
fi

if [ -n "${COMMAND:-}" ]; then
  # shellcheck disable=SC2086
  exec bbinject $verbose exec "$@" -- sh -c "$COMMAND"
fi
# shellcheck disable=SC2086
exec bbinject $verbose check "$@"
