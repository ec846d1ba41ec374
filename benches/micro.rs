//! In-process micro-benchmarks with divan: `cargo bench --bench micro`.
//!
//! Each group puts the path the service takes beside the plain alternative it replaced, on
//! synthetic input of a realistic size (the figures do not depend on image content):
//!
//! - `base64`: an 8 MiB upload's body through the gateway's streaming decoder (the SIMD
//!   engine, fed 64 KiB chunks as hyper delivers them), beside base64's scalar engine decoding
//!   the whole body at once. Throughput is of decoded bytes.
//! - `resize`: a 3840×2160 RGB image to its 100×56 thumbnail through the worker's resize (box
//!   pre-reduction to twice the thumbnail, then Lanczos3), beside Lanczos3 alone.
//! - `bmp`: a 1920×1280 24-bit BMP through the worker's decoder (rows copied from the input)
//!   beside `image`'s BMP decoder.
//! - `encode`: a 400×250 thumbnail (the 800×500 photograph fixture, resized) encoded as each
//!   output format: JPEG at quality 85, PNG, lossless WebP and, with the `heif` feature,
//!   AVIF at quality 85 and 60.
//! - `lzw`: the LZW streams of a photograph's GIF frame and TIFF strips through weezl 0.1,
//!   which the `gif` and `tiff` crates use, weezl 0.2, and the worker's own decoder.
//! - `colour`: a 1-megapixel image (1000×1000) from Display P3 to sRGB, at 8 and 16 bits,
//!   with the transform made each time as the pipeline does (per thumbnail), and an Adobe
//!   RGB → sRGB one for a second profile; throughput in pixels, so the cost per megapixel
//!   reads off directly. The pipeline converts thumbnails, not decodes: a 400×300 one is
//!   0.12 megapixels.
//! - `attention`: the content analysis of `gravity: attention` on a 1600×900 decoded image
//!   (a PNG, which has no shrink-on-load) and on a 480×270 one (a large JPEG's 1/8 decode),
//!   then the placement of one crop.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::{PAD_INDIFFERENT, STANDARD};
use base64::engine::simd::Simd;
use common::config::LimitsConfig;
use common::media::MediaType;
use divan::Bencher;
use divan::counter::BytesCount;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use gateway::body::Base64Stream;
use image::{DynamicImage, ImageFormat, RgbImage};
use worker::encode::Tag;

fn main() {
    divan::main();
}

/// `len` bytes that look random to a decoder (xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A photo-sized RGB image with smooth gradients and fine detail.
fn photo(width: u32, height: u32) -> DynamicImage {
    let grain = noise(64 * 1024);
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        let g = grain[((x * 31 + y * 17) % 65_536) as usize] / 8;
        image::Rgb([(x / 16) as u8 ^ g, (y / 9) as u8, ((x + y) / 24) as u8 ^ g])
    }))
}

mod base64_decode {
    use super::*;

    const RAW_BYTES: usize = 8 << 20;
    const CHUNK: usize = 64 << 10;

    #[divan::bench(sample_count = 30)]
    fn gateway_stream_simd(bencher: Bencher) {
        let encoded = STANDARD.encode(noise(RAW_BYTES)).into_bytes();
        bencher.counter(BytesCount::new(RAW_BYTES)).bench(|| {
            let mut stream = Base64Stream::new(RAW_BYTES as u64);
            stream.reserve(stream.capacity_for(encoded.len()));
            for chunk in encoded.chunks(CHUNK) {
                stream.push(chunk).unwrap();
            }
            stream.finish().unwrap()
        });
    }

    #[divan::bench(sample_count = 30)]
    fn simd_whole_body(bencher: Bencher) {
        let encoded = STANDARD.encode(noise(RAW_BYTES));
        let simd = Simd::standard(PAD_INDIFFERENT);
        bencher
            .counter(BytesCount::new(RAW_BYTES))
            .bench(|| simd.decode(&encoded).unwrap());
    }

    #[divan::bench(sample_count = 30)]
    fn scalar_whole_body(bencher: Bencher) {
        let encoded = STANDARD.encode(noise(RAW_BYTES));
        bencher
            .counter(BytesCount::new(RAW_BYTES))
            .bench(|| STANDARD.decode(&encoded).unwrap());
    }
}

mod resize {
    use super::*;

    const SOURCE: (u32, u32) = (3840, 2160);
    const THUMBNAIL: (u32, u32) = (100, 56);

    #[divan::bench(sample_count = 30)]
    fn worker_box_then_lanczos3(bencher: Bencher) {
        let source = photo(SOURCE.0, SOURCE.1);
        let plan = worker::geometry::Plan {
            width: THUMBNAIL.0,
            height: THUMBNAIL.1,
            crop: None,
            scaled: THUMBNAIL,
        };
        bencher.bench_local(|| worker::resize::resize(&source, &plan).unwrap());
    }

    #[divan::bench(sample_count = 30)]
    fn lanczos3_alone(bencher: Bencher) {
        let source = photo(SOURCE.0, SOURCE.1);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
        bencher.bench_local(|| {
            let mut target = DynamicImage::new(THUMBNAIL.0, THUMBNAIL.1, source.color());
            Resizer::new()
                .resize(&source, &mut target, &options)
                .unwrap();
            target
        });
    }
}

mod bmp {
    use super::*;

    fn file() -> Vec<u8> {
        let mut bytes = Vec::new();
        photo(1920, 1280)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Bmp)
            .unwrap();
        bytes
    }

    #[divan::bench(sample_count = 30)]
    fn worker_rows_from_input(bencher: Bencher) {
        let bytes = file();
        let limits = LimitsConfig::default();
        bencher.bench(|| {
            worker::decode::decode(&bytes, MediaType::Bmp, &limits, &|_, _| (100, 56)).unwrap()
        });
    }

    #[divan::bench(sample_count = 30)]
    fn image_decoder(bencher: Bencher) {
        let bytes = file();
        bencher.bench(|| image::load_from_memory_with_format(&bytes, ImageFormat::Bmp).unwrap());
    }
}

mod encode {
    use super::*;
    use common::config::OutputFormat;

    /// The thumbnail the service makes of its 800×500 photograph fixture in a 400×300 box.
    fn thumbnail() -> DynamicImage {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/jpeg-baseline.jpg"
        );
        image::open(path)
            .unwrap()
            .resize(400, 300, image::imageops::FilterType::Lanczos3)
    }

    fn bench_format(bencher: Bencher, format: OutputFormat, quality: u8, lossless: bool) {
        let image = thumbnail();
        bencher.bench(|| {
            worker::encode::encode(image.clone(), format, quality, lossless, Tag::Srgb).unwrap()
        });
    }

    #[divan::bench(sample_count = 30)]
    fn jpeg_q85(bencher: Bencher) {
        bench_format(bencher, OutputFormat::Jpeg, 85, false);
    }

    #[divan::bench(sample_count = 30)]
    fn png(bencher: Bencher) {
        bench_format(bencher, OutputFormat::Png, 85, false);
    }

    #[divan::bench(sample_count = 30)]
    fn webp_lossless(bencher: Bencher) {
        bench_format(bencher, OutputFormat::Webp, 85, true);
    }

    #[cfg(feature = "libwebp")]
    #[divan::bench(sample_count = 30)]
    fn webp_q85(bencher: Bencher) {
        bench_format(bencher, OutputFormat::Webp, 85, false);
    }

    #[cfg(feature = "heif")]
    #[divan::bench(sample_count = 30)]
    fn avif_q85(bencher: Bencher) {
        bench_format(bencher, OutputFormat::Avif, 85, false);
    }

    #[cfg(feature = "heif")]
    #[divan::bench(sample_count = 30)]
    fn avif_q60(bencher: Bencher) {
        bench_format(bencher, OutputFormat::Avif, 60, false);
    }
}

/// LZW, which GIF and TIFF compress with: weezl 0.1, the version the `gif` and `tiff` crates
/// use, beside weezl 0.2, its rewrite, on the same streams. The streams are what a
/// photograph gives: a 1920×1080 GIF frame's palette indices (LSB-first codes, as GIF), and a
/// 2560×1600 RGB TIFF's strips of 8 rows (MSB-first with TIFF's early size switch, one
/// decoder per strip as the `tiff` crate does).
mod lzw {
    use super::*;
    use worker::decode::lzw::{Decoder, Dialect};

    /// The GIF frame's codes, and the TIFF strips' codes.
    fn streams() -> (Vec<u8>, Vec<Vec<u8>>) {
        let indices: Vec<u8> = photo(1920, 1080)
            .to_rgb8()
            .pixels()
            .map(|p| (p[0] & 0xE0) | ((p[1] & 0xE0) >> 3) | (p[2] >> 6))
            .collect();
        let gif = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8)
            .encode(&indices)
            .unwrap();
        let rgb = photo(2560, 1600).to_rgb8().into_raw();
        let tiff = rgb
            .chunks(2560 * 3 * 8)
            .map(|strip| {
                weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                    .encode(strip)
                    .unwrap()
            })
            .collect();
        (gif, tiff)
    }

    #[divan::bench(sample_count = 20)]
    fn gif_weezl_0_1(bencher: Bencher) {
        let (gif, _) = streams();
        bencher.bench(|| {
            weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8)
                .decode(&gif)
                .unwrap()
        });
    }

    #[divan::bench(sample_count = 20)]
    fn gif_weezl_0_2(bencher: Bencher) {
        let (gif, _) = streams();
        bencher.bench(|| {
            weezl_0_2::decode::Decoder::new(weezl_0_2::BitOrder::Lsb, 8)
                .decode(&gif)
                .unwrap()
        });
    }

    #[divan::bench(sample_count = 20)]
    fn tiff_weezl_0_1(bencher: Bencher) {
        let (_, strips) = streams();
        bencher.bench(|| {
            strips
                .iter()
                .map(|strip| {
                    weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                        .decode(strip)
                        .unwrap()
                        .len()
                })
                .sum::<usize>()
        });
    }

    #[divan::bench(sample_count = 20)]
    fn tiff_weezl_0_2(bencher: Bencher) {
        let (_, strips) = streams();
        bencher.bench(|| {
            strips
                .iter()
                .map(|strip| {
                    weezl_0_2::decode::Decoder::with_tiff_size_switch(weezl_0_2::BitOrder::Msb, 8)
                        .decode(strip)
                        .unwrap()
                        .len()
                })
                .sum::<usize>()
        });
    }

    #[divan::bench(sample_count = 20)]
    fn gif_ours(bencher: Bencher) {
        let (gif, _) = streams();
        let mut decoder = Decoder::default();
        bencher.bench_local(|| {
            decoder
                .decode(Dialect::Gif, 8, &gif, 1920 * 1080)
                .unwrap()
                .len()
        });
    }

    #[divan::bench(sample_count = 20)]
    fn tiff_ours(bencher: Bencher) {
        let (_, strips) = streams();
        let mut decoder = Decoder::default();
        bencher.bench_local(|| {
            strips
                .iter()
                .map(|strip| {
                    decoder
                        .decode(Dialect::Tiff, 8, strip, 2560 * 3 * 8)
                        .unwrap()
                        .len()
                })
                .sum::<usize>()
        });
    }
}

mod colour {
    use super::*;
    use divan::counter::ItemsCount;
    use worker::colour::{Colour, Description};

    fn converter(profile: moxcms::ColorProfile) -> Colour {
        Colour::of(&Description::Icc(profile.encode().unwrap()), false)
    }

    #[divan::bench(sample_count = 30)]
    fn p3_to_srgb_8_bit(bencher: Bencher) {
        let colour = converter(moxcms::ColorProfile::new_display_p3());
        let image = photo(1000, 1000);
        bencher
            .counter(ItemsCount::new(1_000_000usize))
            .bench(|| colour.to_srgb(image.clone()));
    }

    #[divan::bench(sample_count = 30)]
    fn p3_to_srgb_16_bit(bencher: Bencher) {
        let colour = converter(moxcms::ColorProfile::new_display_p3());
        let image = DynamicImage::ImageRgb16(photo(1000, 1000).to_rgb16());
        bencher
            .counter(ItemsCount::new(1_000_000usize))
            .bench(|| colour.to_srgb(image.clone()));
    }

    #[divan::bench(sample_count = 30)]
    fn adobe_rgb_to_srgb_8_bit(bencher: Bencher) {
        let colour = converter(moxcms::ColorProfile::new_adobe_rgb());
        let image = photo(1000, 1000);
        bencher
            .counter(ItemsCount::new(1_000_000usize))
            .bench(|| colour.to_srgb(image.clone()));
    }

    #[divan::bench(sample_count = 30)]
    fn copy_only(bencher: Bencher) {
        // What the clone in the others costs, to subtract.
        let image = photo(1000, 1000);
        bencher
            .counter(ItemsCount::new(1_000_000usize))
            .bench(|| image.clone());
    }
}

mod attention {
    use super::*;
    use worker::geometry::Crop;
    use worker::gravity::Analysis;

    fn square(width: u32, height: u32) -> Crop {
        let side = f64::from(height) / f64::from(width);
        Crop {
            left: (1.0 - side) / 2.0,
            top: 0.0,
            width: side,
            height: 1.0,
        }
    }

    #[divan::bench(sample_count = 20)]
    fn analyse_and_place_1600x900(bencher: Bencher) {
        let image = photo(1600, 900);
        bencher.bench(|| Analysis::of(&image).attention(square(1600, 900)));
    }

    #[divan::bench(sample_count = 20)]
    fn analyse_and_place_480x270(bencher: Bencher) {
        let image = photo(480, 270);
        bencher.bench(|| Analysis::of(&image).attention(square(480, 270)));
    }
}
