<#
.SYNOPSIS
  Checks bbinject.exe on a real Windows agent with Git for Windows: what the
  wine test bed in CI (.ci/windows.sh) cannot run.

.DESCRIPTION
  Run it in PowerShell (5.1 or 7) on the agent, as the agent's user, with the
  credential the builds use in the environment (BITBUCKET_ACCESS_TOKEN_FILE,
  BITBUCKET_API_TOKEN + BITBUCKET_EMAIL, ...) and a repository it may read:

    .\scripts\windows-checks.ps1 -Repo acme/app [-Bbinject 'C:\Program Files\bbinject\bbinject.exe']

  It needs the network to bitbucket.org. It writes only under a fresh
  directory in $env:TEMP, removed at the end. Every check prints PASS or
  FAIL; the exit code is the number of failures. No secret is printed: the
  script never reads the credential itself.

  The checks:
   1. `bbinject check --repo` passes (the preflight);
   2. `bbinject exec -- git clone` works through the credential helper, run by
      Git for Windows' sh from the path bbinject.exe is installed at;
   3. the same through askpass alone (the helper entry blanked);
   4. Git Credential Manager is not asked for bitbucket.org inside `exec`
      (GIT_TRACE shows no git-credential-manager), and nothing was stored in
      it or in ~/.git-credentials;
   5. no form of the secret in the clone's .git\config, ~\.gitconfig or
      ~\.git-credentials;
   6. the broker's pipe exists only while `exec` runs, and its ACL names one
      user: the agent's;
   7. `export --format powershell`, a `git ls-remote`, `export --revoke`, and
      then a refused `git ls-remote`.
  Ctrl-C is checked by hand: run
    bbinject.exe exec -- git clone https://bitbucket.org/<big repo>.git
  press Ctrl-C, and see git stop, bbinject exit, and no git.exe left in Task
  Manager.
#>
param(
  [Parameter(Mandatory = $true)][string]$Repo,
  [string]$Bbinject = (Get-Command bbinject.exe -ErrorAction Stop).Source
)
$ErrorActionPreference = 'Stop'
$failures = 0
function Check([string]$What, [bool]$Ok) {
  if ($Ok) { Write-Host "PASS  $What" } else { Write-Host "FAIL  $What"; $script:failures++ }
}
$url = "https://bitbucket.org/$Repo.git"
$work = Join-Path $env:TEMP ("bbinject-checks-" + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory $work | Out-Null
Write-Host "bbinject: $Bbinject"
& $Bbinject --version
git --version

try {
  # 1. The preflight.
  & $Bbinject check --repo $Repo
  Check "bbinject check --repo $Repo" ($LASTEXITCODE -eq 0)

  # 2. A clone through the helper (Git for Windows runs it with its sh).
  $env:GIT_TRACE = Join-Path $work 'trace-helper.txt'
  & $Bbinject exec --repo $Repo -- git clone --depth 1 $url (Join-Path $work 'via-helper')
  $cloned = $LASTEXITCODE -eq 0
  Remove-Item Env:GIT_TRACE
  Check "exec -- git clone through the credential helper" $cloned

  # 3. A clone through askpass alone: the helper entry blanked by a later entry.
  & $Bbinject exec --repo $Repo -- git -c "credential.https://bitbucket.org.helper=" `
    clone --depth 1 $url (Join-Path $work 'via-askpass')
  Check "exec -- git clone through askpass" ($LASTEXITCODE -eq 0)

  # 4. Git Credential Manager stays out.
  $trace = Get-Content -Raw (Join-Path $work 'trace-helper.txt') -ErrorAction SilentlyContinue
  Check "GIT_TRACE shows bbinject's helper" ($trace -match 'bbinject')
  Check "GIT_TRACE shows no git-credential-manager" (-not ($trace -match 'credential-manager'))
  $gcm = cmdkey /list 2>$null | Select-String -SimpleMatch 'git:https://bitbucket.org'
  Check "no bitbucket.org entry in the Windows Credential Manager" (-not $gcm)

  # 5. Nothing on disk. The secret is not read here: bbinject masks every form
  #    of it, so an exec that prints the files shows **** where it would be.
  $files = @((Join-Path $work 'via-helper\.git\config'), "$HOME\.gitconfig", "$HOME\.git-credentials") |
    Where-Object { Test-Path $_ }
  $quoted = ($files | ForEach-Object { "'" + $_.Replace("'", "''") + "'" }) -join ','
  $shown = & $Bbinject exec --no-preflight -- powershell -NoProfile -Command `
    "Get-Content -Raw -LiteralPath $quoted | Out-String"
  Check "no form of the secret in git's config files ($($files.Count) read)" (
    $files.Count -gt 0 -and -not (($shown | Out-String) -match '\*\*\*\*'))

  # 6. The pipe: there while exec runs, one user in its ACL, gone after.
  $probe = & $Bbinject exec --no-preflight -- powershell -NoProfile -Command `
    '$p = $env:BBINJECT_SOCKET; Write-Output $p; (Get-Acl $p).Access | ForEach-Object { $_.IdentityReference.Value }'
  $pipe = $probe | Select-Object -First 1
  $who = @($probe | Select-Object -Skip 1 | Sort-Object -Unique)
  Check "exec's pipe is \\.\pipe\bbinject-<random> ($pipe)" ($pipe -match '^\\\\\.\\pipe\\bbinject-[0-9a-f]{32}$')
  Check "the pipe's ACL grants one user, the agent's ($($who -join ', '))" (
    $who.Count -eq 1 -and $who[0] -eq [System.Security.Principal.WindowsIdentity]::GetCurrent().Name)
  Check "the pipe is gone after exec" (-not (Test-Path $pipe))

  # 7. export for PowerShell, then --revoke.
  & $Bbinject export --repo $Repo --ttl 5m --format powershell | Out-String | Invoke-Expression
  git ls-remote $url HEAD | Out-Null
  Check "git ls-remote after export --format powershell" ($LASTEXITCODE -eq 0)
  & $Bbinject export --revoke
  Check "export --revoke" ($LASTEXITCODE -eq 0)
  git ls-remote $url HEAD 2>$null | Out-Null
  Check "git ls-remote is refused after --revoke" ($LASTEXITCODE -ne 0)
} finally {
  foreach ($name in 'GIT_ASKPASS', 'BBINJECT_SOCKET', 'BBINJECT_CAPABILITY', 'GIT_TERMINAL_PROMPT',
    'CARGO_NET_GIT_FETCH_WITH_CLI', 'GIT_CONFIG_COUNT') {
    Remove-Item "Env:$name" -ErrorAction SilentlyContinue
  }
  Get-ChildItem Env: | Where-Object { $_.Name -match '^GIT_CONFIG_(KEY|VALUE)_\d+$' } |
    ForEach-Object { Remove-Item "Env:$($_.Name)" }
  Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}
Write-Host "$failures failure(s)"
exit $failures
