# The `durable` executable in a small image. Build: docker build -t swift-durable-objects .
# Run alone:   docker run -p 8787:8787 -v durable-data:/data swift-durable-objects
# etcd, two gateways and three nodes: docker compose up --build (see docker-compose.yml).

FROM swift:6.1-bookworm AS build
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q librocksdb-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest names every target, so the whole tree is copied (.dockerignore leaves out build output and data).
COPY . .
RUN swift build -c release --product durable --static-swift-stdlib \
    && install -D .build/release/durable /out/durable

FROM debian:bookworm-slim
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q librocksdb7.8 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data durable && mkdir -p /data && chown durable /data
COPY --from=build /out/durable /usr/local/bin/durable
USER durable
VOLUME /data
EXPOSE 8787 7070 7701
ENTRYPOINT ["durable"]
# Everything in one container by default; docker-compose.yml runs the parts as separate services.
CMD ["dev", "--host", "0.0.0.0", "--data", "/data"]
