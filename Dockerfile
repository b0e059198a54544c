# mcps gateway image: the package with its gateway and postgres extras, on a slim Python base, run as a non-root
# user. Build from the repository root:  docker build -t mcps-gateway .   (deploy/compose.yaml does it for you)
# The configuration, keys, policy and pins are mounted at /etc/mcps (see README, "Run replicas").

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN set -eux; \
    wheel="$(ls /wheels/mcps_security-*.whl)"; \
    pip install "${wheel}[gateway,postgres]"; \
    rm -rf /wheels; \
    useradd --system --uid 10001 --user-group --home-dir /var/lib/mcps --create-home --shell /usr/sbin/nologin mcps
# the example upstream of deploy/gateway.toml (a stdio MCP server the gateway starts); replace with your own
COPY examples/gateway/payments_server.py /opt/mcps/examples/payments_server.py
USER 10001:10001
WORKDIR /var/lib/mcps
EXPOSE 8787
# SIGTERM: calls in flight finish (shutdown_timeout), the audit log is flushed, stdio upstreams are ended
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8787/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["mcps", "gateway", "run", "--log-format", "json"]
CMD ["--config", "/etc/mcps/gateway.toml"]
