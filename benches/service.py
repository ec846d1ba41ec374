"""Service benchmark: Locust against the real binaries, and the bare references beside them.

Usage: service.py CORPUS_DIR SECONDS USERS RESULTS_DIR  (scripts/bench calls it)

1. For each set-up — the embedded queue, then RabbitMQ (127.0.0.1:5672, guest/guest, a fresh
   vhost) with 1 and with 2 `worker` processes, then the fleet (two gateways and two workers
   sharing RabbitMQ, PostgreSQL on 127.0.0.1:5432 in a fresh schema and an s3s-fs server,
   Locust users spread over both gateways), and the same fleet on Redis Streams (a
   redis-server of its own, `appendonly yes`, `appendfsync always`: every acknowledged job on
   disk, as a quorum queue confirms) — starts target/release/gateway (and workers) on a
   fresh data directory and runs `locustfile.py` headless: USERS users for SECONDS, each
   looping upload (base64 of a corpus photo) → poll until final → fetch thumbnail → delete.
   Locust's CSV files are kept in RESULTS_DIR/<set-up>_*.csv. THUMBNAILIFY_BENCH_SETUPS
   (comma-separated labels) runs only those set-ups, and skips the references and memory;
   THUMBNAILIFY_BENCH_GATEWAY names another gateway binary (an earlier release, to compare).
2. The references: the same corpus files, round after round for about SECONDS, through
   `vipsthumbnail --export-profile srgb` (one process per file list, VIPS_CONCURRENCY=1) and
   through Pillow's `Image.thumbnail` with ImageCms's conversion to sRGB when the file has a
   profile (benches/pillow_thumbnail.py's work, colour managed as the service is), each as
   two processes, one per core.

3. Memory, on RabbitMQ: the gateway's peak RSS growth (VmHWM) while 16 clients upload the
   largest JPEG of the corpus at once, per upload and against the upload's size; then one
   `worker` process's peak RSS after thumbnailing that JPEG, against a full RGB decode of it.

Prints Markdown tables: uploads accepted/s, thumbnails completed/s, POST p50/p99 and failures
for ours; thumbnails/s for the references; the memory figures.
"""

import base64
import concurrent.futures
import csv
import http.client
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

from rabbit import fresh_vhost, gateway_env, rabbitmqctl

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS, SECONDS, USERS, RESULTS = (
    pathlib.Path(sys.argv[1]).resolve(),
    int(sys.argv[2]),
    int(sys.argv[3]),
    pathlib.Path(sys.argv[4]),
)
PORT = 18080
RELEASE = ROOT / "target" / "release"
GATEWAY = pathlib.Path(os.environ.get("THUMBNAILIFY_BENCH_GATEWAY", RELEASE / "gateway"))
# The formats Locust uploads (locustfile.py's MEDIA_TYPES), so that the references thumbnail
# the same files: not the corpus's JPEG XL, HEIC and AVIF, which Pillow cannot all read.
MIX = {".jpg", ".png", ".gif", ".webp", ".tiff", ".bmp"}
FILES = sorted(p for p in CORPUS.iterdir() if p.suffix in MIX and not p.name.startswith("."))


def wait_healthy(url, process):
    for _ in range(300):
        if process.poll() is not None:
            sys.exit(f"the gateway exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the gateway did not become healthy")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(sql):
    url = os.environ.get("THUMBNAILIFY_TEST_DATABASE_URL", "postgres://root:root@127.0.0.1:5432/test")
    subprocess.run(["psql", url, "-qc", sql], check=True)
    return url


def run_locust(label, hosts):
    """Runs Locust headless against `hosts` (users spread over them); returns its summary."""
    prefix = RESULTS / label
    subprocess.run(
        [
            sys.executable, "-m", "locust", "-f", ROOT / "locustfile.py", "--headless", "--only-summary",
            "-u", str(USERS), "-r", str(USERS), "-t", f"{SECONDS}s",
            "--host", hosts[0], "--csv", prefix, "--loglevel", "WARNING",
        ],
        env=dict(os.environ, THUMBNAILIFY_LOAD_IMAGES=str(CORPUS), THUMBNAILIFY_LOAD_HOSTS=",".join(hosts)),
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return summarize(prefix)


def start_redis():
    """A redis-server of the benchmark's own on a free port, every write fsynced before its
    reply; returns the process, its URL and its directory."""
    directory = tempfile.mkdtemp(prefix="thumbnailify-redis-")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "yes", "--appendfsync", "always", "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        answer = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True)
        if answer.stdout.startswith(b"PONG"):
            return process, f"redis://127.0.0.1:{port}/0", directory
        time.sleep(0.1)
    raise RuntimeError("redis-server did not start")


def run_fleet(label, queue):
    """One Locust run against two gateways and two workers sharing the queue (`rabbitmq` or
    `redis`), PostgreSQL and S3 (s3s-fs), with no directory in common."""
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    redis = None
    if queue == "redis":
        redis, queue_url, redis_dir = start_redis()
    else:
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        queue_url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    database = psql(f"CREATE SCHEMA {schema}")
    s3_root = tempfile.mkdtemp(prefix="thumbnailify-s3-")
    os.mkdir(os.path.join(s3_root, "bench"))
    s3_port = free_port()
    s3 = subprocess.Popen(
        ["s3s-fs", "--host", "127.0.0.1", "--port", str(s3_port), "--access-key", "bench",
         "--secret-key", "bench-secret", s3_root],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    separator = "&" if "?" in database else "?"
    env = dict(
        os.environ,
        THUMBNAILIFY_QUEUE_URL=queue_url,
        THUMBNAILIFY_STORE_URL=f"{database}{separator}options=-c%20search_path%3D{schema}",
        THUMBNAILIFY_MEDIA_URL="s3://bench",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench-secret",
        AWS_ALLOW_HTTP="true",
        RUST_LOG="warn",
    )
    cwd = tempfile.mkdtemp(prefix="thumbnailify-fleet-")
    write_bench_config(cwd)
    ports = [PORT, PORT + 1]
    processes = []
    try:
        for port in ports:
            gateway = subprocess.Popen(
                [GATEWAY], env=dict(env, THUMBNAILIFY_LISTEN=f"127.0.0.1:{port}"), cwd=cwd
            )
            processes.append(gateway)
            wait_healthy(f"http://127.0.0.1:{port}", gateway)
        for _ in range(2):
            processes.append(subprocess.Popen([RELEASE / "worker"], env=env, cwd=cwd))
        return run_locust(label, [f"http://127.0.0.1:{port}" for port in ports])
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        s3.kill()
        s3.wait()
        if redis:
            redis.kill()
            redis.wait()
            shutil.rmtree(redis_dir, ignore_errors=True)
        else:
            rabbitmqctl("delete_vhost", vhost)
        psql(f"DROP SCHEMA {schema} CASCADE")
        shutil.rmtree(s3_root, ignore_errors=True)
        shutil.rmtree(cwd, ignore_errors=True)


def write_bench_config(directory):
    """The load sends the same photos again and again: with deduplication on, every upload
    after the first of each would complete from copies, and the run would measure that
    instead of thumbnailing. The processes read ./config.yaml."""
    (pathlib.Path(directory) / "config.yaml").write_text("dedup: false\n")


def run_ours(label, workers):
    """One Locust run against a fresh gateway; `workers` None means the embedded queue."""
    data = tempfile.mkdtemp(prefix="thumbnailify-bench-")
    env = dict(
        os.environ,
        THUMBNAILIFY_LISTEN=f"127.0.0.1:{PORT}",
        THUMBNAILIFY_DATA_DIR=data,
        RUST_LOG="warn",
    )
    vhost = None
    if workers is not None:
        vhost = f"bench-{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        env["THUMBNAILIFY_QUEUE_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    write_bench_config(data)
    processes = [subprocess.Popen([GATEWAY], env=env, cwd=data)]
    url = f"http://127.0.0.1:{PORT}"
    try:
        wait_healthy(url, processes[0])
        for _ in range(workers or 0):
            processes.append(subprocess.Popen([RELEASE / "worker"], env=env, cwd=data))
        return run_locust(label, [url])
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)
        if vhost:
            rabbitmqctl("delete_vhost", vhost)
        shutil.rmtree(data, ignore_errors=True)


def summarize(prefix):
    with open(f"{prefix}_stats.csv") as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    post = rows["POST /images"]
    thumbnails = rows.get("GET /images/{id}/thumbnail", {"Request Count": "0", "Failure Count": "0"})
    completed = int(thumbnails["Request Count"]) - int(thumbnails["Failure Count"])
    accepted = int(post["Request Count"]) - int(post["Failure Count"])
    return {
        "uploads/s": accepted / SECONDS,
        "thumbnails/s": completed / SECONDS,
        "p50": float(post["50%"]),
        "p99": float(post["99%"]),
        "failures": int(rows["Aggregated"]["Failure Count"]),
    }


PILLOW_WORKER = """
import io, sys
from PIL import Image, ImageCms

SRGB = ImageCms.createProfile("sRGB")
for path in sys.argv[1:]:
    with Image.open(path) as image:
        image.thumbnail((100, 100))
        icc = image.info.get("icc_profile")
        if icc and image.mode in ("RGB", "RGBA", "CMYK", "L"):
            # Colour managed as the service is: the thumbnail converted to sRGB (LittleCMS).
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            mode = "RGBA" if image.mode == "RGBA" else "RGB"
            image = ImageCms.profileToProfile(image, source, SRGB, outputMode=mode)
        out = io.BytesIO()
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            image.save(out, "PNG")
        else:
            image.convert("RGB").save(out, "JPEG", quality=85)
"""


def run_reference(make_command):
    """Thumbnails/s of two processes of `make_command(out_dir) + files`, over enough rounds of
    the corpus to keep them busy for about SECONDS/2 (timed on one round first)."""
    out = tempfile.mkdtemp(prefix="thumbnailify-ref-")
    command = make_command(out)
    env = dict(os.environ, VIPS_CONCURRENCY="1")
    try:
        start = time.monotonic()
        subprocess.run(command + [str(p) for p in FILES], check=True, env=env, cwd=out)
        one_round = time.monotonic() - start
        rounds = max(1, round(SECONDS / one_round))  # two processes: each does half the rounds
        files = [str(p) for p in FILES] * rounds
        start = time.monotonic()
        halves = [files[0::2], files[1::2]]
        processes = [subprocess.Popen(command + half, env=env, cwd=out) for half in halves]
        for process in processes:
            if process.wait() != 0:
                sys.exit(f"{command[0]} failed")
        return len(files) / (time.monotonic() - start)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def post(path, media_type, body):
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
    connection.request("POST", path, body=body, headers={"Content-Type": media_type})
    response = connection.getresponse()
    answer = json.loads(response.read())
    connection.close()
    return response.status, answer


def get_json(path):
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}{path}", timeout=10) as response:
        return json.loads(response.read())


def run_memory():
    """Gateway memory per concurrent upload, and a worker's peak RSS on the largest JPEG."""
    from PIL import Image

    jpeg = max((p for p in FILES if p.suffix == ".jpg"), key=lambda p: Image.open(p).size[0])
    width, height = Image.open(jpeg).size
    raw = jpeg.read_bytes()
    body = base64.b64encode(raw)
    clients = 16
    data = tempfile.mkdtemp(prefix="thumbnailify-mem-")
    vhost = fresh_vhost()
    env = gateway_env(PORT, data, vhost)
    gateway = subprocess.Popen([GATEWAY], env=env, cwd=data)
    worker = None
    try:
        wait_healthy(f"http://127.0.0.1:{PORT}", gateway)
        post("/images", "image/png", base64.b64encode((ROOT / "tests/fixtures/small.png").read_bytes()))
        before = peak_rss_kib(gateway.pid)
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            answers = list(pool.map(lambda _: post("/images", "image/jpeg", body), range(clients)))
        assert all(status == 202 for status, _ in answers), answers
        growth = (peak_rss_kib(gateway.pid) - before) * 1024 / clients
        # One job at a time, so that the peak is one thumbnail's.
        (pathlib.Path(data) / "config.yaml").write_text("worker:\n  concurrency: 1\n")
        worker = subprocess.Popen([RELEASE / "worker"], env=env, cwd=data)
        media_id = answers[0][1]["media_id"]
        for _ in range(1200):
            if get_json(f"/images/{media_id}")["state"] in ("Completed", "Error"):
                break
            time.sleep(0.1)
        worker_rss = peak_rss_kib(worker.pid) * 1024
    finally:
        for process in (worker, gateway):
            if process:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
        rabbitmqctl("delete_vhost", vhost)
        shutil.rmtree(data, ignore_errors=True)
    mb = 1024 * 1024
    full = width * height * 3
    print()
    print(f"memory: {jpeg.name} ({width}×{height}, {len(raw) / mb:.1f} MB, base64 {len(body) / mb:.1f} MB)")
    print("| measure | MB | against | ratio |")
    print("|---|---|---|---|")
    print(
        f"| gateway RSS growth per concurrent upload ({clients} at once) | {growth / mb:.1f} "
        f"| upload size {len(raw) / mb:.1f} MB | {growth / len(raw):.2f}× |"
    )
    print(
        f"| worker peak RSS (whole process, one job at a time) | {worker_rss / mb:.1f} "
        f"| full RGB decode {full / mb:.1f} MB | {worker_rss / full:.2f}× |"
    )


def main():
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"service: {USERS} Locust users, {SECONDS} s per set-up, {len(FILES)} corpus files")
    print("| set-up | uploads accepted/s | thumbnails completed/s | POST p50 ms | POST p99 ms | failures |")
    print("|---|---|---|---|---|---|")
    only = [label for label in os.environ.get("THUMBNAILIFY_BENCH_SETUPS", "").split(",") if label]
    setups = [
        ("embedded", None),
        ("rabbitmq-1-worker", 1),
        ("rabbitmq-2-workers", 2),
        ("fleet-2-gateways-2-workers", "rabbitmq"),
        ("fleet-redis-2-gateways-2-workers", "redis"),
    ]
    for label, workers in setups:
        if only and label not in only:
            continue
        if isinstance(workers, str):
            r = run_fleet(label, workers)
        else:
            r = run_ours(label, workers)
        print(
            f"| {label} | {r['uploads/s']:.1f} | {r['thumbnails/s']:.1f} | {r['p50']:.0f} "
            f"| {r['p99']:.0f} | {r['failures']} |",
            flush=True,
        )
    if only:
        return
    vips = run_reference(
        lambda out: [
            "vipsthumbnail", "--size", "100x100", "--export-profile", "srgb",
            "-o", f"{out}/%s.jpg[Q=85]",
        ]
    )
    pillow = run_reference(lambda out: ["python3", "-c", PILLOW_WORKER])
    print(f"| vipsthumbnail --export-profile srgb, 2 processes (bare, no HTTP) | | {vips:.1f} | | | |")
    print(f"| Pillow Image.thumbnail + ImageCms to sRGB, 2 processes (bare, no HTTP) | | {pillow:.1f} | | | |")
    run_memory()


main()
