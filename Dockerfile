# bbinject as a container entrypoint: `ENTRYPOINT ["bbinject", "exec", "--"]`.
# Two stages: a Rust builder, then a small Debian runtime with git and CA
# certificates, a non-root user and only the binary. No secret is ever passed
# to this build: credentials reach the container at run time (env or mounted
# files), never a layer, build argument or ENV.
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# A TLS-inspecting proxy's CA (public, not secret), for cargo to reach the
# registry from networks that need it; empty everywhere else. It stays in this
# stage: the final image never sees it.
ARG EXTRA_CA_PEM=""
SHELL ["/bin/sh", "-eu", "-c"]
RUN if [ -n "${EXTRA_CA_PEM}" ]; then printf '%s\n' "${EXTRA_CA_PEM}" >> /etc/ssl/certs/ca-certificates.crt; fi
ENV CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin bbinject \
    && install -m 0755 target/release/bbinject /usr/local/bin/bbinject

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="bbinject" \
      org.opencontainers.image.description="Bitbucket Cloud credentials for git in CI, never written anywhere" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://bitbucket.org/acme/bbinject"
# Versions come with the base image's Debian release; pinning exact package
# versions would break every time the security archive moves on.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group bbinject
COPY --from=build /usr/local/bin/bbinject /usr/local/bin/bbinject
USER 10001:10001
WORKDIR /home/bbinject
# As PID 1, bbinject forwards signals to the command and reaps orphans: no
# extra init is needed.
ENTRYPOINT ["bbinject", "exec", "--"]
CMD ["git", "--version"]
