//! A forwarding proxy that fails on purpose, between a client and a real server.

use super::*;

/// What the [`FaultyProxy`] does with the next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFault {
    /// Forwards it to the provider, then answers the client with this status (a gateway's 502
    /// or 504, an origin that rotated the token and then failed): the provider has spent the
    /// token, the client cannot know.
    AfterForwarding(u16),
    /// Answers with this status without forwarding (a rate limiter's 429, a maintenance 503).
    BeforeForwarding(u16),
}

/// A forwarding HTTP/1.1 proxy on 127.0.0.1 in front of a provider that fails on purpose:
/// each queued [`ProxyFault`] applies to one request, in order; with none queued it forwards
/// the request and relays the answer.
pub struct FaultyProxy {
    addr: std::net::SocketAddr,
    /// The mock's base path (`/v2`, say), kept in the proxy's base URL.
    base_path: String,
    faults: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<ProxyFault>>>,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Starts one forwarding to `mock`.
    pub async fn start(mock: &MockServer) -> Self {
        let upstream = mock.addr();
        let base_path = mock
            .base_url()
            .trim_start_matches("http://")
            .split_once('/')
            .map(|(_, path)| format!("/{path}"))
            .unwrap_or_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let faults = std::sync::Arc::default();
        let forwarded = std::sync::Arc::default();
        let (queue, count) = (
            std::sync::Arc::clone(&faults),
            std::sync::Arc::clone(&forwarded),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (queue, count) = (std::sync::Arc::clone(&queue), std::sync::Arc::clone(&count));
                tokio::spawn(async move {
                    let _ = relay(client, upstream, &queue, &count).await;
                });
            }
        });
        Self {
            addr,
            base_path,
            faults,
            forwarded,
            task,
        }
    }

    /// `http://127.0.0.1:<port>` and the mock's base path.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.base_path)
    }

    /// Queues a fault for the next request that has none.
    pub fn enqueue(&self, fault: ProxyFault) {
        self.faults.lock().expect("faults").push_back(fault);
    }

    /// How many requests reached the provider.
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one client connection: each request is forwarded (or not) as the next fault says.
async fn relay(
    mut client: tokio::net::TcpStream,
    upstream: std::net::SocketAddr,
    faults: &std::sync::Mutex<std::collections::VecDeque<ProxyFault>>,
    forwarded: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut buffer = Vec::new();
    while let Some(request) = read_message(&mut client, &mut buffer).await? {
        let fault = faults.lock().expect("faults").pop_front();
        let answer = match fault {
            Some(ProxyFault::BeforeForwarding(status)) => empty_answer(status),
            Some(ProxyFault::AfterForwarding(status)) => {
                forward(upstream, &request, forwarded).await?;
                empty_answer(status)
            }
            None => forward(upstream, &request, forwarded).await?,
        };
        client.write_all(&answer).await?;
        client.flush().await?;
    }
    Ok(())
}

fn empty_answer(status: u16) -> Vec<u8> {
    format!("HTTP/1.1 {status} Proxy Fault\r\ncontent-length: 0\r\n\r\n").into_bytes()
}

/// Sends `request` to the provider on a connection of its own and returns its whole answer.
async fn forward(
    upstream: std::net::SocketAddr,
    request: &[u8],
    forwarded: &std::sync::atomic::AtomicU64,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncWriteExt;
    let mut provider = tokio::net::TcpStream::connect(upstream).await?;
    provider.write_all(request).await?;
    forwarded.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut buffer = Vec::new();
    read_message(&mut provider, &mut buffer)
        .await?
        .ok_or_else(|| std::io::Error::other("the provider closed the connection"))
}

/// Reads one HTTP/1.1 message with a `Content-Length` body (or none), as raw bytes.
async fn read_message(
    stream: &mut tokio::net::TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed mid-message"));
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(buffer.drain(..head_end + length).collect()))
}
