"""Load for Thumbnailify: users upload real photos as base64, wait until the job is final,
fetch the thumbnail and delete it.

    pip install locust
    locust -f locustfile.py --headless -u 16 -r 16 -t 30s --host http://127.0.0.1:8080 \
        --csv results/run

Images come from THUMBNAILIFY_LOAD_IMAGES (a directory; default: tests/fixtures), every
.jpg/.png/.gif/.webp/.tiff/.bmp in it except the deliberately hostile ones. With
THUMBNAILIFY_LOAD_HOSTS (base URLs, comma-separated), users are spread over those gateways
instead of --host, each user keeping one. Waiting and
deleting are reported under their own names; a job that ends in Error counts as a failure.

Locust shares the machine with the service in the benchmarks, so each user is cheap on CPU:
FastHttpUser (geventhttpclient) rather than requests, and one `GET /images/{id}?wait=N` that
the gateway answers when the record is final, as a client that can wait does, rather than
polls (THUMBNAILIFY_LOAD_POLL=1 polls instead, backing off from 20 ms to at most 500 ms).
"""

import base64
import os
import pathlib
import random
import time

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".tiff": "image/tiff",
    ".bmp": "image/bmp",
}
IMAGE_DIR = pathlib.Path(
    os.environ.get("THUMBNAILIFY_LOAD_IMAGES", pathlib.Path(__file__).parent / "tests" / "fixtures")
)
IMAGES = [
    (path.name, MEDIA_TYPES[path.suffix.lower()], base64.b64encode(path.read_bytes()))
    for path in sorted(IMAGE_DIR.iterdir())
    if path.suffix.lower() in MEDIA_TYPES and not path.name.startswith(("hostile-", "bomb-"))
]
FIRST_POLL = 0.02
POLL_BACKOFF = 1.5
MAX_POLL_INTERVAL = 0.5
POLL_TIMEOUT = 60.0
WAIT_SECS = 30
POLL = os.environ.get("THUMBNAILIFY_LOAD_POLL") == "1"
HOSTS = [host for host in os.environ.get("THUMBNAILIFY_LOAD_HOSTS", "").split(",") if host]
USERS_MADE = 0


class Uploader(FastHttpUser):
    wait_time = between(0, 0.1)

    def __init__(self, environment):
        global USERS_MADE
        if HOSTS:
            self.host = HOSTS[USERS_MADE % len(HOSTS)]
            USERS_MADE += 1
        super().__init__(environment)

    @task
    def thumbnail_round_trip(self):
        name, media_type, body = random.choice(IMAGES)
        with self.client.post(
            f"/images?name={name}",
            data=body,
            headers={"Content-Type": media_type},
            name="POST /images",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            media_id = response.json()["media_id"]

        deadline = time.monotonic() + POLL_TIMEOUT
        interval = FIRST_POLL
        path = f"/images/{media_id}" if POLL else f"/images/{media_id}?wait={WAIT_SECS}"
        while True:
            with self.client.get(path, name="GET /images/{id}", catch_response=True) as response:
                record = response.json()
                if record["state"] == "Error":
                    response.failure(f"job failed: {record['message']}")
                    return
                if record["state"] == "Completed":
                    break
                if time.monotonic() > deadline:
                    response.failure("still processing after 60 s")
                    return
            if POLL:
                time.sleep(interval)
                interval = min(interval * POLL_BACKOFF, MAX_POLL_INTERVAL)

        self.client.get(
            f"/images/{media_id}/thumbnail",
            headers={"Accept": "image/*"},
            name="GET /images/{id}/thumbnail",
        )
        self.client.delete(f"/images/{media_id}", name="DELETE /images/{id}")
