#!/usr/bin/env bash
# The Debian packages the tests and CI need, installed as root from the machine's own Debian mirror.
# Single packages come from Debian trixie (the next release) with apt pinning, so nothing else on a
# bookworm machine is upgraded: trixie is added at priority 100 and only the packages named here use it.
#   debian-packages.sh trixie            add trixie to apt's sources (low priority), once
#   debian-packages.sh nats              nats-server 2.10 (trixie: a static binary; bookworm's 2.9.10 races
#                                        conditional writes on replicated streams, nats-server#4320)
#   debian-packages.sh etcd              etcd-server 3.5 (trixie), for the benchmark's comparison
#   debian-packages.sh docker            Docker engine (bookworm), Compose v2 (trixie), debootstrap
#   debian-packages.sh compose-v1 DIR    docker-compose 1.29 (bookworm) unpacked into DIR/root, with its
#                                        Python dependencies installed (it cannot be installed beside v2)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1

apt_updated=
update() { [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }; }

trixie() {
  local list=/etc/apt/sources.list.d/backplane-trixie.sources
  if ! grep -rqs "Suites: trixie\|trixie main" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # the mirror the machine already uses for bookworm
    local mirror
    mirror=$(grep -rhoE 'https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -v security | head -n1)
    mirror=${mirror:-http://deb.debian.org/debian}
    printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" >"$list"
    apt_updated=
  fi
  if [ ! -f /etc/apt/preferences.d/backplane-trixie ]; then
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >/etc/apt/preferences.d/backplane-trixie
  fi
  update
}

case "${1:-}" in
  trixie) trixie ;;
  nats)
    if ! nats-server --version 2>/dev/null | grep -q 'v2\.1[0-9]'; then
      trixie
      apt-get install -y -qq -t trixie nats-server >/dev/null
    fi
    nats-server --version
    ;;
  etcd)
    if ! etcd --version 2>/dev/null | grep -q 'etcd Version: 3\.5'; then
      trixie
      apt-get install -y -qq -t trixie etcd-server >/dev/null
    fi
    etcd --version | head -n1
    ;;
  docker)
    if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
      update
      apt-get install -y -qq docker.io debootstrap >/dev/null
    fi
    if ! docker compose version >/dev/null 2>&1; then
      trixie
      apt-get install -y -qq -t trixie docker-compose >/dev/null
    fi
    ;;
  compose-v1)
    dir=${2:?a directory}
    update
    apt-get install -y -qq python3-cached-property python3-distro python3-docker python3-dockerpty \
      python3-docopt python3-dotenv python3-jsonschema python3-requests python3-texttable \
      python3-websocket python3-yaml python3-distutils >/dev/null
    mkdir -p "$dir" && chmod 777 "$dir"
    version=$(apt-cache madison docker-compose | awk '$3 ~ /^1\./ { print $3; exit }')
    (cd "$dir" && apt-get download -qq "docker-compose=$version" 2>/dev/null && dpkg -x docker-compose_*.deb root)
    ;;
  *)
    echo "usage: $0 trixie | nats | etcd | docker | compose-v1 DIR" >&2
    exit 2
    ;;
esac
