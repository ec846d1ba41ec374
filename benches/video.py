"""What a video's thumbnail costs: probe + poster + resize + encode, by length of video.

Usage: video.py GATEWAY_BINARY [WORK_DIR]   (default WORK_DIR: target/bench-corpus/video)

Makes 1920×1080 H.264 clips with FFmpeg's testsrc2 (10 s and 60 s, 30 fps, 400 kbit/s, a
keyframe every 2 s), and a two-hour one by copying the 60 s clip's stream 120 times (no re-encoding). Starts
GATEWAY_BINARY alone (embedded queue and store, workers in-process) and, for each clip,
uploads it as a multipart file three times one after another, waiting for each record to be
final; prints the median time from the 202 to the final record, and that per minute of video.

Then, apart from the service, the fixed cost of running FFmpeg as a subprocess (ffprobe and
ffmpeg started with `-version`: exec, dynamic linking, initialisation), which is what a
library binding would save per video, and the peak RSS of the ffprobe and ffmpeg runs the
worker makes for each clip (the same arguments, under /usr/bin/time).
"""

import http.client
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from process import wait_final, wait_ready

ROOT = pathlib.Path(__file__).resolve().parent.parent
BINARY = pathlib.Path(sys.argv[1]).resolve()
WORK = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else ROOT / "target/bench-corpus/video")
PORT = 18084
BOUNDARY = "thumbnailify-bench-boundary"
RUNS = 3


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_clips():
    WORK.mkdir(parents=True, exist_ok=True)
    clips = {}
    for seconds in (10, 60):
        path = WORK / f"clip-1080p-{seconds}s.mp4"
        if not path.exists():
            ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", str(seconds),
                   "-c:v", "libx264", "-preset", "veryfast", "-b:v", "400k", "-maxrate", "400k",
                   "-bufsize", "800k", "-g", "60",
                   "-pix_fmt", "yuv420p", str(path))
        clips[f"1080p, {seconds} s"] = (path, seconds)
    film = WORK / "clip-1080p-7200s.mp4"
    if not film.exists():
        listing = WORK / "concat.txt"
        listing.write_text("".join(f"file '{WORK / 'clip-1080p-60s.mp4'}'\n" for _ in range(120)))
        ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(film))
    clips["1080p, 2 h"] = (film, 7200)
    return clips


def upload(path):
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"video\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: video/mp4\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    size = len(head) + path.stat().st_size + len(tail)

    def body():
        yield head
        with open(path, "rb") as file:
            while chunk := file.read(1 << 20):
                yield chunk
        yield tail

    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    try:
        connection.request("POST", "/images", body=body(), headers={
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(size),
        })
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 202, answer
        return answer["items"][0]["media_id"]
    finally:
        connection.close()



def service(clips):
    data = tempfile.mkdtemp(prefix="thumbnailify-video-")
    pathlib.Path(data, "config.yaml").write_text(
        f"listen: 127.0.0.1:{PORT}\ndata_dir: {data}\ndedup: false\n"
        "limits: {max_video_bytes: 4294967296, max_request_bytes: 4294967296}\n"
    )
    gateway = subprocess.Popen([BINARY], cwd=data, env={"RUST_LOG": "warn", "PATH": "/usr/bin:/bin"})
    try:
        wait_ready(PORT)
        print("| video | size | time to the thumbnail (median of 3) | per minute of video |")
        print("|---|---:|---:|---:|")
        for name, (path, seconds) in clips.items():
            times = []
            for _ in range(RUNS):
                media_id = upload(path)
                started = time.monotonic()
                record = wait_final(PORT, media_id)
                times.append(time.monotonic() - started)
                assert record["state"] == "Completed", record
            median = statistics.median(times)
            print(f"| {name} | {path.stat().st_size / 1e6:.0f} MB | {median * 1000:.0f} ms "
                  f"| {median * 1000 / (seconds / 60):.1f} ms |")
    finally:
        gateway.terminate()
        gateway.wait()
        shutil.rmtree(data, ignore_errors=True)


def timed(command):
    """Wall seconds and peak RSS (KiB) of one run of `command`."""
    started = time.monotonic()
    run = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True, check=True)
    return time.monotonic() - started, int(run.stderr.decode().strip().splitlines()[-1])


def tools(clips):
    spawn = [min(timed([tool, "-version"])[0] for _ in range(10)) for tool in ("ffprobe", "ffmpeg")]
    print()
    print(f"Starting the tools: ffprobe -version {spawn[0] * 1000:.0f} ms, "
          f"ffmpeg -version {spawn[1] * 1000:.0f} ms (best of 10).")
    print()
    print("| video | ffprobe peak RSS | ffmpeg poster peak RSS |")
    print("|---|---:|---:|")
    for name, (path, seconds) in clips.items():
        probe = ["ffprobe", "-v", "error", "-protocol_whitelist", "file", "-f", "mov",
                 "-select_streams", "v:0", "-show_entries", "format=duration:stream=width,height",
                 "-of", "json", "-i", f"file:{path}"]
        at = f"{min(seconds * 0.1, 30):.3f}"
        poster = ["ffmpeg", "-nostdin", "-loglevel", "error", "-threads", "2",
                  "-protocol_whitelist", "file", "-f", "mov", "-ss", at, "-t", "10",
                  "-i", f"file:{path}", "-map", "0:v:0", "-an", "-sn", "-dn", "-vf",
                  "format=yuv420p,signalstats,metadata=mode=select:key=lavfi.signalstats.YAVG"
                  ":value=32:function=greater,scale=1920:1080",
                  "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-y", "/dev/null"]
        print(f"| {name} | {timed(probe)[1] / 1024:.0f} MiB | {timed(poster)[1] / 1024:.0f} MiB |")


clips = make_clips()
service(clips)
tools(clips)
