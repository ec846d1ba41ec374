//! Content-aware crops: where `attention` and `entropy` put a `cover` crop.
//!
//! Both look at the decoded image (already reduced by shrink-on-load) brought down further:
//! to at most [`EDGE_SIDE`] pixels a side for edges, whose texture makes a subject stand out
//! and is averaged away at smaller sizes, and to [`SIDE`] for colour and entropy, properties
//! of regions. The crop is placed to within a cell of a [`GRID`]×[`GRID`] grid. The
//! [`Analysis`] is made once per image and serves every variant; its cost per megapixel is in
//! BENCHMARKS.md.
//!
//! - `attention`, as libvips's: each pixel scores its edges (Sobel on CIE L*), whether it is
//!   skin-toned (a* 3–22, b* 4–31, L* ≥ 15) and whether it is saturated (chroma over 60),
//!   each colour feature weighing 255 times the share of the picture it leaves out (libvips
//!   weighs them 255 always, so a saturated or skin-toned background outscores the subject
//!   on it). Each grid cell takes the mean score of its pixels; the grid is blurred with a
//!   Gaussian as wide as a sixth of the crop's diagonal (in cells), and the crop is centred
//!   on the highest cell, as far as the image's edges allow.
//! - `entropy`: the crop's window starts as the whole image and shrinks to the crop's size;
//!   each step cuts an eighth of what is left to cut (a pixel at least) off the side, left
//!   or right (top or bottom), whose grey histogram has the lower entropy.

use image::{DynamicImage, RgbImage};

use crate::geometry::Crop;

/// The longest side of the image the analysis looks at for colour and entropy.
pub const SIDE: u32 = 256;
/// The longest side of the image the analysis looks at for edges.
pub const EDGE_SIDE: u32 = 512;
/// Cells per side of the attention grid.
pub const GRID: usize = 32;

/// What the crops of one image are placed by, made once per image.
#[derive(Debug)]
pub struct Analysis {
    /// The reduced image as grey levels, row by row.
    grey: Vec<u8>,
    width: usize,
    height: usize,
    /// The attention score of each grid cell, row by row.
    cells: Vec<f64>,
}

impl Analysis {
    /// Analyses `image` (the decoded image, any size).
    pub fn of(image: &DynamicImage) -> Self {
        // Edges at up to EDGE_SIDE: a texture that makes a subject stand out is averaged
        // away at SIDE. Colour (skin, saturation) is a property of regions: SIDE is plenty.
        let sharp = crate::resize::fitted(image, EDGE_SIDE).to_rgb8();
        let edges = edge_cells(&sharp);
        let small = if sharp.width().max(sharp.height()) <= SIDE {
            sharp
        } else {
            crate::resize::fitted(&DynamicImage::ImageRgb8(sharp), SIDE).to_rgb8()
        };
        let (width, height) = (small.width() as usize, small.height() as usize);
        let grey = small
            .pixels()
            .map(|p| {
                let [r, g, b] = p.0.map(u32::from);
                ((r * 77 + g * 150 + b * 29) >> 8) as u8
            })
            .collect();
        let mut skin = vec![0u32; GRID * GRID];
        let mut saturated = vec![0u32; GRID * GRID];
        let mut counts = vec![0u32; GRID * GRID];
        for (index, pixel) in small.pixels().enumerate() {
            let (x, y) = (index % width, index / width);
            let [l, a, b] = lab(pixel.0);
            let cell = (y * GRID / height) * GRID + x * GRID / width;
            skin[cell] +=
                u32::from((3.0..=22.0).contains(&a) && (4.0..=31.0).contains(&b) && l >= 15.0);
            saturated[cell] += u32::from((a * a + b * b).sqrt() > 60.0);
            counts[cell] += 1;
        }
        // A colour that covers most of the picture (a skin-toned wall, a saturated sky) draws
        // no eye to one place: each colour feature weighs 255 times the share of the picture
        // it leaves out.
        let total = (width * height) as f64;
        let weight =
            |hits: &[u32]| 255.0 * (1.0 - hits.iter().map(|&n| f64::from(n)).sum::<f64>() / total);
        let (skin_weight, saturated_weight) = (weight(&skin), weight(&saturated));
        // Each cell's mean per pixel, so that the two resolutions add up alike.
        let cells = (0..GRID * GRID)
            .map(|cell| {
                let count = f64::from(counts[cell].max(1));
                edges[cell]
                    + skin_weight * f64::from(skin[cell]) / count
                    + saturated_weight * f64::from(saturated[cell]) / count
            })
            .collect();
        Self {
            grey,
            width,
            height,
            cells,
        }
    }

    /// `crop` (a region of the image, as fractions) moved to where `attention` puts it.
    pub fn attention(&self, crop: Crop) -> Crop {
        // The blur spans a sixth of the crop's diagonal, in cells.
        let (cw, ch) = (crop.width * GRID as f64, crop.height * GRID as f64);
        let sigma = ((cw * cw + ch * ch).sqrt() / 6.0).max(0.5);
        let blurred = blur(&self.cells, sigma);
        let (best, _) =
            blurred
                .iter()
                .enumerate()
                .fold((GRID * GRID / 2, f64::MIN), |(bi, bv), (i, &v)| {
                    if v > bv { (i, v) } else { (bi, bv) }
                });
        let centre = |cell: usize| (cell as f64 + 0.5) / GRID as f64;
        let (cx, cy) = (centre(best % GRID), centre(best / GRID));
        Crop {
            left: (cx - crop.width / 2.0).clamp(0.0, 1.0 - crop.width),
            top: (cy - crop.height / 2.0).clamp(0.0, 1.0 - crop.height),
            ..crop
        }
    }

    /// `crop` moved to where `entropy` puts it.
    pub fn entropy(&self, crop: Crop) -> Crop {
        let (w, h) = (self.width as f64, self.height as f64);
        let (target_w, target_h) = (crop.width * w, crop.height * h);
        let (mut left, mut top, mut width, mut height) = (0.0, 0.0, w, h);
        // An eighth of what is left to cut each step, a pixel at least: at most a few dozen
        // steps on the reduced image.
        while width - target_w >= 1.0 || height - target_h >= 1.0 {
            let slice_w = ((width - target_w) / 8.0).max(1.0).min(width - target_w);
            let slice_h = ((height - target_h) / 8.0).max(1.0).min(height - target_h);
            if width - target_w >= 1.0 {
                let left_score = self.region_entropy(left, top, slice_w, height);
                let right_score = self.region_entropy(left + width - slice_w, top, slice_w, height);
                width -= slice_w;
                if left_score < right_score {
                    left += slice_w;
                }
            }
            if height - target_h >= 1.0 {
                let top_score = self.region_entropy(left, top, width, slice_h);
                let bottom_score =
                    self.region_entropy(left, top + height - slice_h, width, slice_h);
                height -= slice_h;
                if top_score < bottom_score {
                    top += slice_h;
                }
            }
        }
        // The window is now the crop's size, to within a pixel; the crop is centred on it.
        let (cx, cy) = ((left + width / 2.0) / w, (top + height / 2.0) / h);
        Crop {
            left: (cx - crop.width / 2.0).clamp(0.0, 1.0 - crop.width),
            top: (cy - crop.height / 2.0).clamp(0.0, 1.0 - crop.height),
            ..crop
        }
    }

    /// The entropy, in bits, of the grey histogram of a region of the reduced image.
    fn region_entropy(&self, left: f64, top: f64, width: f64, height: f64) -> f64 {
        let x0 = (left.floor() as usize).min(self.width - 1);
        let y0 = (top.floor() as usize).min(self.height - 1);
        let x1 = ((left + width).ceil() as usize).clamp(x0 + 1, self.width);
        let y1 = ((top + height).ceil() as usize).clamp(y0 + 1, self.height);
        let mut histogram = [0u32; 256];
        for y in y0..y1 {
            for &value in &self.grey[y * self.width + x0..y * self.width + x1] {
                histogram[usize::from(value)] += 1;
            }
        }
        let total = ((x1 - x0) * (y1 - y0)) as f64;
        histogram
            .iter()
            .filter(|&&count| count > 0)
            .map(|&count| {
                let p = f64::from(count) / total;
                -p * p.log2()
            })
            .sum()
    }
}

/// Per grid cell, the mean Sobel magnitude (|gx| + |gy|) of CIE L* over its pixels.
fn edge_cells(image: &RgbImage) -> Vec<f64> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    // L* of each pixel, from its luminance (sRGB weights on linear light), by table.
    let linear: Vec<f32> = (0..=255u8).map(linear).collect();
    let lightness: Vec<f32> = image
        .pixels()
        .map(|p| {
            let [r, g, b] = p.0.map(|v| linear[usize::from(v)]);
            let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
            lab_f(y) * 116.0 - 16.0
        })
        .collect();
    let mut sums = vec![0.0; GRID * GRID];
    let mut counts = vec![0u32; GRID * GRID];
    for y in 0..height {
        let (up, down) = (y.saturating_sub(1), (y + 1).min(height - 1));
        for x in 0..width {
            let (left, right) = (x.saturating_sub(1), (x + 1).min(width - 1));
            let at = |xx: usize, yy: usize| lightness[yy * width + xx];
            let gx = (at(right, up) + 2.0 * at(right, y) + at(right, down))
                - (at(left, up) + 2.0 * at(left, y) + at(left, down));
            let gy = (at(left, down) + 2.0 * at(x, down) + at(right, down))
                - (at(left, up) + 2.0 * at(x, up) + at(right, up));
            let cell = (y * GRID / height) * GRID + x * GRID / width;
            sums[cell] += f64::from(gx.abs() + gy.abs());
            counts[cell] += 1;
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(sum, &count)| sum / f64::from(count.max(1)))
        .collect()
}

/// A separable Gaussian blur of the grid (edges extended).
fn blur(cells: &[f64], sigma: f64) -> Vec<f64> {
    let radius = (sigma * 3.0).ceil() as isize;
    let kernel: Vec<f64> = (-radius..=radius)
        .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let pass = |source: &[f64], across: bool| {
        let mut out = vec![0.0; GRID * GRID];
        for y in 0..GRID {
            for x in 0..GRID {
                out[y * GRID + x] = kernel
                    .iter()
                    .zip(-radius..=radius)
                    .map(|(weight, offset)| {
                        let (xx, yy) = if across {
                            (
                                (x as isize + offset).clamp(0, GRID as isize - 1) as usize,
                                y,
                            )
                        } else {
                            (
                                x,
                                (y as isize + offset).clamp(0, GRID as isize - 1) as usize,
                            )
                        };
                        weight * source[yy * GRID + xx]
                    })
                    .sum();
            }
        }
        out
    };
    pass(&pass(cells, true), false)
}

/// An sRGB level in linear light.
fn linear(v: u8) -> f32 {
    let v = f32::from(v) / 255.0;
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// CIE Lab's companding function.
fn lab_f(t: f32) -> f32 {
    if t > 0.008_856 {
        t.cbrt()
    } else {
        7.787 * t + 16.0 / 116.0
    }
}

/// CIE L*a*b* (D65) of an sRGB pixel.
fn lab([r, g, b]: [u8; 3]) -> [f32; 3] {
    let (r, g, b) = (linear(r), linear(g), linear(b));
    let x = (0.412_456_4 * r + 0.357_576_1 * g + 0.180_437_5 * b) / 0.950_47;
    let y = 0.212_672_9 * r + 0.715_152_2 * g + 0.072_175 * b;
    let z = (0.019_333_9 * r + 0.119_192 * g + 0.950_304_1 * b) / 1.088_83;
    let (fx, fy, fz) = (lab_f(x), lab_f(y), lab_f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;

    /// A grey, lightly noisy 1600×900 scene with a saturated, edged, shaded 260 px object
    /// (many levels: a higher entropy than the noise) whose left edge is at `x`.
    fn scene(x: u32) -> DynamicImage {
        let mut state = 0x2545_f491_u32;
        let mut image = RgbImage::from_fn(1600, 900, |_, _| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let v = 110 + (state % 12) as u8;
            Rgb([v, v, v])
        });
        for yy in 320..580 {
            for xx in x..x + 260 {
                let stripe = ((xx - x) / 20 + (yy - 320) / 20).is_multiple_of(2);
                let shade = ((xx - x + yy - 320) / 2) as u8;
                let pixel = if stripe {
                    Rgb([255 - shade / 2, 30, 40])
                } else {
                    Rgb([30, 60, 255 - shade / 2])
                };
                image.put_pixel(xx, yy, pixel);
            }
        }
        DynamicImage::ImageRgb8(image)
    }

    fn square() -> Crop {
        Crop {
            left: 0.5 - 900.0 / 1600.0 / 2.0,
            top: 0.0,
            width: 900.0 / 1600.0,
            height: 1.0,
        }
    }

    fn keeps(crop: Crop, x: u32) -> bool {
        let (left, right) = (crop.left * 1600.0, (crop.left + crop.width) * 1600.0);
        left <= f64::from(x) + 0.5 && right >= f64::from(x + 260) - 0.5
    }

    #[test]
    fn attention_and_entropy_keep_an_object_near_either_side() {
        for x in [30, 1310] {
            let analysis = Analysis::of(&scene(x));
            assert!(!keeps(square(), x), "the centre misses it");
            let crop = analysis.attention(square());
            assert!(keeps(crop, x), "attention at {x}: {crop:?}");
            let crop = analysis.entropy(square());
            assert!(keeps(crop, x), "entropy at {x}: {crop:?}");
        }
    }

    #[test]
    fn a_crop_as_large_as_the_image_does_not_move() {
        let analysis = Analysis::of(&scene(30));
        let whole = Crop {
            left: 0.0,
            top: 0.0,
            width: 1.0,
            height: 1.0,
        };
        assert_eq!(analysis.attention(whole), whole);
        assert_eq!(analysis.entropy(whole), whole);
    }
}
