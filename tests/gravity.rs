//! Content-aware crops on generated scenes: a salient object (a 260 px patch of a real
//! photograph, `tests/fixtures/jpeg-baseline.jpg`) pasted at a random place near one end of
//! a plain, noisy 1600×900 (or 900×1600) background, and a square thumbnail asked for with
//! `fit=cover`. The crop a thumbnail kept is found from its pixels (the offset at which the
//! scene, scaled as the thumbnail is, matches it best), and the object counts as kept when it
//! lies whole inside. With `gravity: attention` the worker must keep it in at least 95 of
//! 100 scenes (the centre keeps it in none). When `vipsthumbnail` is installed, libvips's
//! `--smartcrop attention` is run on the same scenes and its rate reported beside ours.

use common::config::{LimitsConfig, OutputFormat, ThumbnailConfig};
use common::media::MediaType;
use common::message::JobVariant;
use common::variant::{Fit, Gravity, Variant};
use image::{DynamicImage, GrayImage, ImageFormat, Rgb, RgbImage};

const SCENES: u32 = 100;
const OBJECT: u32 = 260;
const THUMB: u32 = 200;

/// One scene: the picture, and the object's place along the long side.
struct Scene {
    image: RgbImage,
    /// The object's first pixel along the long side.
    at: u32,
    /// Whether the long side is the width.
    landscape: bool,
}

/// A small xorshift generator: the same scenes on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

fn scene(index: u32, photo: &RgbImage) -> Scene {
    let mut random = Random(0x9e37_79b9_7f4a_7c15 ^ (u64::from(index + 1) * 0x1000_0001));
    let landscape = index.is_multiple_of(2);
    let (w, h) = if landscape { (1600, 900) } else { (900, 1600) };
    // A plain, muted background with noise of a few levels.
    let base = [
        60 + random.below(120),
        60 + random.below(120),
        60 + random.below(120),
    ];
    let mut image = RgbImage::from_fn(w, h, |_, _| {
        let noise = random.below(13) as i32 - 6;
        Rgb(base.map(|c| (c as i32 + noise).clamp(0, 255) as u8))
    });
    // Near one end: within 15 % of the long side from it.
    let long = w.max(h);
    let room = long * 15 / 100;
    let at = if random.below(2) == 0 {
        random.below(room)
    } else {
        long - OBJECT - random.below(room)
    };
    let across = random.below(w.min(h) - OBJECT);
    let (px, py) = (
        random.below(photo.width() - OBJECT),
        random.below(photo.height() - OBJECT),
    );
    let (x, y) = if landscape {
        (at, across)
    } else {
        (across, at)
    };
    for dy in 0..OBJECT {
        for dx in 0..OBJECT {
            image.put_pixel(x + dx, y + dy, *photo.get_pixel(px + dx, py + dy));
        }
    }
    Scene {
        image,
        at,
        landscape,
    }
}

fn photo() -> RgbImage {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg-baseline.jpg");
    image::open(path).unwrap().to_rgb8()
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(image.clone())
        .write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// Where along the long side (in scene pixels) the crop of a `THUMB`² cover thumbnail
/// starts: the offset at which the scene scaled to the thumbnail's scale matches it best.
fn crop_start(scene: &Scene, thumbnail: &GrayImage) -> f64 {
    let (w, h) = scene.image.dimensions();
    let scale = f64::from(THUMB) / f64::from(w.min(h));
    let long = (f64::from(w.max(h)) * scale).round() as u32;
    let (sw, sh) = if scene.landscape {
        (long, THUMB)
    } else {
        (THUMB, long)
    };
    let scaled = DynamicImage::ImageRgb8(scene.image.clone())
        .resize_exact(sw, sh, image::imageops::FilterType::Triangle)
        .to_luma8();
    let difference = |offset: u32| -> u64 {
        let mut sum = 0u64;
        for y in (0..THUMB).step_by(2) {
            for x in (0..THUMB).step_by(2) {
                let (sx, sy) = if scene.landscape {
                    (x + offset, y)
                } else {
                    (x, y + offset)
                };
                let a = i64::from(scaled.get_pixel(sx, sy)[0]);
                let b = i64::from(thumbnail.get_pixel(x, y)[0]);
                sum += (a - b).unsigned_abs();
            }
        }
        sum
    };
    let best = (0..=long - THUMB)
        .min_by_key(|&offset| difference(offset))
        .unwrap();
    f64::from(best) / scale
}

/// Whether the object lies whole in the crop that starts at `start`.
fn keeps(scene: &Scene, start: f64) -> bool {
    let side = f64::from(scene.image.width().min(scene.image.height()));
    // A scaled pixel of slack either way: the match is found on the thumbnail's grid.
    let slack = side / f64::from(THUMB);
    start <= f64::from(scene.at) + slack && start + side >= f64::from(scene.at + OBJECT) - slack
}

/// Our thumbnail of a scene with `gravity`, in grey.
fn ours(scene: &Scene, gravity: Gravity) -> GrayImage {
    let variant = JobVariant {
        index: 0,
        variant: Variant {
            name: "200x200".into(),
            size: "200x200".parse().unwrap(),
            fit: Fit::Cover,
            format: OutputFormat::Png,
            gravity,
            ..Variant::default_for(&ThumbnailConfig::default())
        },
    };
    let mut made = worker::thumbnail::make(
        &png(&scene.image),
        MediaType::Png,
        &[variant],
        &LimitsConfig::default(),
        &[],
    )
    .unwrap();
    let bytes = made.variants.remove(0).1.unwrap().bytes;
    image::load_from_memory(&bytes).unwrap().to_luma8()
}

/// libvips's `--smartcrop attention` thumbnail of a scene, in grey; `None` without
/// vipsthumbnail.
fn libvips(scene: &Scene, dir: &std::path::Path, index: u32) -> Option<GrayImage> {
    let input = dir.join(format!("scene-{index}.png"));
    std::fs::write(&input, png(&scene.image)).unwrap();
    let output = dir.join(format!("vips-{index}.png"));
    let status = std::process::Command::new("vipsthumbnail")
        .arg(&input)
        .args(["--smartcrop", "attention", "--size", "200x200", "-o"])
        .arg(&output)
        .status()
        .ok()?;
    status
        .success()
        .then(|| image::open(&output).unwrap().to_luma8())
}

#[test]
fn attention_keeps_an_off_centre_object_whole_in_at_least_95_of_100_scenes() {
    let photo = photo();
    let dir = tempfile::tempdir().unwrap();
    let (mut attention, mut centre, mut vips, mut vips_run) = (0, 0, 0, 0);
    let mut missed = Vec::new();
    for index in 0..SCENES {
        let scene = scene(index, &photo);
        let start = crop_start(&scene, &ours(&scene, Gravity::Attention));
        if keeps(&scene, start) {
            attention += 1;
        } else {
            eprintln!(
                "scene {index}: object at {}, crop from {start:.0}",
                scene.at
            );
            missed.push(index);
        }
        if index < 10 && keeps(&scene, crop_start(&scene, &ours(&scene, Gravity::Centre))) {
            centre += 1;
        }
        if let Some(thumbnail) = libvips(&scene, dir.path(), index) {
            vips_run += 1;
            if keeps(&scene, crop_start(&scene, &thumbnail)) {
                vips += 1;
            }
        }
    }
    eprintln!(
        "attention kept the object whole in {attention} of {SCENES} scenes (missed: {missed:?})"
    );
    eprintln!("the centre kept it in {centre} of 10");
    if vips_run > 0 {
        eprintln!("libvips --smartcrop attention kept it in {vips} of {vips_run}");
    } else {
        eprintln!("vipsthumbnail is not installed: libvips's rate not measured");
    }
    assert_eq!(centre, 0, "the scenes put the object off the centre");
    assert!(
        attention >= 95,
        "attention kept {attention} of {SCENES}: missed {missed:?}"
    );
}
