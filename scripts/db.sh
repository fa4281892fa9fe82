#!/usr/bin/env bash
# A project-local PostgreSQL for `make run`, `make test` and `make bench` when DATABASE_URL is
# not set: a cluster in .pgdata/, listening only on a Unix socket in that directory (so it can
# never clash with a server on port 5432), superuser `postgres`, database `dmarcpipe`.
#
#   scripts/db.sh up     install PostgreSQL if missing, create and start the cluster
#   scripts/db.sh down   stop it
#   scripts/db.sh url    print its DATABASE_URL
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
data="$root/.pgdata"
port=54329
url="postgres://postgres@localhost:$port/dmarcpipe?host=$data"

pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$dir" ] && command -v pg_config >/dev/null; then dir="$(pg_config --bindir)"; fi
  echo "$dir"
}

# Runs a server binary as the cluster owner: PostgreSQL refuses to run as root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Installs PostgreSQL the way every package is installed (waiting for other apt processes).
install_postgres() {
  if [ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ]; then return; fi
  "$root/scripts/packages.sh" postgresql
}

up() {
  install_postgres
  local bin; bin="$(pg_bin)"
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$data"; chmod 700 "$data"; fi
    as_owner "$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -o "-p $port -k $data -c listen_addresses='' -c max_connections=200" start >/dev/null
  fi
  if ! as_owner "$bin/psql" -h "$data" -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'dmarcpipe'" postgres | grep -q 1; then
    as_owner "$bin/createdb" -h "$data" -p "$port" -U postgres dmarcpipe
  fi
  echo "PostgreSQL is up: DATABASE_URL=$url" >&2
}

down() {
  local bin; bin="$(pg_bin)"
  if [ -n "$bin" ] && [ -f "$data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    echo "PostgreSQL in $data stopped" >&2
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  url) echo "$url" ;;
  *) echo "usage: $0 up|down|url" >&2; exit 2 ;;
esac
