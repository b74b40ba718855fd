# The Cairn server image.
#   docker build -t cairn .
#   docker run -p 50051:50051 -v cairn-data:/data -v "$PWD/secrets:/etc/cairn:ro" cairn
# Threads, checkpoints and runs live in the SQLite file on the /data volume.
#
# It serves TLS and checks every caller (README, "Secure it"). Mount at
# /etc/cairn (read-only):
#   tls.crt, tls.key  the server's certificate (for the name clients dial) and key
#   ca.crt            the CA that signed tls.crt (the health check trusts it)
#   access.json       API key hashes and their grants (`cairn keys create`)
# For bearer JWTs instead of (or besides) API keys, add for example
#   --jwt-jwks https://issuer.example/.well-known/jwks.json --jwt-audience cairn
# to the command. A server on a non-loopback address refuses to start open.
# Only on a network you trust completely, run it open with an explicit choice
# (anyone who reaches the port can then read and change every thread):
#   docker run -p 50051:50051 -v cairn-data:/data cairn \
#     serve --address 0.0.0.0:50051 --store sqlite:////data/cairn.db --insecure
# and override the health check with `cairn health --no-tls`.

# Build stage: install the package and its dependencies into a virtualenv that
# the runtime stage copies whole (pip compiles the bytecode here, since the
# runtime user cannot write to /opt/venv).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 cairn \
    && useradd --system --create-home --uid 10001 --gid cairn cairn \
    && mkdir /data \
    && chown cairn:cairn /data
COPY --from=build /opt/venv /opt/venv
# The user cairn, by number so that runtimes can verify it is not root.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 50051
# Health is open to every caller. Over TLS the check verifies the server's
# certificate, which names the host clients dial rather than 127.0.0.1: give
# `docker run -e CAIRN_TLS_SERVER_NAME=<a name in tls.crt>` unless the
# certificate names `cairn` (the usual service name in a compose file).
ENV CAIRN_TLS_CA=/etc/cairn/ca.crt \
    CAIRN_TLS_SERVER_NAME=cairn
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["cairn", "health", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["cairn"]
CMD ["serve", "--address", "0.0.0.0:50051", "--store", "sqlite:////data/cairn.db", \
     "--tls-cert", "/etc/cairn/tls.crt", "--tls-key", "/etc/cairn/tls.key", \
     "--access-file", "/etc/cairn/access.json", "--log-level", "info"]
