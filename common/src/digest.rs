//! The digests of an upload (MD5, as records have always carried it, and SHA-256), fed as the
//! bytes arrive so that a streamed upload is hashed without being held.

use std::io::{self, Read};
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

/// The MD5 and SHA-256 of an upload, lower-case hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// MD5, as the record has always carried it.
    pub md5: String,
    /// SHA-256.
    pub sha256: String,
}

/// Both digests, fed as the bytes arrive.
#[derive(Debug, Default, Clone)]
pub struct Hasher {
    md5: Md5,
    sha256: Sha256,
    size: u64,
}

impl Hasher {
    /// Adds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sha256.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// How many bytes have been added.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digests of everything added.
    pub fn finish(self) -> Digests {
        Digests {
            md5: hex(&self.md5.finalize()),
            sha256: hex(&self.sha256.finalize()),
        }
    }
}

/// The digests and size of the file at `path`, and its first `head` bytes (for sniffing),
/// read a buffer at a time. Blocking.
pub fn file_digests(path: &Path, head: usize) -> io::Result<(Digests, u64, Vec<u8>)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Hasher::default();
    let mut first = Vec::with_capacity(head);
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            let size = hasher.size();
            return Ok((hasher.finish(), size, first));
        }
        let room = head - first.len();
        first.extend_from_slice(&buffer[..read.min(room)]);
        hasher.update(&buffer[..read]);
    }
}

/// Lower-case hexadecimal.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_has_the_digests_of_its_bytes_and_gives_its_head() {
        let bytes: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        let (digests, size, head) = file_digests(file.path(), 4096).unwrap();
        let mut hasher = Hasher::default();
        hasher.update(&bytes);
        assert_eq!((digests, size), (hasher.finish(), 600_000));
        assert_eq!(head, &bytes[..4096]);
    }

    #[test]
    fn hashes_are_the_known_values() {
        assert_eq!(
            hex(&Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn fed_in_pieces_or_whole_the_digests_agree() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let mut whole = Hasher::default();
        whole.update(&bytes);
        let mut pieces = Hasher::default();
        for chunk in bytes.chunks(777) {
            pieces.update(chunk);
        }
        assert_eq!(pieces.size(), 100_000);
        assert_eq!(whole.finish(), pieces.finish());
    }
}
