# Helpers the scripts share: installing what they need on a fresh Debian machine, and RabbitMQ.
# Sourced, not run.

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
# ensure_command COMMAND PACKAGE: installs PACKAGE from Debian's packages unless COMMAND exists.
ensure_command() {
  if command -v "$1" >/dev/null 2>&1; then return; fi
  echo "installing $2 from Debian's packages"
  if [ -z "$apt_updated" ]; then
    sudo_if_needed apt-get update -qq
    apt_updated=1
  fi
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# ensure_python_module MODULE REQUIREMENT: pip-installs REQUIREMENT unless MODULE imports.
ensure_python_module() {
  if python3 -c "import $1" 2>/dev/null; then return; fi
  echo "installing $2 from PyPI"
  python3 -m pip install --quiet "$2"
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
