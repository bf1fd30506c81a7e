//! A deliberately tiny HTTP/1.1 client for the fan-out watchers.
//!
//! Why not reqwest here: with 10,000 watchers released at once the client's
//! own per-response cost is what gets measured. Against a server that wrote
//! all 10k answers within ~105 ms, reqwest-based watchers (one client each)
//! saw the last answer after ~180–220 ms on a 2-core box; this reader, one
//! task and one `read` per answer, brings the client's share down (numbers in
//! bench/README.md). It only speaks what the watchers need: GET, keep-alive,
//! `Content-Length` or chunked bodies.

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    host: String,
    /// Bytes read past the previous response (none expected, kept for correctness).
    buf: Vec<u8>,
}

/// Status, `X-Consul-Index` and body length of one response.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// HTTP status code.
    pub status: u16,
    /// `X-Consul-Index`, if present and numeric.
    pub consul_index: Option<u64>,
}

impl Conn {
    /// Connect to the host and port of `base` (an `http://` URL).
    pub async fn connect(base: &str) -> Result<Conn> {
        let url = reqwest::Url::parse(base).with_context(|| format!("bad URL {base}"))?;
        if url.scheme() != "http" {
            bail!("only http:// is supported, got {base}");
        }
        let host = url.host_str().ok_or_else(|| anyhow!("no host in {base}"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let stream = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("connecting to {host}:{port}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            host: format!("{host}:{port}"),
            buf: Vec::with_capacity(1024),
        })
    }

    /// Send `GET path_and_query` and read the whole response.
    pub async fn get(&mut self, path_and_query: &str) -> Result<Head> {
        let req = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {}\r\nUser-Agent: registry-bench\r\n\r\n",
            self.host
        );
        self.stream.write_all(req.as_bytes()).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed by server");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Head> {
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("non-UTF-8 header")?;
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("bad status line"))?;
        let (mut len, mut chunked, mut consul_index) = (None, false, None);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                len = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case(crate::target::CONSUL_INDEX) {
                consul_index = value.parse().ok();
            }
        }
        self.buf.drain(..head_end);
        if chunked {
            self.skip_chunked().await?;
        } else {
            let len = len.ok_or_else(|| anyhow!("response without Content-Length"))?;
            while self.buf.len() < len {
                self.fill().await?;
            }
            self.buf.drain(..len);
        }
        Ok(Head {
            status,
            consul_index,
        })
    }

    /// Consume a chunked body (sizes, data, final `0\r\n\r\n`, no trailers expected).
    async fn skip_chunked(&mut self) -> Result<()> {
        loop {
            let line_end = loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    break p;
                }
                self.fill().await?;
            };
            let size_hex = std::str::from_utf8(&self.buf[..line_end])?;
            let size_hex = size_hex.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16).context("bad chunk size")?;
            // chunk-size line + data + CRLF (for size 0: the final empty line).
            let need = line_end + 2 + size + 2;
            while self.buf.len() < need {
                self.fill().await?;
            }
            self.buf.drain(..need);
            if size == 0 {
                return Ok(());
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves one canned byte string per request on one connection.
    async fn serve(replies: Vec<&'static [u8]>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            for reply in replies {
                while find(&buf, b"\r\n\r\n").is_none() {
                    let mut chunk = [0u8; 1024];
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let end = find(&buf, b"\r\n\r\n").unwrap() + 4;
                buf.drain(..end);
                s.write_all(reply).await.unwrap();
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn content_length_then_chunked_on_one_connection() {
        let base = serve(vec![
            b"HTTP/1.1 200 OK\r\nx-consul-index: 7\r\ncontent-length: 5\r\n\r\n[{}]\n",
            b"HTTP/1.1 200 OK\r\nX-Consul-Index: 8\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\n[{}\r\n1;ext=1\r\n]\r\n0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        ])
        .await;
        let mut conn = Conn::connect(&base).await.unwrap();
        let a = conn.get("/v1/kv/x").await.unwrap();
        assert_eq!((a.status, a.consul_index), (200, Some(7)));
        let b = conn.get("/v1/kv/x?index=7").await.unwrap();
        assert_eq!((b.status, b.consul_index), (200, Some(8)));
        let c = conn.get("/v1/kv/y").await.unwrap();
        assert_eq!((c.status, c.consul_index), (404, None));
        assert!(conn.buf.is_empty());
    }

    #[tokio::test]
    async fn closed_connection_is_an_error() {
        let base = serve(vec![]).await;
        let mut conn = Conn::connect(&base).await.unwrap();
        assert!(conn.get("/").await.is_err());
    }
}
