#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on their standard local ports (and, with
# `chromium`, that Debian's Chromium is installed for browser tests; with `wrk`, the load
# generator `make bench` uses). Installs them from
# Debian's packages when absent; starts them when down. Idempotent.
set -euo pipefail

want_chromium=0
want_wrk=0
for arg in "$@"; do
  [ "$arg" = "chromium" ] && want_chromium=1
  [ "$arg" = "wrk" ] && want_wrk=1
done

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && read -r -t 2 line <&3 && [[ "$line" == "+PONG"* ]]) 2>/dev/null; }

if ! pg_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "services: installing PostgreSQL" >&2; $SUDO bash -c "$(declare -f apt_install); apt_updated=0; apt_install postgresql"
  fi
  version=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q "tokenforge-trust" "$conf" 2>/dev/null; then
    $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust # tokenforge-trust' "$conf"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "services: PostgreSQL did not come up" >&2; exit 1; }
fi
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test" >/dev/null

if ! redis_up; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "services: installing Redis" >&2; $SUDO bash -c "$(declare -f apt_install); apt_updated=0; apt_install redis-server"
  fi
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 20); do redis_up && break; sleep 0.5; done
  redis_up || { echo "services: Redis did not come up" >&2; exit 1; }
fi

if [ "$want_chromium" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  echo "services: installing Chromium" >&2; $SUDO bash -c "$(declare -f apt_install); apt_updated=0; apt_install chromium"
fi
if [ "$want_wrk" = 1 ] && ! command -v wrk >/dev/null 2>&1; then
  echo "services: installing wrk" >&2; $SUDO bash -c "$(declare -f apt_install); apt_updated=0; apt_install wrk"
fi
echo "services: PostgreSQL and Redis are up"
