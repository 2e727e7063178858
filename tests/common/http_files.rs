//! A read-only HTTP file server on 127.0.0.1, as a web server or CDN serves survey files: HEAD and GET of the files in
//! a directory, a `range: bytes=a-b` (or `a-`) GET answered with 206 and just those bytes. Every request is logged.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::fault_proxy::{Request, read_head};

pub struct HttpFiles {
    /// `http://127.0.0.1:PORT`: a file `dir/a/b.fits` is at `{url}/a/b.fits`.
    pub url: String,
    log: Arc<Mutex<Vec<Request>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpFiles {
    pub fn start(dir: PathBuf) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (dir, logged) = (Arc::new(dir), Arc::clone(&log));
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, Arc::clone(&dir), Arc::clone(&logged)));
            }
        });
        Self { url, log, runtime: Some(runtime) }
    }

    pub fn log(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for HttpFiles {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The requested byte range `a-b` or `a-` of a file of `size` bytes, end exclusive.
fn range(head: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let line = head.lines().find(|l| l.split_once(':').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("range")))?;
    let (start, end) = line.split_once(':')?.1.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = start.parse().ok()?;
    let end = if end.is_empty() { size } else { end.parse::<u64>().ok()?.saturating_add(1).min(size) };
    Some(start..end)
}

async fn serve(mut client: TcpStream, dir: Arc<PathBuf>, log: Arc<Mutex<Vec<Request>>>) {
    let mut buf = Vec::new();
    let Ok(Some(head_len)) = read_head(&mut client, &mut buf).await else { return };
    let request = Request::parse(&buf[..head_len], log.lock().unwrap().len());
    log.lock().unwrap().push(request.clone());
    let path = dir.join(request.target.split('?').next().unwrap_or_default().trim_start_matches('/'));
    let file = std::fs::File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f)));
    let (size, mut file) = match file {
        Ok(opened) if path.is_file() => opened,
        _ => {
            let _ = client.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            return;
        }
    };
    let common = format!("accept-ranges: bytes\r\netag: \"{size}\"\r\nlast-modified: Tue, 01 Dec 2026 00:00:00 GMT\r\nconnection: close");
    let (status, part) = match range(&String::from_utf8_lossy(&buf[..head_len]), size) {
        Some(r) if r.start < r.end => (format!("206 Partial Content\r\ncontent-range: bytes {}-{}/{size}", r.start, r.end - 1), r),
        Some(_) => {
            let _ = client.write_all(format!("HTTP/1.1 416 Range Not Satisfiable\r\ncontent-range: bytes */{size}\r\ncontent-length: 0\r\n{common}\r\n\r\n").as_bytes()).await;
            return;
        }
        None => ("200 OK".to_string(), 0..size),
    };
    let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n{common}\r\n\r\n", part.end - part.start);
    let _ = client.write_all(head.as_bytes()).await;
    if request.method == "GET" {
        let mut body = vec![0; (part.end - part.start) as usize];
        file.seek(SeekFrom::Start(part.start)).and_then(|_| file.read_exact(&mut body)).unwrap();
        let _ = client.write_all(&body).await;
    }
    let _ = client.shutdown().await;
}
