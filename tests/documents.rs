//! SVG and PDF end to end through a real gateway: an SVG drawn from the vector at the size
//! asked, matching libvips's rendering (librsvg) of the same file; nothing outside the
//! document read, not a file, not a URL (a loopback listener counts every connection); the
//! bombs of the kind (entities, `use` chains, nesting) refused by their bounds before
//! anything is drawn; a rendering out of time or memory stopped by its process's bounds. A
//! PDF's first page matching poppler's (`pdftoppm`); a PDF needing a password, one with a
//! 100,000-point page and one over the page count refused, saying so.

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hyper::Method;
use support::{Backend, Gateway, fixture, fixtures_dir, mean_difference};

/// Mean absolute difference (0–255 per channel) allowed from libvips's rendering: resvg and
/// librsvg differ by 0.12 on the 480×240 drawing and 0.05 on the crop (their anti-aliasing);
/// the 80×40 drawing scaled up six times is 3.2 away, a crop in the wrong place more.
const TOLERANCE: f64 = 1.0;

/// Uploads the SVG `svg` with `query`; asserts 202; gives the media id.
async fn upload(gateway: &Gateway, svg: &[u8], query: &str) -> String {
    upload_as(gateway, "image/svg+xml", svg, query).await
}

/// Uploads the PDF `pdf` with `query`; asserts 202; gives the media id.
async fn upload_pdf(gateway: &Gateway, pdf: &[u8], query: &str) -> String {
    upload_as(gateway, "application/pdf", pdf, query).await
}

/// Uploads `bytes` as `media_type` with `query`; asserts 202; gives the media id.
async fn upload_as(gateway: &Gateway, media_type: &str, bytes: &[u8], query: &str) -> String {
    let answer = gateway
        .request(
            Method::POST,
            &format!("/images?{query}"),
            &[("content-type", media_type)],
            STANDARD.encode(bytes),
        )
        .await;
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.media_id()
}

/// The first variant of a completed record, decoded.
async fn first_variant(gateway: &Gateway, media_id: &str) -> image::RgbaImage {
    let record = gateway.wait_final(media_id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    let name = record["thumbnails"][0]["name"].as_str().unwrap().to_owned();
    let answer = gateway
        .request(
            Method::GET,
            &format!("/images/{media_id}/thumbnails/{name}"),
            &[("accept", "image/*")],
            Bytes::new(),
        )
        .await;
    assert_eq!(answer.status, 200);
    image::load_from_memory(&answer.body).unwrap().to_rgba8()
}

/// A reference rendering from `tests/fixtures/expected/`.
fn expected(name: &str) -> image::RgbaImage {
    image::open(fixtures_dir().join("expected").join(name))
        .unwrap()
        .to_rgba8()
}

#[tokio::test]
async fn svg_is_drawn_from_the_vector_as_libvips_draws_it() {
    let gateway = Gateway::start(Backend::Embedded, "").await;
    let svg = fixture("svg-shapes.svg");

    // Six times its own size: drawn at 480×240, not an 80×40 bitmap scaled up.
    let id = upload(&gateway, &svg, "sizes=480x&format=png").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(
        (record["width"].as_u64(), record["height"].as_u64()),
        (Some(80), Some(40))
    );
    assert_eq!(record["media_type"], "image/svg+xml");
    let ours = first_variant(&gateway, &id).await;
    assert_eq!(ours.dimensions(), (480, 240));
    let difference = mean_difference(&ours, &expected("svg-shapes.png"));
    println!("480×240: {difference:.2} from libvips");
    assert!(
        difference < TOLERANCE,
        "differs from libvips by {difference:.2}"
    );
    // The same 80×40 bitmap scaled up six times is far from the vector's drawing: the
    // tolerance tells them apart.
    let small = upload(&gateway, &svg, "sizes=80x&format=png").await;
    let small = first_variant(&gateway, &small).await;
    let scaled_up =
        image::imageops::resize(&small, 480, 240, image::imageops::FilterType::Lanczos3);
    let blurred = mean_difference(&scaled_up, &expected("svg-shapes.png"));
    println!("80×40 scaled up six times: {blurred:.2} from libvips");
    assert!(
        blurred > TOLERANCE,
        "scaled-up {blurred:.2}, ours {difference:.2}"
    );

    // A centre crop to a square, as libvips crops it.
    let id = upload(&gateway, &svg, "sizes=200x200&fit=cover&format=png").await;
    let ours = first_variant(&gateway, &id).await;
    assert_eq!(ours.dimensions(), (200, 200));
    let difference = mean_difference(&ours, &expected("svg-shapes-cover.png"));
    println!("200×200 cover: {difference:.2} from libvips");
    assert!(
        difference < TOLERANCE,
        "cover differs from libvips by {difference:.2}"
    );

    // The default thumbnail: 100×100 at most, the vector's shape.
    let id = upload(&gateway, &svg, "").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Completed", "{record}");
    let thumbnail = &record["thumbnails"][0];
    assert_eq!(
        (thumbnail["width"].as_u64(), thumbnail["height"].as_u64()),
        (Some(100), Some(50))
    );
}

#[tokio::test]
async fn svg_is_sniffed_and_sized_like_any_upload() {
    let gateway = Gateway::start(Backend::Embedded, "limits: {max_document_bytes: 1024}\n").await;
    let svg = fixture("svg-shapes.svg");
    assert!(svg.len() > 1024);
    let post = |content_type: &'static str, body: Vec<u8>| {
        let gateway = &gateway;
        async move {
            gateway
                .request(
                    Method::POST,
                    "/images",
                    &[("content-type", content_type)],
                    STANDARD.encode(body),
                )
                .await
        }
    };
    post("image/svg+xml", svg.clone())
        .await
        .assert_error(413, "payload_too_large");
    let mismatch = post(
        "image/png",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
    )
    .await;
    mismatch.assert_error(415, "media_type_mismatch");
    assert!(
        mismatch.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("image/svg+xml")
    );
    post("image/svg+xml", fixture("png-rgb.png"))
        .await
        .assert_error(415, "media_type_mismatch");
    let html = post("image/svg+xml", b"<html><svg/></html>".to_vec()).await;
    html.assert_error(415, "media_type_mismatch");
    assert!(
        html.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text/html")
    );
}

/// The record of a document that must end in `Error` with `status`; its message.
async fn refused(gateway: &Gateway, svg: &[u8], status: u64) -> String {
    let id = upload(gateway, svg, "").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"].as_u64(), Some(status), "{record}");
    record["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn svg_bombs_are_refused_by_their_bounds() {
    let gateway = Gateway::start(Backend::Embedded, "").await;
    let message = refused(&gateway, &fixture("hostile-svg-laughs.svg"), 413).await;
    assert!(message.contains("entities"), "{message}");
    assert!(
        !message.contains("lol"),
        "never echoes the document: {message}"
    );
    let message = refused(&gateway, &fixture("hostile-svg-uses.svg"), 413).await;
    assert!(message.contains("documents.max_elements"), "{message}");
    let message = refused(&gateway, &fixture("hostile-svg-deep.svg"), 413).await;
    assert!(message.contains("documents.max_depth"), "{message}");
    let message = refused(
        &gateway,
        b"<svg xmlns='http://www.w3.org/2000/svg'><g></svg>",
        422,
    )
    .await;
    assert!(message.contains("not well-formed"), "{message}");
    let message = refused(
        &gateway,
        b"<svg xmlns='http://www.w3.org/2000/svg' width='0' height='10'/>",
        422,
    )
    .await;
    assert!(message.contains("no size"), "{message}");
}

#[tokio::test]
async fn a_rendering_out_of_time_or_memory_is_stopped() {
    let gateway = Gateway::start(
        Backend::Embedded,
        "documents: {timeout_secs: 1}\nqueue: {delivery_limit: 2}\n",
    )
    .await;
    let id = upload(
        &gateway,
        &fixture("hostile-svg-slow.svg"),
        "sizes=4096x4096",
    )
    .await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"].as_u64(), Some(504), "{record}");
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("documents.timeout_secs")
    );

    // Ten nested translucent groups at 4096×4096: a 64 MiB layer each, past 256 MiB.
    let gateway = Gateway::start(
        Backend::Embedded,
        "documents: {max_memory_bytes: 268435456}\n",
    )
    .await;
    let layers = r#"<g opacity="0.9">"#.repeat(10);
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="4096" height="4096">{layers}<rect width="4096" height="4096" fill="red"/>{}</svg>"#,
        "</g>".repeat(10)
    );
    let id = upload(&gateway, svg.as_bytes(), "sizes=4096x4096").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"].as_u64(), Some(413), "{record}");
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("documents.max_memory_bytes")
    );

    // The service goes on: the next document is drawn.
    let id = upload(&gateway, &fixture("svg-shapes.svg"), "").await;
    assert_eq!(gateway.wait_final(&id).await["state"], "Completed");
}

/// A loopback listener that counts the connections made to it.
async fn listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, count)
}

/// A `width`×`height` PNG of one colour.
fn png(width: u32, height: u32, colour: [u8; 3]) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb(colour));
    let mut out = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// Whether some pixel of `image` is near `colour`.
fn has(image: &image::RgbaImage, colour: [u8; 3]) -> bool {
    image
        .pixels()
        .any(|p| p[3] > 128 && (0..3).all(|c| p[c].abs_diff(colour[c]) < 40))
}

const RED: [u8; 3] = [230, 20, 20];
const GREEN: [u8; 3] = [20, 200, 40];

/// The cases of imgproxy#1599 and #1708, and the rest of the ways an SVG names something
/// outside itself: `image`, `use` and `feImage` to files and URLs, CSS `@import` and
/// `url(…)`, a `foreignObject` with an iframe, an SVG in a `data:` URL that itself names a
/// file, an external entity. Every outside thing is red; nothing red is drawn, no
/// connection is made, and the record says nothing of what the files hold. A raster image
/// in a `data:` URL (green) is drawn: it is inside the document.
#[tokio::test]
async fn nothing_outside_the_document_is_read() {
    let gateway = Gateway::start(Backend::Embedded, "").await;
    let (port, connections) = listener().await;
    let dir = tempfile::tempdir().unwrap();
    let red_png = dir.path().join("red.png");
    std::fs::write(&red_png, png(64, 64, RED)).unwrap();
    let red_svg = dir.path().join("red.svg");
    std::fs::write(
        &red_svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect id="r" width="64" height="64" fill="#e61414"/></svg>"##,
    )
    .unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::File::create(&secret)
        .unwrap()
        .write_all(b"TOP-SECRET-CONTENT")
        .unwrap();
    let (png_path, svg_path) = (red_png.display(), red_svg.display());
    let url = format!("http://127.0.0.1:{port}");
    let nested = STANDARD.encode(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64"><image width="64" height="64" xlink:href="file://{png_path}"/></svg>"#
    ));
    let green = STANDARD.encode(png(16, 16, GREEN));
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="400" height="200">
  <style>@import url({url}/style.css); .outside {{ fill: url({url}/paint.svg#p); }}</style>
  <defs><filter id="fetch"><feImage href="{url}/filter.png"/></filter>
        <filter id="file"><feImage xlink:href="file://{png_path}"/></filter></defs>
  <rect width="400" height="200" fill="#ffffff"/>
  <image x="0" y="0" width="64" height="64" href="file://{png_path}"/>
  <image x="70" y="0" width="64" height="64" xlink:href="{png_path}"/>
  <image x="140" y="0" width="64" height="64" xlink:href="red.png"/>
  <image x="210" y="0" width="64" height="64" href="{url}/image.png"/>
  <image x="280" y="0" width="64" height="64" href="data:image/svg+xml;base64,{nested}"/>
  <use x="0" y="70" href="file://{svg_path}#r"/>
  <use x="70" y="70" xlink:href="{url}/use.svg#r"/>
  <rect x="140" y="70" width="64" height="64" filter="url(#fetch)"/>
  <rect x="210" y="70" width="64" height="64" filter="url(#file)" fill="none"/>
  <rect class="outside" x="280" y="70" width="64" height="64" style="fill: url('{url}/style-paint.svg#p')"/>
  <foreignObject x="0" y="140" width="64" height="64"><iframe xmlns="http://www.w3.org/1999/xhtml" src="{url}/frame"/></foreignObject>
  <image x="350" y="140" width="40" height="40" href="data:image/png;base64,{green}"/>
</svg>"##
    );
    let id = upload(&gateway, svg.as_bytes(), "sizes=400x&format=png").await;
    let drawn = first_variant(&gateway, &id).await;
    assert!(
        !has(&drawn, RED),
        "something outside the document was drawn"
    );
    assert!(has(&drawn, GREEN), "the data: image inside it is drawn");

    let entity = format!(
        r#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY secret SYSTEM "file://{}">]>
<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><title>&secret;</title><desc>&secret;</desc><rect width="100" height="100" fill="&secret;"/></svg>"#,
        secret.display()
    );
    let id = upload(&gateway, entity.as_bytes(), "").await;
    let record = gateway.wait_final(&id).await;
    let text = record.to_string();
    assert!(!text.contains("TOP-SECRET"), "{text}");
    assert!(!text.contains(&secret.display().to_string()), "{text}");
    if record["state"] == "Completed" {
        let answer = gateway.thumbnail(&id).await;
        assert!(!answer.body.windows(10).any(|w| w == b"TOP-SECRET"));
    }

    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a connection was made"
    );
}

#[tokio::test]
async fn a_pdf_gives_its_first_page_as_poppler_draws_it() {
    let gateway = Gateway::start(Backend::Embedded, "").await;
    let id = upload_pdf(
        &gateway,
        &fixture("pdf-page.pdf"),
        "sizes=300x300&format=png",
    )
    .await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["media_type"], "application/pdf");
    assert_eq!(
        (record["width"].as_u64(), record["height"].as_u64()),
        (Some(612), Some(792))
    );
    let ours = first_variant(&gateway, &id).await;
    assert_eq!(ours.dimensions(), (232, 300));
    let difference = mean_difference(&ours, &expected("pdf-page.png"));
    println!("first page, 232×300: {difference:.2} from pdftoppm");
    assert!(
        difference < 2.0,
        "differs from poppler's by {difference:.2}"
    );
    // The second page is red all over: a first page with red in it would be the wrong one.
    assert!(!has(&ours, [230, 25, 25]), "the second page was drawn");
}

#[tokio::test]
async fn pdfs_past_their_bounds_or_locked_are_refused_saying_so() {
    let gateway = Gateway::start(Backend::Embedded, "").await;
    let id = upload_pdf(&gateway, &fixture("pdf-encrypted.pdf"), "").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["state"], "Error", "{record}");
    assert_eq!(record["code"], 422, "{record}");
    assert!(
        record["message"].as_str().unwrap().contains("password"),
        "{record}"
    );

    let id = upload_pdf(&gateway, &fixture("hostile-pdf-huge-page.pdf"), "").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["code"], 413, "{record}");
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("documents.max_page_points")
    );

    let id = upload_pdf(&gateway, &fixture("hostile-document.pdf"), "").await;
    let record = gateway.wait_final(&id).await;
    assert_eq!(record["code"], 422, "{record}");

    let one_page = Gateway::start(Backend::Embedded, "documents: {max_pages: 1}\n").await;
    let id = upload_pdf(&one_page, &fixture("pdf-page.pdf"), "").await;
    let record = one_page.wait_final(&id).await;
    assert_eq!(record["code"], 413, "{record}");
    assert!(
        record["message"]
            .as_str()
            .unwrap()
            .contains("documents.max_pages")
    );
}
