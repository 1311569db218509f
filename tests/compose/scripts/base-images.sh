#!/bin/sh
# Builds, without an image registry, the base images deploy/Dockerfile and docker-compose.yml name, so those
# files stay what a user with Docker Hub runs:
#   node:20-bookworm-slim  Debian bookworm (debootstrap, minbase) + this machine's Node.js 20, npm, corepack
#   nats:2.10-alpine       the same Debian + Debian's nats-server and wget (what the compose health check uses)
# An image that exists already is kept. Needs root (debootstrap), docker, and Debian's mirror.
set -eu
work="${BACKPLANE_BASE_IMAGES_DIR:-/var/tmp/backplane-base-images}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
have() { docker image inspect "$1" >/dev/null 2>&1; }

base() {
  have backplane-base:bookworm && return 0
  rootfs="$work/rootfs"
  if [ ! -x "$rootfs/bin/sh" ]; then
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=ca-certificates,wget bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
      || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  fi
  # an image holds no package caches
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  tar -C "$rootfs" -c . | docker import - backplane-base:bookworm >/dev/null
}

node_image() {
  have node:20-bookworm-slim && return 0
  ctx="$work/node"
  rm -rf "$ctx" && mkdir -p "$ctx/lib"
  node_bin="$(command -v node)"
  node_lib="$(dirname "$(readlink -f "$(command -v npm)")")/../.."
  cp "$node_bin" "$ctx/node"
  cp -r "$node_lib/npm" "$node_lib/corepack" "$ctx/lib/"
  # this machine's CA certificates (its own and any it added, say for a TLS-inspecting proxy between it and
  # the npm registry), so that the image build reaches the registry from here as this machine does
  extra=""
  cas="${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}"
  if [ -f "$cas" ]; then
    cp "$cas" "$ctx/extra-ca.crt"
    extra="COPY extra-ca.crt /usr/local/share/backplane-extra-ca.crt
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/backplane-extra-ca.crt"
  fi
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM backplane-base:bookworm
COPY node /usr/local/bin/node
COPY lib /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\
 && ln -s ../lib/node_modules/corepack/dist/corepack.js /usr/local/bin/corepack \\
 && node --version
$extra
ENV NODE_VERSION=20
CMD ["node"]
DOCKERFILE
  docker build -q -t node:20-bookworm-slim "$ctx" >/dev/null
}

nats_image() {
  have nats:2.10-alpine && return 0
  ctx="$work/nats"
  rm -rf "$ctx" && mkdir -p "$ctx"
  bin="$(command -v nats-server || echo /usr/sbin/nats-server)"
  cp "$bin" "$ctx/nats-server"
  cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM backplane-base:bookworm
COPY nats-server /usr/local/bin/nats-server
EXPOSE 4222 6222 8222
ENTRYPOINT ["nats-server"]
CMD ["--jetstream"]
DOCKERFILE
  docker build -q -t nats:2.10-alpine "$ctx" >/dev/null
}

mkdir -p "$work"
base
node_image
nats_image
echo "base images: node:20-bookworm-slim nats:2.10-alpine"
