//! A minimal HTTP/1.1 keep-alive client over raw TCP: one request in flight per connection,
//! requests pre-formatted as bytes, responses framed by `Content-Length`. It is the lightest
//! load generator we can have, so that on a small machine the client takes as little CPU as
//! possible from the server under test.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Formats a request. `headers` are added after `Host`; a body, if any, is sent with its length.
pub(crate) fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        text.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// One keep-alive connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: Vec::with_capacity(16 * 1024) })
    }

    /// Sends one request and returns the status code, discarding the body.
    pub(crate) async fn status(&mut self, request: &[u8]) -> io::Result<u16> {
        let (status, _, total) = self.roundtrip(request).await?;
        self.consume(total);
        Ok(status)
    }

    /// Sends one request and returns the status code and the body.
    pub(crate) async fn send(&mut self, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let (status, head, total) = self.roundtrip(request).await?;
        let body = self.buf[head..total].to_vec();
        self.consume(total);
        Ok((status, body))
    }

    fn consume(&mut self, total: usize) {
        if total == self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..total);
        }
    }

    /// Writes the request, reads one response; returns (status, header length, total length).
    async fn roundtrip(&mut self, request: &[u8]) -> io::Result<(u16, usize, usize)> {
        self.stream.write_all(request).await?;
        loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(&self.buf) {
                    Ok(httparse::Status::Complete(head)) => {
                        let status = response.code.unwrap_or(0);
                        let mut length = 0usize;
                        for header in response.headers.iter() {
                            if header.name.eq_ignore_ascii_case("content-length") {
                                length = std::str::from_utf8(header.value)
                                    .ok()
                                    .and_then(|v| v.trim().parse().ok())
                                    .ok_or_else(|| invalid("bad Content-Length"))?;
                            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                                return Err(invalid("chunked responses are not supported by the bench client"));
                            }
                        }
                        let total = head + length;
                        while self.buf.len() < total {
                            self.fill().await?;
                        }
                        return Ok((status, head, total));
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(error) => return Err(invalid(&format!("bad response: {error}"))),
                }
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let read = self.stream.read_buf(&mut self.buf).await?;
        if read == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by the server"));
        }
        Ok(())
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}
