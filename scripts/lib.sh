# Helpers the scripts share: installing what they need on a fresh Debian machine, and RabbitMQ.
# Sourced, not run.

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
# apt_install PACKAGE: installs PACKAGE from Debian's packages.
apt_install() {
  echo "installing $1 from Debian's packages"
  if [ -z "$apt_updated" ]; then
    sudo_if_needed apt-get update -qq
    apt_updated=1
  fi
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

# ensure_command COMMAND PACKAGE: installs PACKAGE from Debian's packages unless COMMAND exists.
ensure_command() {
  if command -v "$1" >/dev/null 2>&1; then return; fi
  apt_install "$2"
}

# ensure_pkg_config MODULE PACKAGE: installs PACKAGE unless pkg-config knows MODULE.
ensure_pkg_config() {
  ensure_command pkg-config pkg-config
  if pkg-config --exists "$1"; then return; fi
  apt_install "$2"
}

# ensure_python_module MODULE REQUIREMENT: pip-installs REQUIREMENT unless MODULE imports.
ensure_python_module() {
  if python3 -c "import $1" 2>/dev/null; then return; fi
  echo "installing $2 from PyPI"
  python3 -m pip install --quiet "$2"
}

# What the default build's native codecs need beyond a C compiler: cmake and nasm, to build
# libjpeg-turbo (the `turbojpeg` feature) from its bundled source; g++, pkg-config and
# Debian's libde265, dav1d and libaom, to build libheif (the `heif` feature: HEIC and AVIF in,
# AVIF out) from its bundled source against them.
ensure_native_build_tools() {
  ensure_command cmake cmake
  ensure_command nasm nasm
  ensure_command g++ g++
  ensure_pkg_config libde265 libde265-dev
  ensure_pkg_config dav1d libdav1d-dev
  ensure_pkg_config aom libaom-dev
}

broker_answers() {
  (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null
}

# Makes sure RabbitMQ answers on 127.0.0.1:5672: the running broker, else an installed
# rabbitmq-server started, else one installed from Debian's packages and started.
ensure_rabbitmq() {
  if broker_answers; then
    echo "RabbitMQ answers on 127.0.0.1:5672"
    return
  fi
  ensure_command rabbitmq-server rabbitmq-server
  if ! broker_answers; then
    echo "starting rabbitmq-server"
    sudo_if_needed rabbitmq-server -detached || true
  fi
  for _ in $(seq 1 120); do
    if broker_answers && sudo_if_needed rabbitmqctl -q await_startup >/dev/null 2>&1; then
      echo "RabbitMQ is up"
      return
    fi
    sleep 1
  done
  echo "RabbitMQ did not start on 127.0.0.1:5672" >&2
  exit 1
}

postgres_answers() {
  (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
}

# The database the tests use. With a role and password of their own it works with the trust
# authentication of a development machine and with Debian's default (password over TCP).
TEST_DATABASE_URL=postgres://root:root@127.0.0.1:5432/test

# Makes sure PostgreSQL answers on 127.0.0.1:5432 with the database `test` that role `root`
# (password `root`) owns: the running server, else an installed cluster started, else
# PostgreSQL installed from Debian's packages and started. Installs psql when absent.
ensure_postgres() {
  ensure_command psql postgresql-client
  if ! postgres_answers; then
    ensure_command pg_ctlcluster postgresql
    local version
    version=$(ls /etc/postgresql | sort -V | tail -1)
    echo "starting PostgreSQL $version"
    sudo_if_needed pg_ctlcluster "$version" main start || true
    for _ in $(seq 1 60); do
      postgres_answers && break
      sleep 1
    done
    postgres_answers || { echo "PostgreSQL did not start on 127.0.0.1:5432" >&2; exit 1; }
  fi
  if ! psql "$TEST_DATABASE_URL" -qc 'SELECT 1' >/dev/null 2>&1; then
    echo "creating the role root and the database test"
    local sql
    sql=$(mktemp)
    cat > "$sql" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'root') THEN
    CREATE ROLE root SUPERUSER LOGIN PASSWORD 'root';
  ELSE
    ALTER ROLE root PASSWORD 'root';
  END IF;
END $$;
SQL
    chmod 644 "$sql"
    sudo_if_needed su postgres -c "psql -q -f $sql"
    rm -f "$sql"
    sudo_if_needed su postgres -c "createdb -O root test" 2>/dev/null || true
  fi
  psql "$TEST_DATABASE_URL" -qc 'SELECT 1' >/dev/null
  echo "PostgreSQL answers on 127.0.0.1:5432"
  export THUMBNAILIFY_TEST_DATABASE_URL="$TEST_DATABASE_URL"
}

# Makes sure s3s-fs (a real S3 server over a directory, from crates.io) is on the PATH, for
# the S3 tests: builds it once with cargo; later runs find it in ~/.cargo/bin.
ensure_s3s_fs() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if command -v s3s-fs >/dev/null 2>&1; then return; fi
  echo "installing s3s-fs from crates.io"
  cargo install --quiet s3s-fs --version 0.14.1 --features binary --locked
}

# gateway_start PORT [VAR=VALUE...]: starts the debug gateway (embedded queue) on
# 127.0.0.1:PORT with a fresh data directory and the given environment, and waits until it
# answers. Sets $gateway (its pid) and $gateway_data; gateway_stop (also run at exit) stops
# it and removes the directory.
gateway_start() {
  local port=$1
  shift
  gateway_data=$(mktemp -d)
  env THUMBNAILIFY_LISTEN="127.0.0.1:$port" THUMBNAILIFY_DATA_DIR="$gateway_data" \
    THUMBNAILIFY_SERVER__DRAIN_SECS=0 RUST_LOG=warn "$@" target/debug/gateway &
  gateway=$!
  trap gateway_stop EXIT
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; then return; fi
    sleep 0.1
  done
  echo "the gateway did not answer on 127.0.0.1:$port" >&2
  return 1
}

gateway_stop() {
  if [ -n "${gateway:-}" ]; then
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
    rm -rf "$gateway_data"
    gateway=
  fi
  trap - EXIT
}
