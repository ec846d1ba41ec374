//! Videos end to end through a real gateway and FFmpeg: every container and codec of the
//! fixtures gets a poster thumbnail matching FFmpeg's own frame (made by
//! `tests/fixtures/make_video.sh`), its duration and stream facts; display rotation and a
//! black opening are handled; videos have their own size limit, reached through multipart;
//! and without FFmpeg, videos are refused with the tool named while images go on. A tool
//! that runs out of time is tried again before it is the file's fault, and FFmpeg's
//! processes die with the process that started them.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::form::{Form, first_media_id, post_form};
use support::{Backend, Gateway, difference_from_expected, fixture, media_type_of};

/// Mean absolute difference (0–255 per channel) allowed between our poster thumbnail and
/// FFmpeg's: a different frame is far over it.
const TOLERANCE: f64 = 8.0;

/// (fixture, upright width and height, codec, duration in seconds, frames per second,
/// rotation clockwise)
const CLIPS: &[(&str, u32, u32, &str, f64, f64, u16)] = &[
    ("video-h264.mp4", 320, 240, "h264", 4.0, 25.0, 0),
    ("video-vp9.webm", 320, 240, "vp9", 4.0, 25.0, 0),
    ("video-hevc.mkv", 320, 240, "hevc", 2.0, 25.0, 0),
    ("video-hevc-10bit.mkv", 320, 240, "hevc", 2.0, 25.0, 0),
    ("video-mpeg4.avi", 320, 240, "mpeg4", 2.0, 25.0, 0),
    ("video-rotated.mp4", 240, 320, "h264", 3.0, 30.0, 270),
    ("video-black-start.mov", 320, 240, "h264", 6.0, 25.0, 0),
];

async fn every_clip_gets_a_poster_and_its_facts(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let mut ids = Vec::new();
    for (name, ..) in CLIPS {
        let answer = gateway.upload(media_type_of(name), &fixture(name)).await;
        assert_eq!(answer.status, 202, "{name}");
        let record = answer.json();
        assert_eq!(
            record["duration"],
            Value::Null,
            "{name}: unknown until probed"
        );
        assert_eq!(record["media_type"], media_type_of(name));
        ids.push(answer.media_id());
    }
    for ((name, width, height, codec, duration, fps, rotation), id) in CLIPS.iter().zip(&ids) {
        let record = gateway.wait_final(id).await;
        assert_eq!(record["state"], "Completed", "{name}: {record}");
        assert_eq!(
            (record["width"].as_u64(), record["height"].as_u64()),
            (Some(u64::from(*width)), Some(u64::from(*height))),
            "{name}: upright size"
        );
        let measured = record["duration"].as_f64().expect("a duration");
        assert!((measured - duration).abs() < 0.1, "{name}: {measured} s");
        let video = &record["video"];
        assert_eq!(video["codec"], *codec, "{name}");
        assert_eq!(video["fps"].as_f64(), Some(*fps), "{name}");
        assert_eq!(video["rotation"], *rotation, "{name}");
        assert_eq!(
            (video["width"].as_u64(), video["height"].as_u64()),
            (Some(320), Some(240)),
            "{name}: as stored"
        );

        let answer = gateway.thumbnail(id).await;
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(answer.header("content-type").as_deref(), Some("image/jpeg"));
        let image = image::load_from_memory(&answer.body).unwrap();
        let fitted = if width > height { (100, 75) } else { (75, 100) };
        assert_eq!((image.width(), image.height()), fitted, "{name}");
        let difference = difference_from_expected(&image, name);
        assert!(
            difference < TOLERANCE,
            "{name}: differs from FFmpeg's poster by {difference:.2} per channel"
        );
    }
}

async fn every_variant_is_made_from_the_poster(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let form = Form::default().file("file", "clip.webm", None, &fixture("video-vp9.webm"));
    let answer = post_form(
        &gateway,
        "?sizes=64x64,200x200&fit=cover&format=webp",
        form.finish(),
    )
    .await;
    assert_eq!(answer.status, 202);
    let id = first_media_id(&answer);
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    let sizes: Vec<(u64, u64, String)> = record["thumbnails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["width"].as_u64().unwrap(),
                t["height"].as_u64().unwrap(),
                t["media_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sizes,
        [
            (64, 64, "image/webp".to_owned()),
            (200, 200, "image/webp".to_owned())
        ]
    );
}

async fn videos_have_their_own_size_limit(backend: Backend) {
    // The clip (89 KB) is over the upload limit but under the video limit.
    let clip = fixture("video-h264.mp4");
    let gateway = Gateway::start(
        backend,
        "limits: {max_upload_bytes: 50000, max_video_bytes: 200000}",
    )
    .await;
    // base64 stays capped by max_upload_bytes.
    gateway
        .upload("video/mp4", &clip)
        .await
        .assert_error(413, "payload_too_large");
    // A file part, typed or sniffed, is held to the video limit.
    for content_type in [Some("video/mp4"), None] {
        let form = Form::default().file("file", "clip.mp4", content_type, &clip);
        let answer = post_form(&gateway, "", form.finish()).await;
        assert_eq!(
            answer.status,
            202,
            "{content_type:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let id = first_media_id(&answer);
        assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
    }
    // An image part over max_upload_bytes is not.
    let form = Form::default().file("file", "big.png", None, &fixture("png-rgb.png"));
    let answer = post_form(&gateway, "", form.finish()).await;
    answer.assert_error(413, "payload_too_large");

    let gateway = Gateway::start(backend, "limits: {max_video_bytes: 50000}").await;
    let form = Form::default().file("file", "clip.mp4", None, &clip);
    let answer = post_form(&gateway, "", form.finish()).await;
    answer.assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn without_ffmpeg_videos_are_refused_and_images_go_on() {
    let gateway = Gateway::start_with_queue(None, "video: {ffprobe: /nonexistent/ffprobe}").await;
    let ready = gateway.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["video"], "off: ffprobe is not installed");
    let answer = gateway
        .upload("video/mp4", &fixture("video-h264.mp4"))
        .await;
    answer.assert_error(415, "unsupported_media_type");
    let message = answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        message,
        "video/mp4 cannot be thumbnailed here: ffprobe is not installed"
    );
    assert_eq!(gateway.record_count().await, 0);
    let id = gateway.upload_fixture("png-rgb.png").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");

    let gateway = Gateway::start_with_queue(None, "").await;
    assert_eq!(gateway.get("/readyz").await.json()["video"], "on");
}

/// A stand-in for ffprobe in `dir`: its first `slow_runs` probes write their process id to
/// `dir/pids` and sleep past any timeout; later ones (and `-version`) are the real ffprobe.
fn slow_ffprobe(dir: &Path, slow_runs: u32) -> PathBuf {
    let script = dir.join("ffprobe");
    let dir = dir.display();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = -version ] && exec ffprobe \"$@\"\n\
             n=$(($(cat {dir}/runs 2>/dev/null || echo 0) + 1)); echo $n > {dir}/runs\n\
             if [ $n -le {slow_runs} ]; then echo $$ >> {dir}/pids; exec sleep 300; fi\n\
             exec ffprobe \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

/// The process ids the stand-in wrote.
fn pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect()
}

/// Whether a process is gone (or dead and waiting to be reaped).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// SIGKILL of the gateway running FFmpeg: its child dies with it, and the next start removes
/// the dead process's spool and completes the video.
#[tokio::test]
async fn ffmpeg_dies_with_the_process_that_started_it() {
    let tools = tempfile::tempdir().unwrap();
    let ffprobe = slow_ffprobe(tools.path(), 1);
    let mut gateway = Gateway::start_with_queue(
        None,
        &format!(
            "video: {{ffprobe: {}, timeout_secs: 300}}\n",
            ffprobe.display()
        ),
    )
    .await;
    // Through a form, so that the gateway has a spool of its own.
    let form = Form::default().file("file", "clip.mp4", None, &fixture("video-h264.mp4"));
    let id = first_media_id(&post_form(&gateway, "", form.finish()).await);
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids(tools.path()).is_empty() {
        assert!(Instant::now() < deadline, "the probe did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let probe = pids(tools.path())[0];
    assert!(!is_dead(probe));
    let spool = gateway.data_dir.join("spool");
    let before: Vec<_> = std::fs::read_dir(&spool).unwrap().collect();
    assert_eq!(before.len(), 1, "the gateway's own spool");

    gateway.kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !is_dead(probe) {
        assert!(Instant::now() < deadline, "the probe outlived its gateway");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gateway.spawn().await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    let after: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        after.len() <= 1,
        "the dead gateway's spool is gone: {after:?}"
    );
}

/// A probe out of time is tried again and completes; one out of time on every try ends as
/// 504 once the delivery limit is spent, never 422 on the first (on RabbitMQ, counted by the
/// quorum queue's `x-delivery-count`).
async fn a_tool_out_of_time_is_tried_again_before_it_fails(backend: Backend) {
    // (slow probes, delivery limit, final state, code, probes run)
    for (slow, limit, state, code, runs) in
        [(1, 5, "Completed", 200, 1), (u32::MAX, 2, "Error", 504, 3)]
    {
        let tools = tempfile::tempdir().unwrap();
        let ffprobe = slow_ffprobe(tools.path(), slow);
        let gateway = Gateway::start(
            backend,
            &format!(
                "video: {{ffprobe: {}, timeout_secs: 1}}\nqueue: {{delivery_limit: {limit}}}\n",
                ffprobe.display()
            ),
        )
        .await;
        let id = gateway
            .upload("video/mp4", &fixture("video-h264.mp4"))
            .await
            .media_id();
        let record = gateway.wait_final(&id).await;
        assert_eq!(record["state"], state, "{record}");
        assert_eq!(record["code"], code, "{record}");
        // One slow try then the real probe; or the first delivery and two more.
        assert_eq!(pids(tools.path()).len(), runs);
        for pid in pids(tools.path()) {
            assert!(is_dead(pid), "every timed-out probe was killed");
        }
    }
}

on_every_backend!(
    a_tool_out_of_time_is_tried_again_before_it_fails,
    every_clip_gets_a_poster_and_its_facts,
    every_variant_is_made_from_the_poster,
    videos_have_their_own_size_limit,
);
