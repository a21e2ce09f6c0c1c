#!/usr/bin/env bash
# macOS: the Unix code paths type-check and lint clean for x86_64- and
# aarch64-apple-darwin (`cargo clippy --all-targets`; nothing is linked or
# run: there is no macOS SDK or machine here). ring's C needs a C compiler
# and headers for the target: clang, musl's portable headers, and a
# stand-in TargetConditionals.h (.ci/macos/), enough to compile, never to
# link.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v clang >/dev/null || missing+=(clang)
[ -d /usr/include/x86_64-linux-musl ] || missing+=(musl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
resource=$(clang -print-resource-dir)/include
for target in x86_64-apple-darwin aarch64-apple-darwin; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  var=${target//-/_}
  echo "--- cargo clippy --all-targets --target $target"
  env "CC_$var=clang" \
    "CFLAGS_$var=--target=$target -nostdinc -isystem $PWD/.ci/macos -isystem $resource -isystem /usr/include/x86_64-linux-musl" \
    cargo clippy --locked --all-targets --target "$target" -- -D warnings
done
echo "macos: clippy clean for both targets"
