//! A fault-injecting HTTP proxy on 127.0.0.1 in front of the S3 test server. Each request is read whole, shown to the
//! test's rule, and then forwarded, answered with an error status, reset, forwarded with its response cut short, or
//! held until [`FaultProxy::release`]. Every request and what was done with it is logged, so that tests can assert on
//! how many attempts a failure took. One request per connection (`connection: close` both ways), so that every
//! request a client sends is seen here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A request as the rule sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// 0 for the first request the proxy received, and so on.
    pub seq: usize,
    pub method: String,
    /// Path and query, e.g. `/catalogues/in/cat.parquet` or `/catalogues/out/x.csv?partNumber=2&uploadId=...`.
    pub target: String,
    /// The bytes a ranged GET asks for (its `range: bytes=a-b` header), end exclusive.
    pub range: Option<std::ops::Range<u64>>,
}

impl Request {
    /// The request line and range header of an HTTP request head.
    pub fn parse(head: &[u8], seq: usize) -> Self {
        let text = String::from_utf8_lossy(head);
        let mut parts = text.lines().next().unwrap_or_default().split(' ');
        let range = text.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let (start, end) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
            (name.trim().eq_ignore_ascii_case("range")).then(|| Some(start.parse().ok()?..end.parse::<u64>().ok()? + 1))?
        });
        Self {
            seq,
            method: parts.next().unwrap_or_default().to_string(),
            target: parts.next().unwrap_or_default().to_string(),
            range,
        }
    }

    /// A request for `key` of `bucket` (any query string).
    pub fn is_for(&self, bucket: &str, key: &str) -> bool {
        let path = self.target.split('?').next().unwrap_or_default();
        path == format!("/{bucket}/{key}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Forward,
    /// Answer with this HTTP status and an S3-style error body.
    Status(u16),
    /// Close the connection with a TCP reset instead of answering.
    Reset,
    /// Forward, then send only the response head and half of its body before resetting.
    CutResponse,
    /// Wait for [`FaultProxy::release`], then forward.
    Hold,
}

type Rule = dyn Fn(&Request) -> Fault + Send + Sync;

struct State {
    upstream: SocketAddr,
    rule: Box<Rule>,
    next: AtomicUsize,
    log: Mutex<Vec<(Request, Fault)>>,
    released: watch::Sender<bool>,
}

pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<State>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
    /// A proxy to `upstream` (`http://127.0.0.1:PORT`) applying `rule` to every request.
    pub fn start(upstream: &str, rule: impl Fn(&Request) -> Fault + Send + Sync + 'static) -> Self {
        let upstream: SocketAddr = upstream.trim_start_matches("http://").parse().expect("a loopback endpoint");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            upstream,
            rule: Box::new(rule),
            next: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            released: watch::channel(false).0,
        });
        let accepting = Arc::clone(&state);
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, Arc::clone(&accepting)));
            }
        });
        Self { endpoint, state, runtime: Some(runtime) }
    }

    /// Every request so far, with what was done with it.
    pub fn log(&self) -> Vec<(Request, Fault)> {
        self.state.log.lock().unwrap().clone()
    }

    /// How many requests matching `pred` got `fault`.
    pub fn count(&self, fault: Fault, pred: impl Fn(&Request) -> bool) -> usize {
        self.log().iter().filter(|(r, f)| *f == fault && pred(r)).count()
    }

    /// Let held requests (and any later ones) go on.
    pub fn release(&self) {
        self.state.released.send_replace(true);
    }

    /// Wait (at most `limit`) until a request is being held; panics otherwise.
    pub fn wait_for_hold(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.count(Fault::Hold, |_| true) == 0 {
            assert!(Instant::now() < deadline, "no request was held within {limit:?}: {:?}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Read until the end of an HTTP head (`\r\n\r\n`); returns the head's length, or None at a clean end of stream.
pub async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head with any `connection` header replaced by `connection: close`, its `content-length` (0 if none) and
/// whether its body is chunked.
fn close_connection(head: &[u8]) -> (Vec<u8>, usize, bool) {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<&str> = text.trim_end().split("\r\n").collect();
    let header = |line: &str, name: &str| line.split_once(':').is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name));
    let length = lines
        .iter()
        .find(|l| header(l, "content-length"))
        .and_then(|l| l.split_once(':').and_then(|(_, v)| v.trim().parse().ok()))
        .unwrap_or(0);
    let chunked = lines.iter().any(|l| header(l, "transfer-encoding"));
    lines.retain(|l| !header(l, "connection"));
    (format!("{}\r\nconnection: close\r\n\r\n", lines.join("\r\n")).into_bytes(), length, chunked)
}

async fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn serve(mut client: TcpStream, state: Arc<State>) {
    let mut buf = Vec::new();
    let Ok(Some(head_len)) = read_head(&mut client, &mut buf).await else { return };
    let (head, body_len, chunked) = close_connection(&buf[..head_len]);
    assert!(!chunked, "the test proxy reads request bodies by content-length only");
    while buf.len() < head_len + body_len {
        let mut chunk = vec![0u8; 64 * 1024];
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request = Request::parse(&head, state.next.fetch_add(1, Ordering::SeqCst));
    let fault = (state.rule)(&request);
    state.log.lock().unwrap().push((request, fault));
    match fault {
        Fault::Status(code) => {
            let body = format!("<Error><Code>InjectedFault</Code><Message>injected {code}</Message></Error>");
            let response = format!(
                "HTTP/1.1 {code} Injected\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = client.write_all(response.as_bytes()).await;
            let _ = client.shutdown().await;
        }
        Fault::Reset => reset(client).await,
        Fault::Forward | Fault::CutResponse | Fault::Hold => {
            if fault == Fault::Hold {
                let mut released = state.released.subscribe();
                let _ = released.wait_for(|r| *r).await;
            }
            let Ok(mut upstream) = TcpStream::connect(state.upstream).await else { return reset(client).await };
            let body = &buf[head_len..head_len + body_len];
            if upstream.write_all(&head).await.is_err() || upstream.write_all(body).await.is_err() {
                return reset(client).await;
            }
            let mut response = Vec::new();
            let Ok(Some(response_head)) = read_head(&mut upstream, &mut response).await else { return reset(client).await };
            let (head, _, _) = close_connection(&response[..response_head]);
            if fault == Fault::CutResponse {
                let _ = upstream.read_to_end(&mut response).await;
                let half = (response.len() - response_head) / 2;
                let _ = client.write_all(&head).await;
                let _ = client.write_all(&response[response_head..response_head + half]).await;
                return reset(client).await;
            }
            let _ = client.write_all(&head).await;
            let _ = client.write_all(&response[response_head..]).await;
            let _ = tokio::io::copy(&mut upstream, &mut client).await;
            let _ = client.shutdown().await;
        }
    }
}
