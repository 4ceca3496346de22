# inboxwatch: the scheduler service (`inboxwatch run`) as a container.
# Build: docker build -t inboxwatch .   (any official python:3.11+-slim base works)
ARG BASE_IMAGE=python:3.12-slim-bookworm

FROM ${BASE_IMAGE} AS build
# A CA bundle for pip behind a TLS-intercepting proxy (empty: the image's own trust store).
ARG PIP_CERT=""
# Optional features in the image: microsoft (msal, ~23 MB), notify (Apprise, ~18 MB),
# holidays (public holidays for business hours, ~15 MB), postgres (psycopg with its own
# libpq, ~12 MB: the state in PostgreSQL).
# --build-arg EXTRAS= builds the smallest image (password and Google sign-in only).
ARG EXTRAS="microsoft,notify,holidays,postgres"
# tini as PID 1 forwards SIGTERM to inboxwatch. Its static build is copied into the
# runtime stage, which then needs no apt (no package lists, no apt caches left behind).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY inboxwatch ./inboxwatch
# `python -m venv`, never a fixed interpreter path: official images keep Python in
# /usr/local/bin, Debian-based stand-ins in /usr/bin. pip itself is removed afterwards:
# the runtime installs nothing.
RUN python -m venv /opt/inboxwatch \
    && /opt/inboxwatch/bin/pip install --no-cache-dir ${PIP_CERT:+--cert "$PIP_CERT"} \
        ".${EXTRAS:+[$EXTRAS]}" \
    && /opt/inboxwatch/bin/pip uninstall --yes --quiet pip setuptools wheel \
    && rm -f /opt/inboxwatch/bin/activate*

FROM ${BASE_IMAGE}
# Where this image's source lives, e.g. --build-arg SOURCE_URL=https://github.com/you/inboxwatch
# (a release build sets it; no made-up address otherwise).
ARG SOURCE_URL=""
ARG VERSION=""
LABEL org.opencontainers.image.title="inboxwatch" \
      org.opencontainers.image.description="Read-only IMAP audit and daily digest of conversations waiting for your reply" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /usr/bin/tini-static /usr/bin/tini
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home inboxwatch \
    && mkdir -p /data /config \
    && chown inboxwatch:inboxwatch /data
COPY --from=build /opt/inboxwatch /opt/inboxwatch
ENV PATH="/opt/inboxwatch/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    INBOXWATCH_CONFIG=/config/config.toml \
    INBOXWATCH_STATE__PATH=/data/state.db \
    INBOXWATCH_SERVICE__HEALTH_PORT=9108 \
    INBOXWATCH_SERVICE__HEALTH_ADDRESS=0.0.0.0
# /metrics (Prometheus) and /healthz
EXPOSE 9108
USER 10001:10001
VOLUME ["/data"]
HEALTHCHECK --interval=5m --timeout=30s --start-period=2m --retries=3 CMD ["inboxwatch", "health"]
ENTRYPOINT ["tini", "--", "inboxwatch"]
CMD ["run"]
