// TeamCity Kotlin DSL: the token lives in a password parameter, which TeamCity
// masks in logs and passes to the build step as an environment variable.
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
        // Fails the build with a diagnosis (exit 2-5) before anything else runs.
        script {
            name = "Preflight"
            scriptContent = "bbinject check --repo acme/app --repo acme/shared-lib --need write"
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
