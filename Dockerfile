# Portcullis: multi-stage build of the release binary onto a slim Debian image.
#   docker build -t portcullis .
#   docker run -p 8443:8443 -p 8444:8444 \
#     -e PORTCULLIS_KEYS_MASTER_KEY=... -e PORTCULLIS_DATABASE_URL=postgres://... \
#     -v $PWD/tenants:/srv/portcullis/tenants -v $PWD/certs:/srv/portcullis/certs portcullis
FROM rust:1-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev libxml2-dev libxmlsec1-dev libclang-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY config config
COPY tenants tenants
COPY providers providers
RUN cargo build --release --locked && strip target/release/portcullis

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libxmlsec1 libxmlsec1-openssl libxml2 libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /srv/portcullis --shell /usr/sbin/nologin portcullis
WORKDIR /srv/portcullis
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
COPY config config
COPY tenants tenants
COPY providers providers
RUN mkdir -p certs data && chown -R portcullis:portcullis /srv/portcullis
USER portcullis
VOLUME ["/srv/portcullis/config", "/srv/portcullis/tenants", "/srv/portcullis/providers", "/srv/portcullis/certs", "/srv/portcullis/data"]
EXPOSE 8443 8444
ENTRYPOINT ["portcullis"]
CMD ["serve"]
