//! `multipart/form-data` uploads over real HTTP, on every back-end: one file and fifty,
//! mixed good and bad parts, the file-count and size limits, fields, a client that hangs up
//! mid-part, and forms that are not forms.

mod support;

use std::time::Duration;

use hyper::Method;
use serde_json::Value;
use support::form::{BOUNDARY, Form, post_form};
use support::{Backend, Gateway, fixture};
use tokio::io::AsyncWriteExt;

/// The items of a 202 answer.
fn accepted_items(answer: &support::Answer) -> Vec<Value> {
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    items(answer)
}

fn items(answer: &support::Answer) -> Vec<Value> {
    answer.json()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn one_file_is_one_upload(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let jpeg = fixture("jpeg-baseline.jpg");
    let answer = post_form(
        &gateway,
        "",
        Form::default()
            .file("image", "cat.jpg", Some("image/jpeg"), &jpeg)
            .finish(),
    )
    .await;
    let items = accepted_items(&answer);
    assert_eq!(items.len(), 1);
    let media_id = items[0]["media_id"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.header("location").as_deref(),
        Some(&*format!("/images/{media_id}"))
    );
    assert_eq!(items[0]["name"], "cat.jpg", "the filename names the upload");
    assert_eq!(items[0]["media_type"], "image/jpeg");
    assert_eq!(items[0]["size"], jpeg.len());
    let record = gateway.wait_final(&media_id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    assert_eq!(record["width"], 800);
    // The same bytes as a base64 upload: the same digest.
    let base64 = gateway.upload("image/jpeg", &jpeg).await.json();
    assert_eq!(record["sha256"], base64["sha256"]);
}

/// A form's 202 names its first accepted file as a single upload's does, by `media_id` and
/// `Location`, even when refused files come before it.
async fn the_answer_names_the_first_accepted_file(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let png = fixture("png-gray-alpha.png");
    let answer = post_form(
        &gateway,
        "",
        Form::default()
            .file("image", "notes.txt", Some("text/plain"), b"hello")
            .file("image", "a.png", Some("image/png"), &png)
            .file(
                "image",
                "b.jpg",
                Some("image/jpeg"),
                &fixture("jpeg-baseline.jpg"),
            )
            .finish(),
    )
    .await;
    let items = accepted_items(&answer);
    assert_eq!(items[0]["error"]["code"], "unsupported_media_type");
    let first = items[1]["media_id"].as_str().unwrap();
    assert_ne!(first, items[2]["media_id"].as_str().unwrap());
    assert_eq!(answer.json()["media_id"], first);
    assert_eq!(
        answer.header("location").as_deref(),
        Some(&*format!("/images/{first}"))
    );
    let record = gateway.get(&format!("/images/{first}")).await.json();
    assert_eq!(record["name"], "a.png", "{record}");
}

async fn fifty_files_take_the_form_fields(backend: Backend) {
    let gateway = Gateway::start(backend, "keep_raw: true\n").await;
    let sources = [
        ("jpeg-baseline.jpg", "image/jpeg"),
        ("png-rgba.png", "image/png"),
        ("jpeg-progressive.jpg", "image/jpeg"),
        ("png-palette.png", "image/png"),
        ("gif-animated.gif", "image/gif"),
    ];
    let mut form = Form::default()
        .field("sizes", "64x64,32x")
        .field("fit", "cover")
        .field("submit", "Upload");
    for i in 0..50 {
        let (name, media_type) = sources[i % sources.len()];
        // Field names as the clients this service replaces send them.
        let field = ["image", "images", "file", "files", "upload"][i % 5];
        form = form.file(
            field,
            &format!("{i}-{name}"),
            Some(media_type),
            &fixture(name),
        );
    }
    let answer = post_form(&gateway, "?fit=contain", form.finish()).await;
    let items = accepted_items(&answer);
    assert_eq!(items.len(), 50);
    for (i, item) in items.iter().enumerate() {
        let (name, media_type) = sources[i % sources.len()];
        assert_eq!(item["name"], format!("{i}-{name}"), "in part order");
        assert_eq!(item["media_type"], media_type);
        let record = gateway.wait_final(item["media_id"].as_str().unwrap()).await;
        assert_eq!(record["state"], "Completed", "{record}");
        let thumbnails = record["thumbnails"].as_array().unwrap();
        assert_eq!(thumbnails.len(), 2);
        // The form's fit overrides the query's.
        assert_eq!(thumbnails[0]["fit"], "cover");
        assert_eq!(
            (&thumbnails[0]["width"], &thumbnails[0]["height"]),
            (&64.into(), &64.into())
        );
        assert_eq!(thumbnails[1]["width"], 32);
    }
    // Stored by content: one original per distinct file.
    assert_eq!(gateway.object_names("raw").len(), sources.len());
}

/// The order a generated client sends a form in: the file first, then the fields, which
/// apply to it all the same; a bad field after the files refuses the form, keeping nothing.
async fn fields_after_the_files_apply_to_them(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let png = fixture("png-gray-alpha.png");
    let answer = post_form(
        &gateway,
        "?sizes=20x20",
        Form::default()
            .file("image", "a.png", Some("image/png"), &png)
            .field("sizes", "48x32,16x")
            .file("image", "b.jpg", None, &fixture("jpeg-baseline.jpg"))
            .field("enlarge", "true")
            .field("name", "after")
            .finish(),
    )
    .await;
    let items = accepted_items(&answer);
    assert_eq!(items.len(), 2, "{items:?}");
    for item in &items {
        assert_eq!(item["name"], "after", "{item}");
        let record = gateway.wait_final(item["media_id"].as_str().unwrap()).await;
        assert_eq!(record["state"], "Completed", "{record}");
        let names: Vec<&str> = record["thumbnails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|thumbnail| thumbnail["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["48x32", "16x"], "{record}");
    }
    post_form(
        &gateway,
        "",
        Form::default()
            .file("image", "a.png", Some("image/png"), &png)
            .field("sizes", "0x0")
            .finish(),
    )
    .await
    .assert_error(400, "invalid_parameter");
    assert_eq!(gateway.record_count().await, 2);
}

async fn bad_parts_are_refused_and_good_ones_kept(backend: Backend) {
    let gateway = Gateway::start(
        backend,
        "keep_raw: true\nlimits:\n  max_upload_bytes: 100000\n",
    )
    .await;
    let png = fixture("png-gray-alpha.png");
    let jpeg = fixture("jpeg-baseline.jpg");
    assert!(png.len() < 100_000);
    let large = fixture("png-16bit-rgb.png");
    assert!(large.len() > 100_000);
    let answer = post_form(
        &gateway,
        "",
        Form::default()
            .field("name", "holiday")
            .file("image", "a.png", Some("image/png"), &png)
            .file(
                "image",
                "fake.png",
                Some("image/png"),
                &fixture("hostile-document.pdf"),
            )
            .file("image", "empty.png", Some("image/png"), b"")
            .file(
                "image",
                "sniffed.bin",
                Some("application/octet-stream"),
                &jpeg,
            )
            .file("image", "untyped", None, &jpeg)
            .file("image", "notes.txt", Some("text/plain"), b"hello")
            .file("image", "large.png", Some("image/png"), &large)
            .field("sizes", "10x10")
            .file("image", "last.png", Some("image/png"), &png)
            .finish(),
    )
    .await;
    let items = accepted_items(&answer);
    assert_eq!(items.len(), 8, "{items:?}");
    let refused = |index: usize, part: u64, code: &str| {
        let item = &items[index];
        assert_eq!(item["part"], part, "{item}");
        assert_eq!(item["error"]["code"], code, "{item}");
        assert!(item.get("media_id").is_none(), "{item}");
    };
    let accepted = |index: usize, media_type: &str| {
        let item = &items[index];
        assert_eq!(item["media_type"], media_type, "{item}");
        assert_eq!(item["name"], "holiday", "the name field names every file");
    };
    accepted(0, "image/png");
    refused(1, 2, "media_type_mismatch");
    assert_eq!(items[1]["filename"], "fake.png");
    refused(2, 3, "empty_body");
    accepted(3, "image/jpeg");
    accepted(4, "image/jpeg");
    refused(5, 6, "unsupported_media_type");
    refused(6, 7, "payload_too_large");
    accepted(7, "image/png");
    for index in [0, 3, 4, 7] {
        let record = gateway
            .wait_final(items[index]["media_id"].as_str().unwrap())
            .await;
        assert_eq!(record["state"], "Completed", "{record}");
        // The sizes field among the files applies to every file of the form.
        assert_eq!(record["thumbnails"][0]["name"], "10x10");
    }
    // Stored by content: the PNG twice and the JPEG twice are two originals.
    assert_eq!(gateway.object_names("raw").len(), 2);
    // Nothing is left in the spool.
    assert_eq!(spooled_files(&gateway.data_dir.join("spool")), 0);
}

async fn nothing_accepted_answers_the_first_refusal(backend: Backend) {
    let gateway = Gateway::start(backend, "").await;
    let answer = post_form(
        &gateway,
        "",
        Form::default()
            .file("image", "notes.txt", Some("text/plain"), b"hello")
            .file(
                "image",
                "fake.png",
                Some("image/png"),
                &fixture("hostile-document.pdf"),
            )
            .finish(),
    )
    .await;
    answer.assert_error(415, "unsupported_media_type");
    let items = items(&answer);
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["error"]["code"], "media_type_mismatch");
    // No file at all; no boundary; not a form; a bad field before any file.
    post_form(&gateway, "", Form::default().field("name", "x").finish())
        .await
        .assert_error(400, "no_files");
    gateway
        .request(
            Method::POST,
            "/images",
            &[("content-type", "multipart/form-data")],
            "x",
        )
        .await
        .assert_error(400, "invalid_multipart");
    post_form(&gateway, "", b"this is not a form at all".to_vec())
        .await
        .assert_error(400, "invalid_multipart");
    post_form(
        &gateway,
        "",
        Form::default()
            .field("sizes", "0x0")
            .file(
                "image",
                "a.png",
                Some("image/png"),
                &fixture("png-gray-alpha.png"),
            )
            .finish(),
    )
    .await
    .assert_error(400, "invalid_parameter");
    assert_eq!(gateway.record_count().await, 0);
}

async fn the_file_count_and_request_size_are_bounded(backend: Backend) {
    let gateway = Gateway::start(
        backend,
        "limits:\n  max_files_per_request: 3\n  max_request_bytes: 400000\n",
    )
    .await;
    let png = fixture("png-gray-alpha.png");
    let mut form = Form::default();
    for i in 0..5 {
        form = form.file("files", &format!("{i}.png"), Some("image/png"), &png);
    }
    let answer = post_form(&gateway, "", form.finish()).await;
    assert_eq!(answer.status, 202);
    let codes: Vec<Value> = items(&answer)
        .iter()
        .map(|item| item["error"]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            Value::Null,
            Value::Null,
            Value::Null,
            "too_many_files".into()
        ]
    );
    let surplus = &items(&answer)[3];
    assert_eq!(surplus["part"], 3, "the first file past the limit");
    assert_eq!(
        surplus["refused"], 2,
        "both files past the limit, in one item"
    );
    // Over the request size by its Content-Length: refused before it is read.
    let big = vec![0u8; 500_000];
    post_form(
        &gateway,
        "",
        Form::default()
            .file("image", "a.png", Some("image/png"), &big)
            .finish(),
    )
    .await
    .assert_error(413, "request_too_large");
    // Over it while streaming (chunked, no Content-Length): the file being read is refused,
    // the one before it kept.
    let body = Form::default()
        .file("image", "a.png", Some("image/png"), &png)
        .file("image", "b.png", Some("image/png"), &big)
        .finish();
    let mut request = format!(
        "POST /images HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = gateway.raw(&request).await;
    assert_eq!(answer.status(), 202);
    let json: Value = serde_json::from_slice(answer.body()).unwrap();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{json}");
    assert_eq!(items[0]["name"], "a.png");
    assert_eq!(items[1]["error"]["code"], "request_too_large");
    assert_eq!(items[1]["filename"], "b.png");
}

/// 20,000 one-byte files after three good ones: one item counts the surplus, the answer is
/// a few records long, and the gateway reads the whole body through; and a form with more
/// parts than `limits.max_form_parts` (fields count too) is not read past it.
async fn a_form_of_many_tiny_parts_is_answered_in_bounded_size(backend: Backend) {
    let gateway = Gateway::start(
        backend,
        "limits:\n  max_files_per_request: 3\n  max_form_parts: 30000\n",
    )
    .await;
    let png = fixture("png-gray-alpha.png");
    let mut form = Form::default().field("sizes", "32x32");
    for i in 0..3 {
        form = form.file("files", &format!("{i}.png"), Some("image/png"), &png);
    }
    for _ in 0..20_000 {
        form = form.file("files", "x", None, b"x");
    }
    // Fields after the files apply to them (the last value of each counts), and add nothing
    // to the answer, however many.
    for side in 1..=100 {
        form = form.field("sizes", &format!("{side}x{side}"));
    }
    let answer = post_form(&gateway, "", form.finish()).await;
    let listed = accepted_items(&answer);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert_eq!(listed[3]["error"]["code"], "too_many_files");
    assert_eq!(listed[3]["part"], 4);
    assert_eq!(listed[3]["refused"], 20_000);
    assert_eq!(listed[0]["thumbnails"][0]["name"], "100x100");
    assert!(answer.body.len() < 16 * 1024, "{} bytes", answer.body.len());
    assert_eq!(gateway.record_count().await, 3);

    let gateway = Gateway::start(backend, "limits:\n  max_form_parts: 50\n").await;
    let mut form = Form::default();
    for _ in 0..40 {
        form = form.field("note", "ignored");
    }
    form = form.file("image", "a.png", Some("image/png"), &png);
    for _ in 0..20 {
        form = form.file("image", "b.png", Some("image/png"), &png);
    }
    let answer = post_form(&gateway, "", form.finish()).await;
    let listed = accepted_items(&answer);
    assert_eq!(
        listed.len(),
        11,
        "ten files within 50 parts, then the refusal"
    );
    assert_eq!(listed[10]["error"]["code"], "too_many_parts");
    assert_eq!(listed[10]["part"], 50);
    assert_eq!(gateway.record_count().await, 10);
}

async fn a_client_that_hangs_up_keeps_the_files_that_arrived(backend: Backend) {
    let gateway = Gateway::start(backend, "keep_raw: true\n").await;
    let png = fixture("png-gray-alpha.png");
    let body = Form::default()
        .file("image", "whole.png", Some("image/png"), &png)
        .file("image", "cut.png", Some("image/png"), &png)
        .finish();
    // Everything up to the middle of the second file, then the connection closes.
    let cut = body.len() - png.len() / 2;
    let mut stream = tokio::net::TcpStream::connect(gateway.address())
        .await
        .unwrap();
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..cut]).await.unwrap();
    stream.flush().await.unwrap();
    // The connection breaks: the file that arrived whole is still committed.
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while gateway.record_count().await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the whole file was not kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = gateway.get("/images").await.json();
    let records = listed["items"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{listed}");
    assert_eq!(records[0]["name"], "whole.png");
    let record = gateway
        .wait_final(records[0]["media_id"].as_str().unwrap())
        .await;
    assert_eq!(record["state"], "Completed");
    // The half file is gone from the spool, and nothing else was kept.
    let spool = gateway.data_dir.join("spool");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while spooled_files(&spool) > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the cut file stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.record_count().await, 1);
    assert_eq!(gateway.object_names("raw").len(), 1);

    // Cut inside a text field after a whole file: the file is kept, with the fields before.
    let jpeg = fixture("jpeg-baseline.jpg");
    let body = Form::default()
        .field("sizes", "40x40")
        .file("image", "before-the-cut.jpg", Some("image/jpeg"), &jpeg)
        .field("name", &"x".repeat(4000))
        .finish();
    let cut = body.len() - 2000;
    let mut stream = tokio::net::TcpStream::connect(gateway.address())
        .await
        .unwrap();
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..cut]).await.unwrap();
    stream.flush().await.unwrap();
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while gateway.record_count().await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the file before the cut field was not kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = gateway.get("/images").await.json();
    let kept = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|record| record["name"] == "before-the-cut.jpg")
        .cloned()
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(kept["thumbnails"][0]["name"], "40x40");

    // A base64 upload cut off halfway is no upload: its body ends short of its
    // Content-Length, and nothing is recorded, however soon the client hangs up.
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(fixture("png-rgb.png"))
    };
    for _ in 0..5 {
        let mut stream = tokio::net::TcpStream::connect(gateway.address())
            .await
            .unwrap();
        let head = format!(
            "POST /images HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            encoded.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream
            .write_all(&encoded.as_bytes()[..encoded.len() / 2])
            .await
            .unwrap();
        drop(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gateway.record_count().await, 2, "no record of a cut body");
}

/// Files in the spool, in every process's directory, but for their lock files.
fn spooled_files(spool: &std::path::Path) -> usize {
    std::fs::read_dir(spool)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|dir| {
            std::fs::read_dir(dir)
                .unwrap()
                .filter(|file| file.as_ref().unwrap().file_name() != ".lock")
                .count()
        })
        .sum()
}

on_every_backend!(
    one_file_is_one_upload,
    the_answer_names_the_first_accepted_file,
    fifty_files_take_the_form_fields,
    fields_after_the_files_apply_to_them,
    bad_parts_are_refused_and_good_ones_kept,
    nothing_accepted_answers_the_first_refusal,
    the_file_count_and_request_size_are_bounded,
    a_form_of_many_tiny_parts_is_answered_in_bounded_size,
    a_client_that_hangs_up_keeps_the_files_that_arrived,
);
