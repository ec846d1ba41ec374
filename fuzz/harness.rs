//! The checks each fuzz target makes, shared with `tests/fuzz_regressions.rs` (which replays
//! the inputs the fuzzers once crashed on).

use common::config::{LimitsConfig, OutputFormat, ThumbnailConfig};
use common::message::JobVariant;
use common::variant::{Fit, Variant};
use gateway::body::{Base64Stream, EnvelopeParser};

/// The worker's decode → resize → encode path on arbitrary bytes, making three variants
/// (contain; cover, animated as GIF; fill, animated as WebP) from one decode (an animated
/// GIF or WebP's animated ones frame by frame); the first byte picks the declared media
/// type. It must return, whatever the bytes.
pub fn thumbnail(data: &[u8]) {
    let Some((&selector, image)) = data.split_first() else {
        return;
    };
    let images: Vec<_> = common::media::ALL
        .into_iter()
        .filter(|media_type| !media_type.is_video() && !media_type.is_document())
        .collect();
    let media_type = images[usize::from(selector) % images.len()];
    // Smaller limits than the service's keep each run fast; the checks are the same.
    let limits = LimitsConfig {
        max_pixels: 4_000_000,
        max_alloc_bytes: 256 * 1024 * 1024,
        max_metadata_bytes: 64 * 1024,
        max_frames: 200,
        max_animation_pixels: 40_000_000,
        ..LimitsConfig::default()
    };
    let default = Variant::default_for(&ThumbnailConfig::default());
    let variants: Vec<JobVariant> = [
        (Fit::Contain, "100x100", OutputFormat::Auto, false),
        (Fit::Cover, "64x48", OutputFormat::Gif, true),
        (Fit::Fill, "x30", OutputFormat::Auto, true),
    ]
    .into_iter()
    .enumerate()
    .map(|(index, (fit, size, format, animated))| JobVariant {
        index: index as u16,
        variant: Variant {
            name: size.to_owned(),
            size: size.parse().expect("a valid size"),
            fit,
            format,
            animated,
            ..default.clone()
        },
    })
    .collect();
    let _ = worker::thumbnail::make(image, media_type, &variants, &limits, &[]);
}

/// The worker's video path on arbitrary bytes: ffprobe and ffmpeg as the worker runs them
/// (file protocol only, forced demuxer, timeout, memory cap), then the poster through resize
/// and encode; the first byte picks the declared video type. It must return, with a poster
/// or an error, whatever the bytes.
pub fn video(data: &[u8]) {
    let Some((&selector, video)) = data.split_first() else {
        return;
    };
    let videos: Vec<_> = common::media::ALL
        .into_iter()
        .filter(|media_type| media_type.is_video())
        .collect();
    let media_type = videos[usize::from(selector) % videos.len()];
    let mut config = common::Config::default();
    config.limits.max_pixels = 4_000_000;
    config.video.timeout_secs = 10;
    config.video.max_memory_bytes = 1024 * 1024 * 1024;
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    std::io::Write::write_all(&mut file, video).expect("written");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let poster = runtime.block_on(worker::video::poster(file.path(), media_type, &config));
    if let Ok(poster) = poster {
        let variant = JobVariant {
            index: 0,
            variant: Variant::default_for(&ThumbnailConfig::default()),
        };
        let made = worker::thumbnail::make_from(
            poster.frame,
            None,
            media_type,
            &[variant],
            &config.limits,
            &[],
        );
        assert!(made.is_ok(), "a decoded poster is always thumbnailed");
    }
}

/// The gateway's body decoding on arbitrary bytes, fed in chunks of the size the first byte
/// picks: the streaming base64 decoder must agree with a one-piece decode; the streaming JSON
/// envelope parser must agree with a one-piece parse, and accept only what `serde_json` takes
/// for JSON.
pub fn upload_body(data: &[u8]) {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let limit = 1 << 20;
    let base64 = |chunk: usize| {
        let mut stream = Base64Stream::new(limit);
        body.chunks(chunk)
            .try_for_each(|piece| stream.push(piece))
            .and_then(|()| stream.finish())
            .ok()
    };
    assert_eq!(
        base64(chunk),
        base64(body.len().max(1)),
        "chunking changed the result"
    );

    let envelope = |chunk: usize| {
        let mut parser = EnvelopeParser::new(limit);
        body.chunks(chunk)
            .try_for_each(|piece| parser.push(piece))
            .and_then(|()| parser.finish())
            .ok()
            .map(|envelope| (envelope.source, envelope.name))
    };
    let streamed = envelope(chunk);
    assert_eq!(
        streamed,
        envelope(body.len().max(1)),
        "chunking changed the envelope"
    );
    if streamed.is_some() {
        assert!(
            serde_json::from_slice::<serde_json::Value>(body).is_ok(),
            "an envelope that is not JSON was accepted"
        );
    }
}

/// The boundary of the forms the `form` target posts.
pub const FORM_BOUNDARY: &str = "fuzzboundary";

/// The limits of the gateway the `form` target posts to: small, so that the fuzzer reaches
/// them.
const FORM_FILES: usize = 4;
const FORM_PARTS: usize = 64;

/// The address of a gateway serving in this process (embedded queue and store, a temporary
/// data directory), started on first use.
fn form_gateway() -> std::net::SocketAddr {
    static ADDRESS: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();
    *ADDRESS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let data = tempfile::tempdir().expect("a data directory");
                let mut config = common::Config {
                    data_dir: data.path().to_owned(),
                    ..common::Config::default()
                };
                config.limits.max_files_per_request = FORM_FILES;
                config.limits.max_form_parts = FORM_PARTS;
                config.limits.max_request_bytes = 1 << 20;
                config.limits.max_pixels = 1_000_000;
                config.video.ffprobe = "/nonexistent/ffprobe".into();
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a port");
                tx.send(listener.local_addr().expect("an address"))
                    .expect("sent");
                let (_trigger, shutdown) = common::shutdown::ShutdownTrigger::new();
                gateway::serve(listener, config, shutdown)
                    .await
                    .expect("the gateway serves");
                drop(data);
            });
        });
        rx.recv().expect("the gateway's address")
    })
}

/// A multipart body posted, as it is, to a real gateway (over loopback, in this process):
/// the answer must be whole, JSON, of a status a form can get, and as long as its accepted
/// files make it, never as long as the form.
pub fn form(data: &[u8]) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(form_gateway()).expect("connected");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("a timeout");
    let head = format!(
        "POST /images HTTP/1.1\r\nHost: fuzz\r\nContent-Type: multipart/form-data; \
         boundary={FORM_BOUNDARY}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    );
    // The gateway may answer and close before the body is all sent: not a failure.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(data));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .expect("a status");
    assert!(
        [202, 400, 408, 413, 415, 503].contains(&status),
        "status {status}: {body}"
    );
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON answer");
    let items = json["items"].as_array().map_or(0, Vec::len);
    // Every accepted or refused file within the limit, one item for the files past it, one
    // for late fields, one for the part that ended the form.
    assert!(items <= FORM_FILES + 3, "{items} items");
    assert!(status == 202 || json["error"]["code"].is_string(), "{body}");
}

/// A source whose server answers with `data`, whatever it is (over loopback, no redirect
/// followed, so nothing else is ever reached): the fetch must end with the bytes spooled
/// within the limit and sniffed, or with an error of the documented codes that does not
/// name the URL.
pub fn source(data: &[u8]) {
    use common::config::{LimitsConfig, SourcesConfig};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let url = format!(
            "http://{}/source",
            listener.local_addr().expect("an address")
        );
        let answer = data.to_vec();
        let server = tokio::spawn(async move {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mut head = [0u8; 8192];
            let _ = stream.read(&mut head).await;
            let _ = stream.write_all(&answer).await;
            let _ = stream.shutdown().await;
        });
        let config = SourcesConfig {
            allowed_hosts: vec!["127.0.0.1".to_owned()],
            max_redirects: 0,
            connect_timeout_secs: 1,
            timeout_secs: 2,
            ..SourcesConfig::default()
        };
        let limits = LimitsConfig {
            max_upload_bytes: 256 * 1024,
            max_video_bytes: 512 * 1024,
            ..LimitsConfig::default()
        };
        let data_dir = tempfile::tempdir().expect("a data directory");
        let spool = common::spool::Spool::new(&common::files::DataDir::new(data_dir.path()));
        let fetcher = worker::fetch::Fetcher::new(&config).expect("a fetcher");
        match fetcher.fetch(&url, &spool, &limits).await {
            Ok(fetched) => {
                assert!(fetched.spooled.size <= limits.max_bytes(fetched.media_type));
                assert!(fetched.spooled.size > 0);
            }
            Err(error) => {
                assert!(
                    [400, 413, 415, 502, 504].contains(&error.code),
                    "{}: {}",
                    error.code,
                    error.message
                );
                assert!(!error.message.contains("127.0.0.1"), "{}", error.message);
            }
        }
        server.abort();
    });
}

/// The SVG renderer on arbitrary bytes, in the process (where the worker runs it in a child):
/// structure bounds, then usvg and resvg, for a contain and a cover variant. What it draws
/// is the size the variants ask, never past the longest side; it must return, whatever the
/// bytes, with a picture or an error.
pub fn svg(data: &[u8]) {
    let limits = LimitsConfig {
        max_pixels: 4_000_000,
        max_alloc_bytes: 64 * 1024 * 1024,
        max_thumbnail_side: 512,
        ..LimitsConfig::default()
    };
    let documents = common::config::DocumentsConfig {
        max_elements: 2_000,
        max_depth: 32,
        ..common::config::DocumentsConfig::default()
    };
    let default = Variant::default_for(&ThumbnailConfig::default());
    let variants = worker::document::enlarged([
        Variant {
            size: "300x200".parse().expect("a valid size"),
            ..default.clone()
        },
        Variant {
            size: "64x64".parse().expect("a valid size"),
            fit: Fit::Cover,
            ..default
        },
    ]);
    if let Ok(drawn) = worker::document::svg::render(data, &variants, &limits, &documents) {
        let (width, height) = drawn.image.dimensions();
        assert!(width.max(height) <= 512, "{width}×{height}");
        assert!(drawn.width >= 1 && drawn.height >= 1);
    }
}

/// The PDF renderer on arbitrary bytes, in the process: bounds (pages, page size), then
/// hayro drawing the first page for a contain variant. It must return, whatever the bytes,
/// with a picture no larger than asked, or an error.
pub fn pdf(data: &[u8]) {
    let limits = LimitsConfig {
        max_alloc_bytes: 64 * 1024 * 1024,
        max_thumbnail_side: 256,
        ..LimitsConfig::default()
    };
    let documents = common::config::DocumentsConfig {
        max_pages: 100,
        ..common::config::DocumentsConfig::default()
    };
    let variants = worker::document::enlarged([Variant {
        size: "256x256".parse().expect("a valid size"),
        ..Variant::default_for(&ThumbnailConfig::default())
    }]);
    if let Ok(drawn) = worker::document::pdf::render(data.to_vec(), &variants, &limits, &documents)
    {
        let (width, height) = drawn.image.dimensions();
        assert!(width.max(height) <= 256, "{width}×{height}");
    }
}

/// A JPEG XL header and file on arbitrary bytes: what the header lets through is within the
/// pixel limit and its rendering within the allocation limit, and the whole thumbnail path
/// returns, a cut file as an error.
pub fn jxl_header(data: &[u8]) {
    use common::media::MediaType;
    let limits = LimitsConfig {
        max_pixels: 4_000_000,
        max_alloc_bytes: 64 * 1024 * 1024,
        ..LimitsConfig::default()
    };
    if let Ok((width, height)) = worker::decode::probe(data, MediaType::Jxl, &limits) {
        let pixels = u64::from(width) * u64::from(height);
        assert!(pixels <= limits.max_pixels, "{width}×{height}");
        // At least one channel of 32-bit floats per pixel is rendered.
        assert!(pixels * 4 <= limits.max_alloc_bytes, "{width}×{height}");
    }
    let variant = JobVariant {
        index: 0,
        variant: Variant::default_for(&ThumbnailConfig::default()),
    };
    let _ = worker::thumbnail::make(data, MediaType::Jxl, &[variant], &limits, &[]);
}

/// ICC profiles as a decoder hands them over (the first byte says whether the pixels are
/// grey): read into a profile under its bounds, or refused with a warning; when read, used
/// to convert 8- and 16-bit pixels, with and without alpha; a CMYK profile used as a CMYK
/// JPEG's is. It must return, whatever the bytes, and never refuse a job.
pub fn icc_profile(data: &[u8]) {
    use worker::colour::{Colour, Description};
    let Some((&selector, icc)) = data.split_first() else {
        return;
    };
    let grey = selector & 1 == 1;
    let colour = Colour::of(&Description::Icc(icc.to_vec()), grey);
    assert!(colour.converts() || colour.warning().is_some() || colour.embedded().is_none());
    let images = if grey {
        vec![
            image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(7, 5, |x, y| {
                image::Luma([(x * 40 + y * 9) as u8])
            })),
            image::DynamicImage::ImageLumaA16(image::ImageBuffer::from_pixel(
                3,
                2,
                image::LumaA([40_000, 65_535]),
            )),
        ]
    } else {
        vec![
            image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(7, 5, |x, y| {
                image::Rgb([(x * 40) as u8, (y * 60) as u8, 200])
            })),
            image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
                3,
                2,
                image::Rgba([250, 3, 90, 128]),
            )),
            image::DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(
                3,
                2,
                image::Rgb([65_535, 0, 30_000]),
            )),
        ]
    };
    for image in images {
        let (width, height, has_alpha) = (image.width(), image.height(), image.color().has_alpha());
        let converted = colour.to_srgb(image);
        assert_eq!((converted.width(), converted.height()), (width, height));
        assert_eq!(converted.color().has_alpha(), has_alpha);
    }
    if let Ok(profile) = moxcms::ColorProfile::new_from_slice(icc)
        && profile.color_space == moxcms::DataColorSpace::Cmyk
        && let Ok(rgb) = worker::colour::cmyk_to_rgb(&[0, 64, 128, 255, 10, 20, 30, 40], &profile)
    {
        assert_eq!(rgb.len(), 6);
    }
}
