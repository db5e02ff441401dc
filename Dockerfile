# phasegate in a container:
#   docker build -t phasegate .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD":/work phasegate status
# The binary needs no files beside it (the SQL templates are compiled in).

# Build stage: the toolchain the project is verified with (Cargo.toml rust-version).
FROM rust:1.95.0-slim-trixie AS builder
WORKDIR /src
COPY . .
RUN cargo install --locked --path . --root /out

# Runtime stage: the same Debian release (glibc), slim. CA certificates are there for
# a backup_command that reaches a TLS service (phasegate itself is built without TLS:
# sqlx has no TLS feature enabled in Cargo.toml).
FROM debian:trixie-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 phasegate
COPY --from=builder /out/bin/phasegate /usr/local/bin/phasegate
USER phasegate
WORKDIR /work
ENTRYPOINT ["phasegate"]
CMD ["--help"]
