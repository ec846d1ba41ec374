//! The JSON error even where hyper answers by itself.
//!
//! hyper refuses a request it cannot parse before any of the service runs: a request head
//! over its buffer ([`crate::protocol::HYPER_MAX_HEAD_BYTES`]) or with too many headers gets
//! `431`, a malformed request line or header `400`, each written by hyper with no body, and
//! then the connection closes. [`JsonErrors`] sits between hyper and the socket and writes
//! those two answers as the service's own JSON error instead (`headers_too_large`,
//! `malformed_request`), so that every answer a client gets is JSON, whatever layer refused
//! it.
//!
//! It recognises them by what only they are: a `400` or `431` head with `content-length: 0`
//! and no `content-type` (every answer of the service's own carries its type). Everything
//! else passes through untouched, vectored writes included.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ApiError;
use crate::protocol::{HYPER_MAX_HEAD_BYTES, HYPER_MAX_HEADERS};

/// A connection whose hyper-made error answers are rewritten as JSON.
#[derive(Debug)]
pub struct JsonErrors<S> {
    inner: S,
    /// The JSON answer still to be written in place of hyper's.
    pending: Vec<u8>,
    written: usize,
}

impl<S> JsonErrors<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

/// The JSON answer for one of hyper's own bodiless error heads, if `head` is one.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let error = if head.starts_with(b"HTTP/1.1 431 ") {
        ApiError::HeadersTooLarge {
            max_headers: HYPER_MAX_HEADERS,
            max_bytes: HYPER_MAX_HEAD_BYTES,
        }
    } else if head.starts_with(b"HTTP/1.1 400 ") {
        ApiError::MalformedRequest
    } else {
        return None;
    };
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = head[..end].to_ascii_lowercase();
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    (has(b"\r\ncontent-length: 0") && !has(b"\r\ncontent-type:")).then(|| error.to_http1_bytes())
}

impl<S: AsyncWrite + Unpin> JsonErrors<S> {
    /// Writes what is left of a replacement; ready once it is all written.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        Ok(()).into()
    }

    /// Takes `buf` as written if it is one of hyper's error heads, writing its replacement.
    fn poll_replace(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Option<Poll<io::Result<usize>>> {
        let json = replacement(buf)?;
        self.pending = json;
        self.written = 0;
        Some(match self.poll_pending(cx) {
            // What hyper wrote is answered for: the rest goes at the next write or flush.
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(buf.len())),
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(replaced) = self.poll_replace(cx, buf) {
            return replaced;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        // hyper's error answer is a head alone: one slice.
        if let [only] = bufs
            && let Some(replaced) = self.poll_replace(cx, only)
        {
            return replaced;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn through(written: &[u8]) -> Vec<u8> {
        let mut out = JsonErrors::new(Vec::new());
        out.write_all(written).await.unwrap();
        out.flush().await.unwrap();
        out.inner
    }

    #[tokio::test]
    async fn hyper_s_bodiless_errors_become_json() {
        for (head, code) in [
            (
                &b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n"[..],
                "headers_too_large",
            ),
            (
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n",
                "malformed_request",
            ),
        ] {
            let out = String::from_utf8(through(head).await).unwrap();
            let (head, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(head.contains("content-type: application/json"), "{head}");
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["error"]["code"], code);
        }
    }

    #[tokio::test]
    async fn the_service_s_own_answers_pass_untouched() {
        for answer in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"\xff\xd8\xff binary body bytes HTTP/1.1 400 ",
        ] {
            assert_eq!(through(answer).await, answer);
        }
    }
}
