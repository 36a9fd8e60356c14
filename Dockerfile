# The annolive server image, on Debian bookworm with Debian's libraries.
#
# The build stage has the compiler and the -dev packages of scripts/setup.sh.
# The runtime stage has only the shared libraries the binary loads and curl
# for the health check, and runs as the unprivileged user annolive (uid
# 10001).
#
#   docker build -t annolive .
#   docker run --rm -p 127.0.0.1:7700:7700 \
#       -v "$PWD/secret.txt:/run/secrets/annolive_secret:ro" \
#       -e ANNOLIVE_AUTH_SECRET_FILE=/run/secrets/annolive_secret \
#       -e ANNOLIVE_REDIS=redis://REDIS_IP:6379/0 annolive
#
# Secrets are read from files: --auth-secret-file for the token secret and
# --redis-password-file for the Redis password (or their ANNOLIVE_*
# variables). The files must be readable by uid 10001.

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libmsgpack-dev \
        libhiredis-dev libjansson-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# CMakeLists.txt names sources in several folders (the benchmark tools too),
# so the whole tree goes in. Only the server is built.
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DANNOLIVE_TESTS=OFF -DANNOLIVE_WERROR=ON \
    && cmake --build build -j"$(nproc)" --target annolive \
    && build/annolive --version

FROM ${DEBIAN_IMAGE}
# libwebsockets-evlib-uv is the plugin that runs libwebsockets on libuv. The
# server loads it at start from the path Debian installs it to, which is the
# same in both stages.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libwebsockets17 libwebsockets-evlib-uv libuv1 libmsgpackc2 \
        libhiredis0.14 libjansson4 libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin annolive
COPY --from=build /src/build/annolive /usr/local/bin/annolive

USER annolive:annolive
ENV ANNOLIVE_LISTEN=0.0.0.0:7700
EXPOSE 7700
STOPSIGNAL SIGTERM
# Liveness: the process serves HTTP. Routing decisions belong to the load
# balancer, which checks /readyz (503 while Redis is unreachable or the
# instance is stopping). The check assumes the port of ANNOLIVE_LISTEN.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:7700/healthz"]
ENTRYPOINT ["/usr/local/bin/annolive"]
