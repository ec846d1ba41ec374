//! The HTTP API end to end against a real gateway process: every endpoint and every status.

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde_json::json;
use support::{Backend, Gateway, fixture, wait_gone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn upload_answers_202_with_location_and_the_record(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let bytes = fixture("jpeg-baseline.jpg");
    let answer = gateway.upload("image/jpeg", &bytes).await;
    assert_eq!(answer.status, 202);
    let record = answer.json();
    let id = record["media_id"].as_str().unwrap();
    assert_eq!(answer.header("location"), Some(format!("/images/{id}")));
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(record["media_type"], "image/jpeg");
    assert_eq!(record["state"], "Processing");
    assert_eq!(record["service"], "gateway");
    assert_eq!(record["code"], 102);
    assert_eq!(record["size"], bytes.len());
    assert_eq!(record["width"], 800);
    assert_eq!(record["height"], 500);
    assert_eq!(
        record["md5"],
        hex(&<md5::Md5 as sha2::Digest>::digest(&bytes))
    );
    assert_eq!(
        record["sha256"],
        hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    assert!(record["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(record["thumbnail"].is_null());

    let done = gateway.wait_final(id).await;
    assert_eq!(done["state"], "Completed");
    assert_eq!(done["code"], 200);
    assert_eq!(done["created_at"], record["created_at"]);
    assert!(done["updated_at"].as_str() >= record["updated_at"].as_str());
    assert!(
        gateway.thumbnail_path(id).exists(),
        "the thumbnail is where media live"
    );
    if backend == Backend::Distributed {
        // Records in PostgreSQL, media in S3: no process has a data directory.
        assert!(!gateway.data_dir.exists(), "{}", gateway.data_dir.display());
    }
}

async fn upload_accepts_aliases_line_breaks_data_uris_and_json(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let bytes = fixture("png-rgb.png");
    let encoded = STANDARD.encode(&bytes);

    let jpg = gateway
        .upload("image/jpg", &fixture("jpeg-baseline.jpg"))
        .await;
    assert_eq!(jpg.status, 202, "image/jpg is image/jpeg");
    assert_eq!(jpg.json()["media_type"], "image/jpeg");

    let wrapped: String = encoded
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\r\n", std::str::from_utf8(line).unwrap()))
        .collect();
    let unpadded = encoded.trim_end_matches('=').to_owned();
    let data_uri = format!("data:image/png;base64,{encoded}");
    for body in [wrapped, unpadded, data_uri] {
        let answer = gateway
            .request(
                Method::POST,
                "/images",
                &[("content-type", "image/png")],
                body,
            )
            .await;
        assert_eq!(answer.status, 202);
        assert_eq!(answer.json()["size"], bytes.len());
    }

    let envelope = json!({"data": encoded, "media_type": "image/png", "name": "../../etc/passwd"});
    let answer = gateway
        .request(
            Method::POST,
            "/images",
            &[("content-type", "application/json")],
            envelope.to_string(),
        )
        .await;
    assert_eq!(answer.status, 202);
    let record = answer.json();
    assert_eq!(record["name"], "../../etc/passwd", "kept as metadata only");
    let id = record["media_id"].as_str().unwrap();
    assert_eq!(gateway.wait_final(id).await["state"], "Completed");
    assert!(!gateway.data_dir.join("../../etc/passwd").exists());

    let named = gateway
        .request(
            Method::POST,
            "/images?name=cat.png",
            &[("content-type", "image/png; charset=binary")],
            encoded,
        )
        .await;
    assert_eq!(named.status, 202);
    assert_eq!(named.json()["name"], "cat.png");

    // The file's own bytes, its type read from them; the size limit and the sniffing hold.
    let jpeg = fixture("jpeg-baseline.jpg");
    let octets = [("content-type", "application/octet-stream")];
    let answer = gateway
        .request(Method::POST, "/images?name=raw.jpg", &octets, jpeg.clone())
        .await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let record = answer.json();
    assert_eq!(record["media_type"], "image/jpeg");
    assert_eq!(record["size"], jpeg.len());
    assert_eq!(
        (&record["width"], &record["height"]),
        (&json!(800), &json!(500))
    );
    let id = record["media_id"].as_str().unwrap();
    assert_eq!(gateway.wait_final(id).await["state"], "Completed");
    gateway
        .request(
            Method::POST,
            "/images",
            &octets,
            b"PK\x03\x04\x14\0\0\0 a zip, not an image".to_vec(),
        )
        .await
        .assert_error(415, "unsupported_media_type");
    gateway
        .request(Method::POST, "/images", &octets, Vec::new())
        .await
        .assert_error(400, "empty_body");
}

async fn bad_uploads_get_clear_json_errors(backend: Backend) {
    let gateway = Gateway::start(backend, "limits: {max_upload_bytes: 200000}").await;
    let png = fixture("png-gray.png");
    let post = |headers: Vec<(&'static str, &'static str)>, body: String| {
        let gateway = &gateway;
        async move {
            gateway
                .request(Method::POST, "/images", &headers, body)
                .await
        }
    };

    post(vec![], STANDARD.encode(&png))
        .await
        .assert_error(400, "missing_content_type");
    post(vec![("content-type", "image/png")], "not base64!".into())
        .await
        .assert_error(400, "invalid_base64");
    post(vec![("content-type", "image/png")], "QUJD=QUJD".into())
        .await
        .assert_error(400, "invalid_base64");
    post(vec![("content-type", "image/png")], String::new())
        .await
        .assert_error(400, "empty_body");
    post(
        vec![("content-type", "image/x-icon")],
        STANDARD.encode(b"\0\0\x01\0\x01\0"),
    )
    .await
    .assert_error(415, "unsupported_media_type");
    post(vec![("content-type", "text/plain")], STANDARD.encode(&png))
        .await
        .assert_error(415, "unsupported_media_type");

    let mismatch = post(vec![("content-type", "image/jpeg")], STANDARD.encode(&png)).await;
    mismatch.assert_error(415, "media_type_mismatch");
    assert!(
        mismatch.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("image/png"),
        "names what was found"
    );
    let pdf = post(
        vec![("content-type", "image/png")],
        STANDARD.encode(fixture("hostile-document.pdf")),
    )
    .await;
    pdf.assert_error(415, "media_type_mismatch");
    assert!(pdf.body.windows(15).any(|w| w == b"application/pdf"));

    post(
        vec![("content-type", "image/png")],
        STANDARD.encode(fixture("bomb-png.png")),
    )
    .await
    .assert_error(413, "too_many_pixels");
    post(
        vec![("content-type", "image/png")],
        STANDARD.encode(fixture("png-rgb.png")),
    )
    .await
    .assert_error(413, "payload_too_large");

    let json = |body: &str| post(vec![("content-type", "application/json")], body.to_owned());
    json("{\"data\": ").await.assert_error(400, "invalid_json");
    json("{\"media_type\": \"image/png\"}")
        .await
        .assert_error(400, "invalid_json");
    let unknown =
        json(&json!({"data": STANDARD.encode(&png), "media_type": "image/x-zzmarker"}).to_string())
            .await;
    unknown.assert_error(415, "unsupported_media_type");
    assert!(
        !String::from_utf8_lossy(&unknown.body).contains("zzmarker"),
        "an unknown media type is not repeated"
    );
    let unknown = post(
        vec![("content-type", "image/x-zzmarker")],
        STANDARD.encode(&png),
    )
    .await;
    unknown.assert_error(415, "unsupported_media_type");
    assert!(!String::from_utf8_lossy(&unknown.body).contains("zzmarker"));
    // It lists what this build reads, and only that.
    let message = unknown.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("image/png") && message.contains("image/jxl"),
        "{message}"
    );
    assert_eq!(
        message.contains("image/avif"),
        cfg!(feature = "heif"),
        "{message}"
    );
    assert_eq!(message.contains("image/heic"), cfg!(feature = "heif"));
    json(&json!({"data": "@@@@", "media_type": "image/png"}).to_string())
        .await
        .assert_error(400, "invalid_base64");
    json(&"[".repeat(10_000))
        .await
        .assert_error(400, "invalid_json");

    // Nothing refused left a record or a file behind.
    let page = gateway.get("/images").await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
    assert_eq!(gateway.object_names("raw"), Vec::<String>::new());
}

async fn an_oversized_body_is_refused_while_it_streams(backend: Backend) {
    let gateway = Gateway::start(backend, "limits: {max_upload_bytes: 1000}").await;
    let address = gateway.base.trim_start_matches("http://").to_owned();

    // Content-Length over the limit: refused before any of the body is sent.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 999999999\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_status_line(&mut stream)
            .await
            .starts_with("HTTP/1.1 413")
    );

    // Chunked, never finished: refused once the decoded size passes the limit.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /images HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = "A".repeat(4000);
    stream
        .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
        .await
        .unwrap();
    assert!(
        read_status_line(&mut stream)
            .await
            .starts_with("HTTP/1.1 413")
    );
}

async fn read_status_line(stream: &mut tokio::net::TcpStream) -> String {
    let mut buffer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("no answer while the body was still open")
        .unwrap();
    String::from_utf8_lossy(&buffer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

async fn records_are_found_or_not(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let id = gateway.upload_fixture("small.png").await;
    let answer = gateway.get(&format!("/images/{id}")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["media_id"], id.as_str());
    gateway
        .get(&format!("/images/{}", uuid::Uuid::now_v7()))
        .await
        .assert_error(404, "not_found");
    gateway
        .get("/images/not-an-id")
        .await
        .assert_error(400, "invalid_id");
    gateway
        .get("/images/not-an-id/thumbnail")
        .await
        .assert_error(400, "invalid_id");
    gateway.get("/nowhere").await.assert_error(404, "no_route");
    gateway
        .request(Method::PUT, "/images", &[], "")
        .await
        .assert_error(405, "method_not_allowed");
}

async fn thumbnails_are_base64_by_default_raw_on_request_and_cacheable(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let id = gateway.upload_fixture("jpeg-baseline.jpg").await;
    gateway.wait_final(&id).await;
    let path = format!("/images/{id}/thumbnail");

    let encoded = gateway.get(&path).await;
    assert_eq!(encoded.status, 200);
    assert_eq!(
        encoded.header("content-type").as_deref(),
        Some("image/jpeg")
    );
    assert_eq!(encoded.header("vary").as_deref(), Some("Accept"));
    assert!(
        encoded
            .header("cache-control")
            .unwrap()
            .contains("immutable")
    );
    let decoded = STANDARD.decode(&encoded.body).unwrap();

    let raw = gateway
        .request(Method::GET, &path, &[("accept", "image/jpeg")], "")
        .await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body.as_ref(), decoded.as_slice());
    assert_eq!(&raw.body[..3], b"\xff\xd8\xff");
    let image = image::load_from_memory(&raw.body).unwrap();
    assert_eq!((image.width(), image.height()), (100, 63));

    for answer in [&encoded, &raw] {
        let etag = answer.header("etag").unwrap();
        let accept = if std::ptr::eq(answer, &raw) {
            "image/*"
        } else {
            "*/*"
        };
        let again = gateway
            .request(
                Method::GET,
                &path,
                &[("if-none-match", &etag), ("accept", accept)],
                "",
            )
            .await;
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
    }
    assert_ne!(encoded.header("etag"), raw.header("etag"));

    // What generated clients ask for bytes with: the same bytes, as that type, their own ETag.
    let octets = gateway
        .request(
            Method::GET,
            &path,
            &[("accept", "application/octet-stream")],
            "",
        )
        .await;
    assert_eq!(octets.status, 200);
    assert_eq!(
        octets.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(octets.body, raw.body);
    let tags = [&encoded, &raw, &octets].map(|answer| answer.header("etag").unwrap());
    assert!(tags[0] != tags[2] && tags[1] != tags[2], "{tags:?}");
    // An image range wins over it.
    let both = gateway
        .request(
            Method::GET,
            &path,
            &[("accept", "application/octet-stream, image/*;q=0.5")],
            "",
        )
        .await;
    assert_eq!(both.header("content-type").as_deref(), Some("image/jpeg"));
}

async fn thumbnail_says_409_while_processing_and_422_when_the_job_failed(backend: Backend) {
    // One worker, kept busy: the last upload waits in the queue.
    let gateway = Gateway::start(backend, "worker: {concurrency: 1}").await;
    let mut saw_processing = false;
    for _ in 0..5 {
        for _ in 0..4 {
            gateway.upload_fixture("tiff-lzw.tiff").await;
        }
        let id = gateway.upload_fixture("png-rgb.png").await;
        let before = gateway.get(&format!("/images/{id}")).await.json();
        let answer = gateway.get(&format!("/images/{id}/thumbnail")).await;
        let after = gateway.get(&format!("/images/{id}")).await.json();
        if before["state"] == "Processing" && after["state"] == "Processing" {
            answer.assert_error(409, "processing");
            saw_processing = true;
            break;
        }
    }
    assert!(saw_processing, "never caught a job processing");

    let id = gateway.upload_fixture("hostile-truncated.png").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 422);
    assert!(record["message"].as_str().unwrap().contains("image/png"));
    let answer = gateway.get(&format!("/images/{id}/thumbnail")).await;
    answer.assert_error(422, "job_failed");
    assert!(
        answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(record["message"].as_str().unwrap())
    );
}

async fn delete_removes_record_and_files(backend: Backend) {
    let gateway = Gateway::start(backend, "keep_raw: true").await;
    let id = gateway.upload_fixture("png-rgb.png").await;
    gateway.wait_final(&id).await;
    let original = gateway.original_path(&fixture("png-rgb.png"));
    assert!(original.exists(), "keep_raw keeps the raw file");
    assert!(gateway.thumbnail_path(&id).exists());

    let answer = gateway
        .request(Method::DELETE, &format!("/images/{id}"), &[], "")
        .await;
    assert_eq!(answer.status, 204);
    assert!(answer.body.is_empty());
    assert!(!original.exists());
    assert!(!gateway.thumbnail_path(&id).exists());
    gateway
        .get(&format!("/images/{id}"))
        .await
        .assert_error(404, "not_found");
    gateway
        .get(&format!("/images/{id}/thumbnail"))
        .await
        .assert_error(404, "not_found");
    gateway
        .request(Method::DELETE, &format!("/images/{id}"), &[], "")
        .await
        .assert_error(404, "not_found");
    gateway
        .request(Method::DELETE, "/images/../../etc", &[], "")
        .await
        .assert_error(404, "no_route");
    gateway
        .request(Method::DELETE, "/images/1234", &[], "")
        .await
        .assert_error(400, "invalid_id");
}

async fn raw_files_go_once_the_job_is_final_unless_kept(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let id = gateway.upload_fixture("png-rgb.png").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
    assert!(gateway.thumbnail_path(&id).exists());
    wait_gone(&gateway.original_path(&fixture("png-rgb.png"))).await;
}

async fn deleting_a_job_in_flight_leaves_no_orphan(backend: Backend) {
    let gateway = Gateway::start(backend, "worker: {concurrency: 1}").await;
    let mut deleted = Vec::new();
    for _ in 0..6 {
        let id = gateway.upload_fixture("tiff-lzw.tiff").await;
        let answer = gateway
            .request(Method::DELETE, &format!("/images/{id}"), &[], "")
            .await;
        assert_eq!(answer.status, 204);
        deleted.push(id);
    }
    let last = gateway.upload_fixture("small.png").await;
    assert_eq!(gateway.wait_final(&last).await["state"], "Completed");
    // Every published job ends in one final result, applied or discarded (its record was
    // gone); a job deleted before it was published never runs. Wait until the count of
    // final results has stood still for a second: no job is in flight any more.
    let mut last_count = 0;
    let mut stable_since = std::time::Instant::now();
    let deadline = stable_since + Duration::from_secs(30);
    loop {
        let metrics = String::from_utf8(gateway.get("/metrics").await.body.to_vec()).unwrap();
        let count = |name: &str| -> u64 {
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        let finals = count("thumbnailify_jobs_finished_total{state=\"completed\"}")
            + count("thumbnailify_results_discarded_total");
        if finals != last_count {
            (last_count, stable_since) = (finals, std::time::Instant::now());
        } else if stable_since.elapsed() > Duration::from_secs(1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &deleted {
        wait_gone(&gateway.thumbnail_path(id)).await;
        let original = gateway.original_path(&fixture("tiff-lzw.tiff"));
        assert!(!original.exists(), "orphan raw file {id}");
        gateway
            .get(&format!("/images/{id}"))
            .await
            .assert_error(404, "not_found");
    }
    let thumbnails = gateway
        .object_names("thumbnails")
        .iter()
        .filter(|name| !name.starts_with('.'))
        .count();
    assert_eq!(thumbnails, 1, "only the last job's thumbnail");
}

async fn listing_pages_through_every_record_in_upload_order(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(gateway.upload_fixture("small.png").await);
    }
    let mut seen = Vec::new();
    let mut path = "/images?limit=2".to_owned();
    loop {
        let page = gateway.get(&path).await;
        assert_eq!(page.status, 200);
        let page = page.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|r| r["media_id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/images?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let all = gateway.get("/images").await.json();
    assert_eq!(all["items"].as_array().unwrap().len(), 5);
    assert!(all["next"].is_null());
    for bad in ["/images?limit=0", "/images?limit=1001", "/images?limit=abc"] {
        gateway
            .get(bad)
            .await
            .assert_error(400, "invalid_parameter");
    }
    gateway
        .get("/images?after=nope")
        .await
        .assert_error(400, "invalid_id");
}

async fn health_readiness_and_metrics(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let health = gateway.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let ready = gateway.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["queue"], backend.kind());
    assert_eq!(ready.json()["store"], backend.store_kind());
    assert_eq!(ready.json()["storage"], backend.storage_kind());

    let id = gateway.upload_fixture("small.png").await;
    gateway.wait_final(&id).await;
    gateway.upload("image/png", b"nope").await;
    let expected = [
        "thumbnailify_uploads_accepted_total 1",
        "thumbnailify_uploads_refused_total{code=\"media_type_mismatch\"} 1",
        "thumbnailify_jobs_finished_total{state=\"completed\"} 1",
        "thumbnailify_jobs_processing 0",
    ];
    // The record is readable (PostgreSQL commits it) a moment before the result's path has
    // counted it: metrics are read again for a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let metrics = gateway.get("/metrics").await;
        assert_eq!(metrics.status, 200);
        let text = String::from_utf8(metrics.body.to_vec()).unwrap();
        let missing: Vec<_> = expected
            .iter()
            .filter(|line| !text.lines().any(|l| l == **line))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing:?} in\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

on_every_backend!(
    upload_answers_202_with_location_and_the_record,
    upload_accepts_aliases_line_breaks_data_uris_and_json,
    bad_uploads_get_clear_json_errors,
    an_oversized_body_is_refused_while_it_streams,
    records_are_found_or_not,
    thumbnails_are_base64_by_default_raw_on_request_and_cacheable,
    thumbnail_says_409_while_processing_and_422_when_the_job_failed,
    delete_removes_record_and_files,
    raw_files_go_once_the_job_is_final_unless_kept,
    deleting_a_job_in_flight_leaves_no_orphan,
    listing_pages_through_every_record_in_upload_order,
    health_readiness_and_metrics,
);
