//! Core speed, side by side: `cargo bench --bench core [-- DIR [REPEAT]]`.
//!
//! For every image in DIR (default `target/bench-corpus`, made by `benches/corpus/make.sh`),
//! on one thread, fitting in the default 100×100 box:
//!
//! - ours: the worker's own code path (`worker::thumbnail::make`: decode → resize → encode),
//!   in-process, median of REPEAT runs (default 11) after a warm-up, and its decode step alone;
//! - `vipsthumbnail` (libvips, `VIPS_CONCURRENCY=1`): median wall time of REPEAT processes,
//!   so its figure includes process start-up (reported on its own line);
//! - Pillow `Image.thumbnail` (`benches/pillow_thumbnail.py`): in-process median.
//!
//! Then the ratio of ours to the faster reference (vips counted net of its start-up), decoded megapixels per second, and each
//! one's peak RSS for one thumbnail of the file (`/usr/bin/time -f %M`, a fresh process each;
//! Pillow's includes its interpreter). Which JPEG and WebP decoders ours uses depends on the
//! cargo features the bench is built with, printed first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::config::{LimitsConfig, OutputFormat, ThumbnailConfig};
use common::media::MediaType;
use common::message::JobVariant;
use common::variant::{Fit, Variant};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--bench"));
    let first = args.next();
    if first.as_deref() == Some("--once") {
        let path = PathBuf::from(args.next().expect("--once FILE"));
        thumbnail(&std::fs::read(&path).unwrap(), media_type(&path));
        return;
    }
    let dir = PathBuf::from(first.unwrap_or_else(|| "target/bench-corpus".to_owned()));
    let repeat: usize = args.next().map_or(11, |a| a.parse().expect("REPEAT"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run benches/corpus/make.sh)", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some())
        .collect();
    files.sort();
    let (settings, limits) = (ThumbnailConfig::default(), LimitsConfig::default());
    println!(
        "core: one thread, fit in {}×{}, median of {repeat} runs; decoders: {}; resize SIMD: {}",
        settings.width,
        settings.height,
        worker::decode::backends(),
        worker::resize::simd()
    );
    let startup = vips_startup_ms(repeat);
    println!("vipsthumbnail start-up alone (1×1 PNG): {startup:.1} ms; \"vips net\" subtracts it");
    let names: Vec<String> = extra_variants()
        .iter()
        .map(|v| format!("{} {}", v.variant.name, v.variant.fit.as_str()))
        .collect();
    println!(
        "\"+ each extra\": ms per variant beyond the default, from one run making {} variants ({})",
        names.len(),
        names.join(", ")
    );
    println!(
        "| file | MP | ours ms | of which decode | + each extra ms | vips ms | vips net ms | Pillow ms | ours ÷ best | ours MP/s | RSS MB ours / vips / Pillow |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let media_type = media_type(path);
        if let Err(error @ worker::ThumbnailError::NotInThisBuild { .. }) =
            worker::decode::probe(&bytes, media_type, &limits)
        {
            let name = path.file_name().unwrap().to_string_lossy();
            println!("| {name} | {error} |");
            continue;
        }
        let made = thumbnail(&bytes, media_type);
        let megapixels = f64::from(made.source_width) * f64::from(made.source_height) / 1e6;
        let extra = extra_variants();
        let with_extra = median((0..repeat).map(|_| {
            let start = Instant::now();
            std::hint::black_box(make(&bytes, media_type, &extra));
            start.elapsed().as_secs_f64() * 1000.0
        }));
        let ours = median((0..repeat).map(|_| {
            let start = Instant::now();
            std::hint::black_box(thumbnail(&bytes, media_type));
            start.elapsed().as_secs_f64() * 1000.0
        }));
        let default = [default_variant().variant];
        let target = |w, h| worker::geometry::largest_scaled(&default, w, h, 4096);
        let decode = median((0..repeat).map(|_| {
            let start = Instant::now();
            let decoded = worker::decode::decode(&bytes, media_type, &limits, &target);
            std::hint::black_box(decoded.unwrap());
            start.elapsed().as_secs_f64() * 1000.0
        }));
        // A peer that cannot read the format (Pillow and JPEG XL) shows "—".
        let vips_runs: Vec<f64> = (0..repeat)
            .map_while(|_| vips_ms(path, settings.width))
            .collect();
        let vips = (!vips_runs.is_empty()).then(|| median(vips_runs.into_iter()));
        let pillow = pillow_ms(path, repeat, settings.width);
        let vips_net = vips.map(|vips| (vips - startup).max(0.1));
        let best = [vips_net, pillow].into_iter().flatten().reduce(f64::min);
        let exe = std::env::current_exe().unwrap();
        let rss = [
            peak_rss_mb(Command::new(&exe).arg("--once").arg(path)),
            vips.and_then(|_| peak_rss_mb(&vips_command(path, settings.width))),
            pillow.and_then(|_| peak_rss_mb(&pillow_command(path, 1, settings.width))),
        ];
        let shown = |value: Option<f64>, digits: usize| {
            value.map_or_else(|| "—".to_owned(), |value| format!("{value:.digits$}"))
        };
        println!(
            "| {} | {megapixels:.1} | {ours:.1} | {decode:.1} | {:.1} | {} | {} | {} | {} | {:.0} | {} / {} / {} |",
            path.file_name().unwrap().to_string_lossy(),
            (with_extra - ours) / (extra.len() - 1) as f64,
            shown(vips, 1),
            shown(vips_net, 1),
            shown(pillow, 1),
            shown(best.map(|best| ours / best), 2),
            megapixels / (ours / 1000.0),
            shown(rss[0], 0),
            shown(rss[1], 0),
            shown(rss[2], 0),
        );
    }
}

/// The default variant: what an upload that names none gets.
fn default_variant() -> JobVariant {
    JobVariant {
        index: 0,
        variant: Variant::default_for(&ThumbnailConfig::default()),
    }
}

/// The default and three more, as a client asking for several sizes might.
fn extra_variants() -> Vec<JobVariant> {
    let default = default_variant().variant;
    let more = [
        ("400x300", Fit::Cover, OutputFormat::Webp),
        ("320x", Fit::Contain, OutputFormat::Auto),
        ("64x64", Fit::Cover, OutputFormat::Jpeg),
    ];
    std::iter::once(default.clone())
        .chain(more.into_iter().map(|(size, fit, format)| Variant {
            name: size.to_owned(),
            size: size.parse().unwrap(),
            fit,
            format,
            ..default.clone()
        }))
        .enumerate()
        .map(|(index, variant)| JobVariant {
            index: index as u16,
            variant,
        })
        .collect()
}

fn make(
    bytes: &[u8],
    media_type: MediaType,
    variants: &[JobVariant],
) -> worker::thumbnail::Thumbnails {
    let made = worker::thumbnail::make(bytes, media_type, variants, &LimitsConfig::default(), &[])
        .unwrap();
    assert!(made.variants.iter().all(|(_, made)| made.is_ok()));
    made
}

fn thumbnail(bytes: &[u8], media_type: MediaType) -> worker::thumbnail::Thumbnails {
    make(bytes, media_type, &[default_variant()])
}

fn media_type(path: &Path) -> MediaType {
    match path.extension().unwrap().to_str().unwrap() {
        "jpg" | "jpeg" => MediaType::Jpeg,
        "png" => MediaType::Png,
        "gif" => MediaType::Gif,
        "webp" => MediaType::Webp,
        "tif" | "tiff" => MediaType::Tiff,
        "bmp" => MediaType::Bmp,
        "jxl" => MediaType::Jxl,
        "heic" => MediaType::Heic,
        "avif" => MediaType::Avif,
        other => panic!("no media type for .{other}"),
    }
}

fn median(times: impl Iterator<Item = f64>) -> f64 {
    let mut times: Vec<f64> = times.collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn vips_command(path: &Path, size: u32) -> Command {
    let out = std::env::temp_dir().join("thumbnailify-bench-vips.jpg");
    let mut command = Command::new("vipsthumbnail");
    command
        .env("VIPS_CONCURRENCY", "1")
        .arg(path)
        .arg("--size")
        .arg(format!("{size}x{size}"))
        .arg("-o")
        .arg(format!("{}[Q=85]", out.display()));
    command
}

/// One vipsthumbnail run's wall time; `None` when it cannot read the file.
fn vips_ms(path: &Path, size: u32) -> Option<f64> {
    let start = Instant::now();
    let status = vips_command(path, size)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("vipsthumbnail");
    status
        .success()
        .then(|| start.elapsed().as_secs_f64() * 1000.0)
}

fn vips_startup_ms(repeat: usize) -> f64 {
    let tiny = std::env::temp_dir().join("thumbnailify-bench-1x1.png");
    image::RgbImage::new(1, 1).save(&tiny).unwrap();
    median((0..repeat).map(|_| vips_ms(&tiny, 1).expect("vipsthumbnail reads PNG")))
}

fn pillow_command(path: &Path, repeat: usize, size: u32) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pillow_thumbnail.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(path)
        .arg(repeat.to_string())
        .arg(size.to_string());
    command
}

/// Pillow's median time in-process; `None` when it cannot read the file.
fn pillow_ms(path: &Path, repeat: usize, size: u32) -> Option<f64> {
    let out = pillow_command(path, repeat, size)
        .output()
        .expect("python3");
    out.status.success().then(|| {
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    })
}

/// Peak resident set of a command, in MB, as `/usr/bin/time` reports it.
fn peak_rss_mb(command: &Command) -> Option<f64> {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg(command.get_program())
        .args(command.get_args())
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .output()
        .expect("/usr/bin/time");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let kib: f64 = stderr.lines().last().unwrap().trim().parse().unwrap();
    Some(kib / 1024.0)
}
