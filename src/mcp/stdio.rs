//! The stdio transport: newline-delimited JSON-RPC, as rmcp's own, except that every line it
//! cannot read as a message is answered: -32700 for a line that is not JSON, -32600 with the
//! request's id when that id is usable. rmcp's transport drops non-JSON lines without a word and
//! answers the rest without an id, so a client waits for a reply that never comes.

use std::{io, sync::Arc};

use rmcp::{
    RoleServer,
    service::{RxJsonRpcMessage, TxJsonRpcMessage},
    transport::{Transport, async_rw::DEFAULT_MAX_LINE_LENGTH},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    sync::Mutex,
};

use super::jsonrpc::{self, INVALID_REQUEST, Rejection};

type Writer<W> = Arc<Mutex<Option<W>>>;

pub struct LineTransport<R, W> {
    read: BufReader<R>,
    /// The line read so far: kept across cancelled reads (rmcp polls `receive` in a `select!`).
    line: Vec<u8>,
    /// Dropping the rest of a line longer than `max_line`.
    discarding: bool,
    max_line: usize,
    write: Writer<W>,
}

/// stdin and stdout, read and written on the IO reactor when they are pipes.
pub fn stdio() -> LineTransport<rmcp::transport::StdioReader, rmcp::transport::StdioWriter> {
    let (read, write) = rmcp::transport::stdio_pipes();
    LineTransport::new(read, write)
}

impl<R: AsyncRead + Unpin, W> LineTransport<R, W> {
    pub fn new(read: R, write: W) -> Self {
        LineTransport {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            max_line: DEFAULT_MAX_LINE_LENGTH,
            write: Arc::new(Mutex::new(Some(write))),
        }
    }
}

/// Writes one line under the lock, so replies never interleave.
async fn write_line<W: AsyncWrite + Unpin>(write: &Writer<W>, mut bytes: Vec<u8>) -> io::Result<()> {
    bytes.push(b'\n');
    let mut guard = write.lock().await;
    let out = guard.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "transport closed"))?;
    out.write_all(&bytes).await?;
    out.flush().await
}

/// A line without its `\r\n` and a leading UTF-8 byte order mark (RFC 8259 §8.1 allows one).
fn message_bytes(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
}

impl<R, W> LineTransport<R, W>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// Sent from a task of its own: `receive` may be cancelled at any await.
    fn answer(&self, rejection: Rejection) {
        if rejection.notification {
            return;
        }
        let write = self.write.clone();
        let bytes = serde_json::to_vec(&rejection.to_json()).expect("a JSON value serializes");
        tokio::spawn(async move {
            if let Err(error) = write_line(&write, bytes).await {
                tracing::debug!(%error, "stdio: the error reply could not be written");
            }
        });
    }
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), io::Error>> + Send + 'static {
        let write = self.write.clone();
        let bytes = serde_json::to_vec(&item);
        async move { write_line(&write, bytes.map_err(io::Error::other)?).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            // At most one byte past the limit, so an endless line never fills the memory.
            let room = (self.max_line + 1).saturating_sub(self.line.len()) as u64;
            match (&mut self.read).take(room).read_until(b'\n', &mut self.line).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(%error, "stdio: reading stdin failed");
                    return None;
                }
            }
            if !self.line.ends_with(b"\n") {
                if self.line.len() > self.max_line {
                    self.line.clear();
                    if !self.discarding {
                        self.discarding = true;
                        let message = format!("Invalid Request: a message is at most {} bytes", self.max_line);
                        self.answer(Rejection {
                            id: serde_json::Value::Null,
                            code: INVALID_REQUEST,
                            message,
                            notification: false,
                        });
                    }
                }
                // Else the input ended inside a line: nothing to deliver, the next read sees EOF.
                continue;
            }
            if std::mem::take(&mut self.discarding) {
                self.line.clear();
                continue;
            }
            let bytes = message_bytes(&self.line);
            let parsed = match bytes.is_empty() {
                true => None,
                false => Some(serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(bytes).map_err(|_| bytes)),
            };
            match parsed {
                None => {}
                Some(Ok(message)) => {
                    self.line.clear();
                    return Some(message);
                }
                Some(Err(bytes)) => {
                    let rejection = jsonrpc::reject(bytes);
                    self.answer(rejection);
                }
            }
            self.line.clear();
        }
    }

    async fn close(&mut self) -> Result<(), io::Error> {
        if let Some(mut out) = self.write.lock().await.take() {
            out.shutdown().await?;
        }
        Ok(())
    }
}
