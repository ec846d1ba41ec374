"""What the benchmark scripts share: a fresh RabbitMQ vhost, and the environment of a gateway
on it (127.0.0.1:5672, guest/guest)."""

import os
import subprocess
import uuid


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, stdout=subprocess.DEVNULL)


def fresh_vhost():
    """A new vhost the guest user may use; delete it with `rabbitmqctl("delete_vhost", name)`."""
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost


def gateway_env(port, data, vhost):
    """The environment of a gateway (or worker) listening on `port`, with its data in `data`
    and its queue in `vhost`."""
    return dict(
        os.environ,
        THUMBNAILIFY_LISTEN=f"127.0.0.1:{port}",
        THUMBNAILIFY_DATA_DIR=data,
        THUMBNAILIFY_QUEUE_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        RUST_LOG="warn",
    )
