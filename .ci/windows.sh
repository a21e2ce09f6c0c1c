#!/usr/bin/env bash
# Cross-builds bbinject.exe (x86_64-pc-windows-gnu, Debian's mingw-w64) and
# checks it under wine: clippy for the Windows code paths, the unit tests run
# under wine, then the exe as a Windows agent runs it: `check` against the
# test git server and API mock on 127.0.0.1; `exec` with its named-pipe
# broker (credential helper, askpass, a lookalike host, a wrong capability,
# the child's environment and exit codes, the job object ending the child's
# tree, Ctrl-C); `export --format cmd` and `--revoke`; no form of the token in
# any output. There is no Git for Windows here: git's side is played by cmd
# scripts speaking git's helper protocol and askpass prompts
# (scripts/windows-checks.ps1 is what a Windows user runs with real git).
# Debian's wine 8 lacks bcryptprimitives.dll, which Rust's std imports
# (ProcessPrng): a stand-in built from .ci/windows/ goes into the prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n--- %s\n' "$*"; }
fail() { echo "FAILED: $*"; exit 1; }

missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null || missing+=(wine wine64)
command -v script >/dev/null || missing+=(bsdutils)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
wine --version

say "cargo clippy --all-targets --target x86_64-pc-windows-gnu (the Windows code paths)"
cargo clippy --locked --all-targets --target x86_64-pc-windows-gnu -- -D warnings

work=$(mktemp -d /tmp/bbwin.XXXXXX)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  wineserver -k 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export WINEPREFIX="$work/prefix" WINEDEBUG=-all
x86_64-w64-mingw32-gcc -O2 -shared -o "$work/bcryptprimitives.dll" \
  .ci/windows/bcryptprimitives.c .ci/windows/bcryptprimitives.def -ladvapi32
x86_64-w64-mingw32-gcc -O2 -o "$work/sleeper.exe" .ci/windows/sleeper.c
wine cmd /c exit 0 >/dev/null 2>&1 || true # creates the prefix
cp "$work/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"

say "unit tests, built for Windows, run under wine"
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine \
  cargo test --locked --target x86_64-pc-windows-gnu --lib >"$work/unit.log" 2>&1 || true
grep -E "^test result|FAILED|panicked" "$work/unit.log" || true
grep -q "^test result: ok" "$work/unit.log" || { tail -50 "$work/unit.log"; fail "unit tests under wine"; }

# The release's exe when .ci/release ran first (what users download), else a build.
released=$(ls dist/bbinject-*-x86_64-pc-windows-gnu.exe 2>/dev/null | head -1 || true)
if [ -z "$released" ]; then
  say "cargo build --release --locked --target x86_64-pc-windows-gnu"
  cargo build --release --locked --target x86_64-pc-windows-gnu --bin bbinject
  released=target/x86_64-pc-windows-gnu/release/bbinject.exe
fi
echo "testing $released"
# In a directory with spaces, as under C:\Program Files.
bin="$work/Program Files/bb inject"
mkdir -p "$bin"
cp "$released" "$bin/bbinject.exe"
ls -l "$bin/bbinject.exe"
winpath() { printf 'Z:%s' "${1//\//\\}"; }
exe() { wine "$bin/bbinject.exe" "$@"; }
W=$(winpath "$work")
WEXE=$(winpath "$bin/bbinject.exe")

say "bbinject.exe --version, completions, man"
exe --version | tee "$work/version"
grep -q "^bbinject " "$work/version" || fail "--version"
exe completions powershell | grep -q "Register-ArgumentCompleter" || fail "powershell completions"
exe man | grep -q '^\.TH' || fail "man page"

say "check without a credential: exit 2 and the reason"
set +e
none=$(exe check 2>&1); none_code=$?
set -e
[ "$none_code" -eq 2 ] && grep -q "no Bitbucket credential found" <<<"$none" || fail "exit $none_code: $none"
echo "exit 2: $(head -1 <<<"$none")"

say "check against the test git server and API mock on 127.0.0.1"
cargo build --quiet --locked --example git_server
token="ATCTT3xFAKE-windows-check-token-0000"
target/debug/examples/git_server "$work/repos" x-token-auth "$token" >"$work/url" &
server_pid=$!
for _ in $(seq 50); do [ "$(wc -l <"$work/url")" -ge 2 ] && break; sleep 0.2; done
git_url=$(sed -n 1p "$work/url"); api_url=$(sed -n 2p "$work/url")
ok=$(BITBUCKET_ACCESS_TOKEN="$token" exe check --repo acme/app --api-url "$api_url" --git-url "$git_url" 2>&1)
echo "$ok"
grep -q "result: ok" <<<"$ok" || fail "check with the right token"
# A secret file, by a Windows path (wine maps / to Z:).
printf '%s\r\n' "$token" >"$work/token.txt"
from_file=$(BITBUCKET_ACCESS_TOKEN_FILE="$W\\token.txt" exe check --repo acme/app \
  --api-url "$api_url" --git-url "$git_url" --format json 2>&1)
grep -q '"ok": true' <<<"$from_file" || fail "check with a secret file (CRLF): $from_file"
echo "a secret file with a Windows path and CRLF: ok"
set +e
wrong=$(BITBUCKET_ACCESS_TOKEN="ATCTT3xFAKE-not-the-right-token-00" exe check --repo acme/app \
  --api-url "$api_url" --git-url "$git_url" 2>&1); wrong_code=$?
set -e
[ "$wrong_code" -eq 3 ] || fail "a wrong token: exit $wrong_code: $wrong"
echo "a wrong token: exit 3"
for out in "$ok" "$from_file" "$wrong"; do
  if grep -q "$token" <<<"$out"; then fail "the token leaked"; fi
done


say "exec: the child's environment, the helper, askpass, refusals, exit code"
host=${git_url#http://}
host=${host%%/*}
printf 'protocol=http\nhost=%s\npath=acme/app.git\n\n' "$host" >"$work/get.txt"
printf 'protocol=https\nhost=bitbucket.org.evil.example\npath=acme/app.git\n\n' >"$work/lookalike.txt"
cat >"$work/child.bat" <<EOF
@echo off
set > $W\\child-env.txt
"%GIT_ASKPASS%" credential get < $W\\get.txt > $W\\helper.txt
"%GIT_ASKPASS%" credential get < $W\\lookalike.txt > $W\\lookalike-out.txt
"%GIT_ASKPASS%" "Username for 'http://$host/acme/app.git': " > $W\\askpass-user.txt
"%GIT_ASKPASS%" "Password for 'http://x-token-auth@$host/acme/app.git': " > $W\\askpass-password.txt
echo the helper said:
type $W\\helper.txt
setlocal
set BBINJECT_CAPABILITY=0000000000000000000000000000000000000000000000000000000000000000
"%GIT_ASKPASS%" credential get < $W\\get.txt > $W\\wrong-capability.txt
set BBINJECT_CAPABILITY=
"%GIT_ASKPASS%" credential get < $W\\get.txt > $W\\no-capability.txt
endlocal
exit /b 7
EOF
set +e
BITBUCKET_ACCESS_TOKEN="$token" exe -v exec --repo acme/app --api-url "$api_url" --git-url "$git_url" \
  --audit-log "$W\\audit.jsonl" -- cmd /c "$W\\child.bat" >"$work/exec.out" 2>"$work/exec.err"
code=$?
set -e
cat "$work/exec.out" "$work/exec.err"
[ "$code" -eq 7 ] || fail "exec: exit $code, not the child's 7"
echo "exec with a preflight: the child ran, and its exit 7 came through"
cr=$'\r'
line_in() { grep -qx -- "$1$cr\?" "$2"; }
grep -q '^BBINJECT_SOCKET=\\\\\.\\pipe\\bbinject-[0-9a-f]\{32\}' "$work/child-env.txt" || fail "no pipe in the child's environment"
grep -q '^GIT_ASKPASS=Z:.*\\Program Files\\bb inject\\bbinject.exe' "$work/child-env.txt" || fail "GIT_ASKPASS is not the exe"
grep -q "^GIT_CONFIG_VALUE_1=!exec 'Z:/.*/Program Files/bb inject/bbinject.exe' credential" "$work/child-env.txt" ||
  fail "the helper command: $(grep GIT_CONFIG_VALUE_1 "$work/child-env.txt")"
if grep -qi '^BITBUCKET_ACCESS_TOKEN' "$work/child-env.txt"; then fail "the secret's variable reached the child"; fi
echo "child environment: the pipe, askpass = the exe (path with spaces), the helper by a forward-slash path, no BITBUCKET_ACCESS_TOKEN"
line_in "password=$token" "$work/helper.txt" || fail "the helper did not hand out the password"
line_in 'username=x-token-auth' "$work/helper.txt" || fail "helper username"
echo "credential get for the allowed host: username and password handed to git"
line_in 'quit=1' "$work/lookalike-out.txt" || fail "the lookalike host was not refused"
grep -q 'refused credential for https://bitbucket.org.evil.example' "$work/exec.err" || fail "no refusal line for the lookalike"
if grep -q password "$work/lookalike-out.txt"; then fail "a password went to the lookalike"; fi
echo "credential get for bitbucket.org.evil.example: quit=1 and one refusal line"
line_in 'x-token-auth' "$work/askpass-user.txt" || fail "askpass username"
line_in "$token" "$work/askpass-password.txt" || fail "askpass password"
echo "askpass with git's Username and Password prompts: answered"
line_in 'quit=1' "$work/wrong-capability.txt" || fail "a wrong capability was not refused"
grep -q 'no bbinject broker is running here' "$work/exec.err" || fail "no message without a capability"
for f in wrong-capability no-capability; do
  if grep -q password "$work/$f.txt"; then fail "$f: a password was handed out"; fi
done
echo "a process with a wrong capability: refused; with none: told there is no broker"
grep -q '^password=\*\*\*\*' "$work/exec.out" || fail "the password the child printed was not masked"
echo "the password the child printed reached the log as ****"
grep -q '"decision":"granted".*"front":"helper".*"sid":"S-1-5-' "$work/audit.jsonl" ||
  fail "no audit record of the helper's grant with the client's SID: $(cat "$work/audit.jsonl")"
grep -q '"reason":"host-not-allowed".*"exe":"Z:.*bbinject.exe".*"parent_exe":"[^"]*cmd.exe"' "$work/audit.jsonl" ||
  fail "no audit record of the lookalike's refusal with the executables: $(cat "$work/audit.jsonl")"
echo "audit log: $(wc -l <"$work/audit.jsonl") records, with the client's SID, executable and parent (cmd.exe)"

say "exec: a 32-bit exit code passes through whole"
cat >"$work/status.bat" <<EOF
@echo off
"$WEXE" exec --no-preflight -- cmd /c exit 300
echo status=%ERRORLEVEL%
EOF
status=$(BITBUCKET_ACCESS_TOKEN="$token" wine cmd /c "$W\\status.bat" 2>&1 | tr -d '\r' || true)
grep -qx 'status=300' <<<"$status" || fail "exit 300: $status"
echo "cmd /c exit 300 → %ERRORLEVEL% 300"

beats() { if [ -f "$1" ]; then tr -dc 0-9 <"$1" || true; fi; }
moving() { # FILE: does the sleeper's count still move?
  local a b
  a=$(beats "$1")
  sleep 1
  b=$(beats "$1")
  [ "$a" != "$b" ]
}
wait_beat() {
  for _ in $(seq 100); do
    [ -n "$(beats "$1")" ] && return 0
    sleep 0.1
  done
  fail "no heartbeat in $1"
}

say "exec: the child's process tree ends when bbinject is killed"
# Control: without bbinject, a grandchild outlives its killed parent.
(wine cmd /c "$W\\sleeper.exe beat $W\\control.txt" >/dev/null 2>&1 &)
wait_beat "$work/control.txt"
wine taskkill /F /IM cmd.exe >/dev/null 2>&1 || true
moving "$work/control.txt" || fail "the control sleeper died with its parent: this check would prove nothing"
wine taskkill /F /IM sleeper.exe >/dev/null 2>&1 || true
echo "control: a grandchild of a killed cmd.exe keeps running"
for how in taskkill kill-9; do
  rm -f "$work/beat.txt"
  (BITBUCKET_ACCESS_TOKEN="$token" exe exec --no-preflight -- cmd /c "$W\\sleeper.exe beat $W\\beat.txt" >/dev/null 2>&1 &)
  wait_beat "$work/beat.txt"
  moving "$work/beat.txt" || fail "the sleeper does not run"
  case $how in
    taskkill) wine taskkill /F /IM bbinject.exe >/dev/null 2>&1 ;;
    kill-9) pkill -9 -f 'bbinject.exe exec --no-preflight -- cmd /c' || fail "no bbinject.exe process to kill" ;;
  esac
  sleep 1
  if moving "$work/beat.txt"; then fail "$how: the child's tree outlived bbinject"; fi
  echo "$how of bbinject.exe: its cmd.exe and sleeper.exe ended with it"
done

say "exec: Ctrl-C reaches the child, and bbinject waits for it"
# GenerateConsoleCtrlEvent needs a console: wine has one on a terminal. The
# sleeper's handler exits 130 half a second after the Ctrl-C; without
# bbinject's handler, the Ctrl-C would end bbinject at once instead.
set +e
script -qec "wine '$work/sleeper.exe' ctrlc" /dev/null >/dev/null 2>&1
direct=$?
started=$(date +%s)
script -qec "NO_COLOR=1 BITBUCKET_ACCESS_TOKEN=$token wine '$bin/bbinject.exe' -v exec --no-preflight -- '$W\\sleeper.exe' ctrlc" \
  /dev/null >"$work/ctrlc.log" 2>&1
via=$?
set -e
took=$(($(date +%s) - started))
[ "$direct" -eq 130 ] || fail "the sleeper alone exits $direct on Ctrl-C, not 130: no console here?"
# (wine's console wraps lines at 80 columns: short patterns)
grep -q 'Ctrl-C: the console' "$work/ctrlc.log" || fail "bbinject did not take the Ctrl-C: $(cat "$work/ctrlc.log")"
grep -q 'child exited' "$work/ctrlc.log" || fail "bbinject did not wait for the child"
[ "$via" -eq 130 ] || fail "exit $via through bbinject, not the child's 130"
[ "$took" -lt 5 ] || fail "the child did not end on Ctrl-C (${took}s)"
echo "bbinject took the Ctrl-C, waited for the sleeper's handler (0.5 s), and exited with its 130"

say "export --format cmd, call, credential get, --revoke"
BITBUCKET_ACCESS_TOKEN="$token" exe export --no-preflight --git-url "$git_url" --format cmd --ttl 60s \
  >"$work/bb-env.cmd" 2>"$work/export.err" || fail "export: $(cat "$work/export.err")"
grep -q '^set "BBINJECT_SOCKET=\\\\\.\\pipe\\bbinject-' "$work/bb-env.cmd" || fail "export: $(cat "$work/bb-env.cmd")"
cat >"$work/exported.bat" <<EOF
@echo off
call $W\\bb-env.cmd
"%GIT_ASKPASS%" credential get < $W\\get.txt > $W\\exported.txt
"%GIT_ASKPASS%" export --revoke
"%GIT_ASKPASS%" credential get < $W\\get.txt > $W\\revoked.txt
EOF
wine cmd /c "$W\\exported.bat" >"$work/exported.out" 2>&1
cat "$work/exported.out"
line_in "password=$token" "$work/exported.txt" || fail "the exported broker did not answer"
grep -q 'the broker was revoked; its pipe is closed' "$work/exported.out" || fail "revoke"
grep -q 'the bbinject broker has ended' "$work/exported.out" || fail "an answer after --revoke"
if grep -q password "$work/revoked.txt"; then fail "a password after --revoke"; fi
echo "the exported broker answered, was revoked, and then refused"

say "no form of the token in anything bbinject or the child printed"
b64=$(printf '%s' "$token" | base64 -w0)
basic=$(printf 'x-token-auth:%s' "$token" | base64 -w0)
for f in exec.out exec.err audit.jsonl ctrlc.log export.err exported.out bb-env.cmd child-env.txt; do
  for form in "$token" "$b64" "$basic"; do
    if grep -qF -- "$form" "$work/$f"; then fail "$f holds a form of the token"; fi
  done
done
echo "checked: exec and export output, the audit log, the Ctrl-C run, the child's environment, the cmd file"
echo "windows: all checks passed"
