//! A JPEG's markers, and the scans of a progressive JPEG that a 1/8-scale decode never reads.
//!
//! A JPEG is a run of marker segments (`FF xx`, a length, a body); after a start-of-scan
//! segment (SOS) comes entropy-coded data, in which `FF` is followed by `00` (a stuffed byte)
//! or by a restart marker, so that the next real marker is found by searching for `FF`
//! ([`markers`], which [`super::metadata`] also walks).
//!
//! A progressive JPEG sends its coefficients in several scans: the DC coefficients of every
//! block first, then bands of AC coefficients, each component on its own, then refinements
//! of each, bit by bit. Most of a photograph's bytes are the luma AC scans. Decoding at 1/8
//! scale, libjpeg-turbo turns each 8×8 block of a component into one pixel from its DC
//! coefficient alone (a 1×1 inverse DCT), the luma of a 4:2:0 image and every component of a
//! 4:4:4 one; a subsampled chroma component is scaled by a 2×2 inverse DCT instead, which
//! reads its lowest AC coefficients. So [`for_eighth_scale`] drops the AC scans of every
//! component whose blocks become single pixels, and the decoder skips their entropy decoding,
//! which is most of the time a progressive JPEG costs, for pixels identical to those of the
//! whole file (the tests compare them).
//!
//! One AC scan of each such component is kept: its first, if it starts within the first nine
//! coefficients. With no AC data at all for a component, libjpeg-turbo's block smoothing would
//! re-estimate its DC coefficients from their neighbours; with some, it estimates only AC
//! coefficients, which a 1×1 inverse DCT does not read. Refinement scans are dropped together
//! with what they refine, never apart from it.
//!
//! Anything unexpected (a baseline or arithmetic-coded file, a truncated segment, a scan of a
//! component the frame does not declare) keeps the file as it is, for the decoder to judge.

use std::ops::Range;

/// One marker segment: its code (the byte after `FF`) and where it lies, from its `FF` to the
/// end of its length-counted body (to just after the code for EOI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The marker's code: `0xDA` for SOS, `0xC2` for a progressive frame, and so on.
    pub code: u8,
    /// The segment's bytes in the file (clamped to the file's end).
    pub range: Range<usize>,
}

/// The marker segments of a JPEG after SOI, in file order, up to and including EOI or the end
/// of the bytes; entropy-coded data between them is stepped over. Nothing when the bytes do
/// not start with SOI.
pub fn markers(bytes: &[u8]) -> impl Iterator<Item = Marker> + '_ {
    let mut at = if bytes.starts_with(&[0xFF, 0xD8]) {
        2
    } else {
        bytes.len()
    };
    std::iter::from_fn(move || {
        loop {
            at += memchr::memchr(0xFF, bytes.get(at..)?)?;
            // Fill bytes: any number of FF before the code.
            while bytes.get(at + 1) == Some(&0xFF) {
                at += 1;
            }
            let code = *bytes.get(at + 1)?;
            match code {
                // A stuffed byte or a restart marker inside entropy-coded data, or TEM.
                0x00 | 0x01 | 0xD0..=0xD7 => at += 2,
                0xD9 => {
                    let range = at..at + 2;
                    at = bytes.len();
                    return Some(Marker { code, range });
                }
                _ => {
                    let length = u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]);
                    let end = (at + 2 + usize::from(length)).min(bytes.len());
                    let range = at..end;
                    at = end;
                    return Some(Marker { code, range });
                }
            }
        }
    })
}

/// A copy of a progressive JPEG without the scans a 1/8-scale decode does not read, or `None`
/// when there is nothing to drop (a baseline file, or one this does not understand).
pub fn for_eighth_scale(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut frame: Option<Frame> = None;
    let mut dropped: Vec<Range<usize>> = Vec::new();
    let mut markers = markers(bytes).peekable();
    while let Some(marker) = markers.next() {
        // The segment's body, after its code and length (none for EOI).
        let body = bytes
            .get(marker.range.start + 4..marker.range.end)
            .unwrap_or_default();
        match marker.code {
            0xC2 => frame = Some(Frame::read(body)?),
            // Any other frame type: baseline, lossless, hierarchical or arithmetic-coded.
            0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xDA => {
                let frame = frame.as_mut()?;
                if frame.drops(&Scan::read(body)?)? {
                    // The scan runs from its SOS to the next marker (or the end of the file).
                    let end = markers.peek().map_or(bytes.len(), |next| next.range.start);
                    dropped.push(marker.range.start..end);
                }
            }
            _ => {}
        }
    }
    if dropped.is_empty() {
        return None;
    }
    Some(without(bytes, &dropped))
}

/// A copy of `bytes` without the `ranges` (sorted, disjoint): the metadata segments the bound
/// drops, or the scans a 1/8-scale decode does not read.
pub fn without(bytes: &[u8], ranges: &[Range<usize>]) -> Vec<u8> {
    let removed: usize = ranges.iter().map(ExactSizeIterator::len).sum();
    let mut out = Vec::with_capacity(bytes.len() - removed);
    let mut from = 0;
    for range in ranges {
        out.extend_from_slice(&bytes[from..range.start]);
        from = range.end;
    }
    out.extend_from_slice(&bytes[from..]);
    out
}

/// What a progressive frame header says about each component, and which of them have kept
/// their one AC scan.
struct Frame {
    /// Per component: its id, whether a 1/8-scale decode reads only its DC coefficients, and
    /// whether one of its AC scans has been kept.
    components: Vec<(u8, bool, bool)>,
}

impl Frame {
    /// Reads a SOF2 body: precision, height, width, then (id, sampling, table) per component.
    fn read(body: &[u8]) -> Option<Frame> {
        let count = usize::from(*body.get(5)?);
        let specs = body.get(6..6 + 3 * count)?;
        let sampling: Vec<(u8, u8, u8)> = specs
            .chunks_exact(3)
            .map(|spec| (spec[0], spec[1] >> 4, spec[1] & 0x0F))
            .collect();
        let max_h = sampling.iter().map(|&(_, h, _)| h).max()?;
        let max_v = sampling.iter().map(|&(_, _, v)| v).max()?;
        if sampling.iter().any(|&(_, h, v)| h == 0 || v == 0) {
            return None;
        }
        // libjpeg-turbo's choice of each component's inverse DCT size at 1/8 scale
        // (jdmaster.c): from 1, doubled while the component's sampling lets it replace
        // upsampling. Size 1 reads the DC coefficient alone.
        let dc_only = |h: u8, v: u8| max_h % (h * 2) != 0 || max_v % (v * 2) != 0;
        let components = sampling
            .iter()
            .map(|&(id, h, v)| (id, dc_only(h, v), false))
            .collect();
        Some(Frame { components })
    }

    /// Whether `scan` can be dropped; `None` when it names a component the frame lacks.
    fn drops(&mut self, scan: &Scan) -> Option<bool> {
        if scan.start == 0 || scan.components.len() != 1 {
            // DC scans (and anything interleaved) are always kept.
            return Some(false);
        }
        let component = self
            .components
            .iter_mut()
            .find(|(id, _, _)| *id == scan.components[0])?;
        let (_, dc_only, kept) = component;
        if !*dc_only {
            return Some(false);
        }
        if !*kept && scan.first_pass && scan.start <= 9 {
            *kept = true;
            return Some(false);
        }
        Some(true)
    }
}

/// What a SOS header says: the components scanned, the band's first coefficient, and whether
/// it is a first pass (not a refinement).
struct Scan {
    components: Vec<u8>,
    start: u8,
    first_pass: bool,
}

impl Scan {
    /// Reads a SOS body: the count, (id, tables) per component, Ss, Se, Ah/Al.
    fn read(body: &[u8]) -> Option<Scan> {
        let count = usize::from(*body.first()?);
        let components = body
            .get(1..1 + 2 * count)?
            .chunks_exact(2)
            .map(|spec| spec[0])
            .collect();
        let band = body.get(1 + 2 * count..4 + 2 * count)?;
        Some(Scan {
            components,
            start: band[0],
            first_pass: band[2] >> 4 == 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixture;

    fn scans(bytes: &[u8]) -> usize {
        markers(bytes).filter(|marker| marker.code == 0xDA).count()
    }

    #[test]
    fn a_progressive_file_keeps_its_dc_scans_and_one_ac_scan_of_its_luma() {
        let bytes = fixture("jpeg-progressive.jpg");
        let all = scans(&bytes);
        let kept = for_eighth_scale(&bytes).expect("luma AC scans to drop");
        assert!(
            kept.len() < bytes.len() * 2 / 3,
            "{} of {}",
            kept.len(),
            bytes.len()
        );
        // libjpeg's default script for 4:2:0 has ten scans: two DC scans, four chroma AC
        // scans, four luma AC scans; of these the first (coefficients 1–5) stays.
        assert_eq!(all, 10);
        assert_eq!(scans(&kept), 7);
        assert!(kept.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn baseline_and_broken_files_are_left_alone() {
        assert_eq!(for_eighth_scale(&fixture("jpeg-baseline.jpg")), None);
        let bytes = fixture("jpeg-progressive.jpg");
        // Cut inside the frame header: nothing is dropped, nothing panics.
        let sof = markers(&bytes).find(|m| m.code == 0xC2).unwrap().range;
        assert_eq!(for_eighth_scale(&bytes[..sof.start + 8]), None);
        for cut in (0..bytes.len()).step_by(97) {
            let _ = for_eighth_scale(&bytes[..cut]);
        }
        assert_eq!(markers(b"not a jpeg").count(), 0);
    }

    #[test]
    fn damaged_files_neither_panic_nor_grow() {
        let bytes = fixture("jpeg-progressive-scans.jpg");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let mut damaged = bytes.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % damaged.len() as u64) as usize;
                // Marker bytes and lengths are what the walk reads: damage them most.
                damaged[at] = match state >> 60 {
                    0..=5 => 0xFF,
                    6..=9 => 0xDA,
                    _ => (state >> 32) as u8,
                };
            }
            if let Some(kept) = for_eighth_scale(&damaged) {
                assert!(kept.len() < damaged.len());
            }
        }
    }
}
