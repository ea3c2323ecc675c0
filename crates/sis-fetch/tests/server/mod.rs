//! A small HTTP/1.1 server on a real loopback socket, written against the
//! byte stream so that tests control exactly what the client receives
//! (lying lengths, chunked bodies, stalls). It counts connections and records
//! requests, so a test can prove that a refused URL reached nothing.
//!
//! Routes:
//! - `GET /file`: 200, [`FILE_BODY`], `Content-Type: audio/wav`.
//! - `GET /redirect?to=URL`: 302 to `URL` (taken verbatim).
//! - `GET /hop/N`: 302 to the relative `/hop/N-1`; `/hop/0` serves `/file`.
//! - `GET /lying-length`: 200 with `Content-Length: 1000000000`, a few bytes,
//!   then silence.
//! - `GET /chunked/N`: 200, chunked, N chunks of 1024 bytes, no length.
//! - `/stall` (any method): reads the request and never answers.
//! - `GET /stall-body`: headers and part of the body, then silence.
//! - `GET /status/N`: status N, empty body.
//! - `GET /drip`: 200 with `Content-Length: 1000000`, then one byte every
//!   100 ms.
//! - `GET /paced/N/MS`: 200, N pieces of 1024 bytes (with their length),
//!   one every MS milliseconds.
//! - `POST /callback`: 200; `POST /callback-redirect`: 302 to `/callback`.

#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What `/file` serves: 100 KiB of a non-repeating-looking pattern.
pub fn file_body() -> Vec<u8> {
    (0..100 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    /// Listens on `ip` (port chosen by the system).
    pub async fn start(ip: &str) -> std::io::Result<TestServer> {
        let listener = TcpListener::bind((ip, 0)).await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, Arc::clone(&r)));
            }
        });
        Ok(TestServer {
            addr,
            connections,
            requests,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://HOST:PORT{path}` with the server's port.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port())
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().expect("requests lock").clone()
    }

    pub fn targets(&self) -> Vec<String> {
        self.requests().into_iter().map(|s| s.target).collect()
    }
}

async fn serve(mut stream: TcpStream, requests: Arc<Mutex<Vec<Seen>>>) {
    let Some(seen) = read_request(&mut stream).await else {
        return;
    };
    requests.lock().expect("requests lock").push(seen.clone());
    let _ = respond(&mut stream, &seen).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

async fn respond(stream: &mut TcpStream, seen: &Seen) -> std::io::Result<()> {
    let target = seen.target.as_str();
    if let Some(to) = target.strip_prefix("/redirect?to=") {
        return redirect(stream, to).await;
    }
    if let Some(n) = target.strip_prefix("/hop/") {
        let n: u32 = n.parse().unwrap_or(0);
        if n > 0 {
            return redirect(stream, &format!("/hop/{}", n - 1)).await;
        }
        return send_file(stream).await;
    }
    if let Some(n) = target.strip_prefix("/chunked/") {
        let n: usize = n.parse().unwrap_or(0);
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            )
            .await?;
        let chunk = vec![b'x'; 1024];
        for _ in 0..n {
            stream.write_all(b"400\r\n").await?;
            stream.write_all(&chunk).await?;
            stream.write_all(b"\r\n").await?;
        }
        return stream.write_all(b"0\r\n\r\n").await;
    }
    if let Some(rest) = target.strip_prefix("/paced/") {
        let (n, ms) = rest.split_once('/').unwrap_or((rest, "0"));
        let (n, ms): (usize, u64) = (n.parse().unwrap_or(0), ms.parse().unwrap_or(0));
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            n * 1024
        );
        stream.write_all(head.as_bytes()).await?;
        let chunk = vec![b'p'; 1024];
        for _ in 0..n {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            stream.write_all(&chunk).await?;
        }
        return Ok(());
    }
    if let Some(code) = target.strip_prefix("/status/") {
        let head =
            format!("HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return stream.write_all(head.as_bytes()).await;
    }
    match (seen.method.as_str(), target) {
        ("GET", "/file") => send_file(stream).await,
        ("GET", "/lying-length") => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\nConnection: close\r\n\r\nabc")
                .await?;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        ("GET", "/drip") => {
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n",
                )
                .await?;
            for _ in 0..600 {
                stream.write_all(b"d").await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(())
        }
        (_, "/stall") => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        ("GET", "/stall-body") => {
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nabc",
                )
                .await?;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        }
        ("POST", "/callback") => {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .await
        }
        ("POST", "/callback-redirect") => redirect(stream, "/callback").await,
        _ => {
            stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await
        }
    }
}

async fn redirect(stream: &mut TcpStream, location: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await
}

async fn send_file(stream: &mut TcpStream) -> std::io::Result<()> {
    let body = file_body();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await
}
