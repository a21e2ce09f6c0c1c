# Three images from one static binary (docker build --target NAME):
#   bin      FROM scratch, only /bbinject: `COPY --from=` it into any image.
#   pipe     the Bitbucket Pipe (pipe/pipe.yml): the runtime image + pipe.sh.
#   runtime  (the default) Debian slim + git + CA certificates, non-root,
#            entrypoint `bbinject exec --`.
# The binary is built for x86_64-unknown-linux-musl exactly as .ci/release
# builds it (same flags, same remapped paths), so with the same toolchain and
# commit it is byte-for-byte the released one; .ci/docker.sh checks that.
# No secret is ever passed to this build: credentials reach the container at
# run time (env or mounted files), never a layer, build argument or ENV.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# A TLS-inspecting proxy's CA (public, not secret), for cargo to reach the
# registry from networks that need it; empty everywhere else. It stays in this
# stage: the final images never see it.
ARG EXTRA_CA_PEM=""
# The --version stamp, since .git is not in the build context.
ARG BBINJECT_COMMIT=""
ARG BBINJECT_COMMIT_DATE=""
SHELL ["/bin/sh", "-eu", "-c"]
RUN if [ -n "${EXTRA_CA_PEM}" ]; then printf '%s\n' "${EXTRA_CA_PEM}" >> /etc/ssl/certs/ca-certificates.crt; fi
ENV CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt
# musl-gcc compiles ring's C and assembly for the static target.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && if [ ! -d "$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-musl" ]; then \
         rustup target add x86_64-unknown-linux-musl; fi
WORKDIR /build/bbinject
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
RUN cargo_home="${CARGO_HOME:-$HOME/.cargo}" \
    && RUSTFLAGS="--remap-path-prefix=/build/bbinject=/build/bbinject --remap-path-prefix=${cargo_home}=/cargo" \
       CC_x86_64_unknown_linux_musl=musl-gcc \
       BBINJECT_COMMIT="${BBINJECT_COMMIT}" BBINJECT_COMMIT_DATE="${BBINJECT_COMMIT_DATE}" \
       cargo build --release --locked --target x86_64-unknown-linux-musl --bin bbinject --target-dir target/dist \
    && install -m 0755 target/dist/x86_64-unknown-linux-musl/release/bbinject /bbinject

FROM scratch AS bin
LABEL org.opencontainers.image.title="bbinject (binary only)" \
      org.opencontainers.image.description="The static bbinject binary, for COPY --from=ghcr.io/bbinject/bbinject-bin:0.1.0 /bbinject /usr/local/bin/bbinject" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/bbinject/bbinject"
COPY --from=build /bbinject /bbinject
ENTRYPOINT ["/bbinject"]
CMD ["--version"]

FROM ${RUNTIME_IMAGE} AS base
LABEL org.opencontainers.image.title="bbinject" \
      org.opencontainers.image.description="Bitbucket Cloud credentials for git in CI, never written anywhere" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://github.com/bbinject/bbinject"
# Versions come with the base image's Debian release; pinning exact package
# versions would break every time the security archive moves on. git's
# documentation is not needed in a build container.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man /usr/share/locale \
    && useradd --create-home --uid 10001 --user-group bbinject
COPY --from=bin /bbinject /usr/local/bin/bbinject

FROM base AS pipe
COPY pipe/pipe.sh /pipe.sh
# Pipelines runs a pipe as the build's user in the clone directory it mounts.
ENTRYPOINT ["/pipe.sh"]

FROM base AS runtime
USER 10001:10001
WORKDIR /home/bbinject
# As PID 1, bbinject forwards signals to the command and reaps orphans: no
# extra init is needed.
ENTRYPOINT ["bbinject", "exec", "--"]
CMD ["git", "--version"]
