// TeamCity Kotlin DSL: the token lives in a password parameter, which TeamCity
// masks in logs and passes to the build step as an environment variable.
// `version` is the DSL API the script is written against (documented at
// jetbrains.com/help/teamcity/kotlin-dsl-documentation): the server must be
// TeamCity 2025.11 or newer.
//
// What the build can still read: a password parameter named env.* is in the
// environment of the step's shell, readable through /proc by every process of
// the agent's user while the step runs (TeamCity masks it in the log, nothing
// more). bbinject removes it from its own child's environment, not from the
// shell's. Narrower: have a first step write it to a file in
// %system.teamcity.build.tempDir% and read it with BITBUCKET_API_TOKEN_FILE and
// --consume-secret-files. See SECURITY.md, "What the build can still read".
import jetbrains.buildServer.configs.kotlin.*
import jetbrains.buildServer.configs.kotlin.buildSteps.script

version = "2025.11"

project {
    params {
        // Set the value in the UI (Parameters > Add > Password), or point this at a
        // credentialsJSON reference: the value is never stored in this file.
        password("env.BITBUCKET_API_TOKEN", "credentialsJSON:bitbucket-api-token", display = ParameterDisplay.HIDDEN)
        param("env.BITBUCKET_USERNAME", "ci-bot")
        param("env.BITBUCKET_EMAIL", "ci-bot@example.com")
    }
    buildType(Release)
}

object Release : BuildType({
    name = "Release"
    steps {
        // The pinned release, verified against its SHA256SUMS, into the build's
        // temporary directory; a service message puts it on PATH for later steps.
        script {
            name = "Install bbinject"
            scriptContent = """
                v=0.1.0; f=bbinject-${'$'}v-x86_64-unknown-linux-musl
                dir="%system.teamcity.build.tempDir%/bbinject" && mkdir -p "${'$'}dir" && cd "${'$'}dir"
                curl -fsSLO "https://github.com/bbinject/bbinject/releases/download/v${'$'}v/${'$'}f"
                curl -fsSLO "https://github.com/bbinject/bbinject/releases/download/v${'$'}v/SHA256SUMS"
                grep -F "  ${'$'}f" SHA256SUMS | sha256sum -c - \
                  && install -m 0755 "${'$'}f" "${'$'}dir/bbinject" \
                  && echo "##teamcity[setParameter name='env.PATH' value='${'$'}dir:%env.PATH%']"
            """.trimIndent()
        }
        // Fails the build with a diagnosis (exit 2-5) before anything else runs:
        // write access where the build pushes, read access where it only reads.
        script {
            name = "Preflight"
            scriptContent = """
                bbinject check --repo acme/app --need write
                bbinject check --repo acme/shared-lib
            """.trimIndent()
        }
        // The wrapped step: git gets the token from bbinject's in-memory broker.
        script {
            name = "Clone and release"
            scriptContent = """
                bbinject exec --repo acme/app --need write -- ./scripts/release.sh
            """.trimIndent()
        }
        // For later steps that cannot be wrapped: service messages set env.* for
        // the rest of the build; the broker ends after 30 minutes.
        script {
            name = "Broker for later steps"
            scriptContent = "bbinject export --format teamcity --ttl 30m --max-uses 20"
        }
        script {
            name = "Fetch submodules"
            scriptContent = """
                git submodule update --init --jobs 4
                bbinject export --revoke
            """.trimIndent()
        }
    }
})
