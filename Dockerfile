# Thumbnailify: one image with both binaries, `gateway` (the default command) and `worker`.
FROM rust:1-bookworm AS build
# cmake and nasm build libjpeg-turbo for the default build; cmake, pkg-config, libde265,
# dav1d and libaom build libheif (HEIC and AVIF), also in the default build.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake nasm pkg-config libde265-dev libdav1d-dev libaom-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin gateway --bin worker

FROM debian:bookworm-slim
# FFmpeg probes videos and takes their poster frames (ffprobe, ffmpeg); libde265 and dav1d
# decode HEIC and AVIF for libheif, libaom encodes AVIF thumbnails; CA certificates for fetching sources over https.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libde265-0 libdav1d6 libaom3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /data thumbnailify \
    && mkdir -p /data /etc/thumbnailify \
    && chown thumbnailify /data
COPY --from=build /src/target/release/gateway /src/target/release/worker /usr/local/bin/
COPY config.yaml /etc/thumbnailify/config.yaml
USER thumbnailify
ENV THUMBNAILIFY_DATA_DIR=/data \
    THUMBNAILIFY_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
CMD ["gateway", "--config", "/etc/thumbnailify/config.yaml"]
