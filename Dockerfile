# The Cairn server image.
#   docker build -t cairn .
#   docker run -p 50051:50051 -v cairn-data:/data cairn
# Threads, checkpoints and runs live in the SQLite file on the /data volume.

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
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["cairn", "health", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["cairn"]
CMD ["serve", "--address", "0.0.0.0:50051", "--store", "sqlite:////data/cairn.db", "--log-level", "info"]
