//! The in-process S3-protocol server: s3s (protocol, SigV4) over s3s-fs
//! (objects as plain files), served by hyper on its own tokio runtime so
//! it works the same under a sync test, an async test, or xtask.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

use crate::service::{Counters, CountingService};
use crate::{keys, Error};

const BUCKET: &str = "cairn-test";
const REGION: &str = "us-east-1";
/// How long `stop` waits for the accept loop and open connections to end.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Settings for [`S3Server::start_with`]; `Default` is what
/// [`S3Server::start`] uses.
#[derive(Debug, Default, Clone)]
pub struct S3ServerOptions {
    /// Port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    /// Data directory (created if missing, kept on drop); `None` makes a
    /// fresh temporary one that is removed on drop.
    pub root: Option<PathBuf>,
}

/// A signature-checking S3-protocol server on 127.0.0.1, serving one
/// bucket (`cairn-test`) for one generated key pair. Path-style requests
/// (`http://127.0.0.1:PORT/cairn-test/key`), which is what OpenDAL sends to
/// a custom endpoint unless virtual-host style is enabled.
pub struct S3Server {
    // Field order matters for Drop: the runtime goes before the data.
    runtime: Option<tokio::runtime::Runtime>,
    serving: Option<Serving>,
    port: u16,
    root: PathBuf,
    /// Set when the data directory is ours to remove (not given `--root`).
    _temp_dir: Option<tempfile::TempDir>,
    service: CountingService,
    counters: Arc<Counters>,
    access_key_id: String,
    secret_access_key: String,
}

/// The accept loop of one serving period (between start/restart and stop).
struct Serving {
    shutdown: tokio::sync::oneshot::Sender<()>,
    stopped: mpsc::Receiver<()>,
}

impl S3Server {
    /// Starts a server on a free port with a fresh temporary data directory,
    /// bucket `cairn-test` created, and a random key pair.
    pub fn start() -> Result<S3Server, Error> {
        S3Server::start_with(S3ServerOptions::default())
    }

    /// Starts a server as `options` say (port, data directory).
    pub fn start_with(options: S3ServerOptions) -> Result<S3Server, Error> {
        let (temp_dir, root) = match options.root {
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("cairn-test-s3-")
                    .tempdir()
                    .map_err(Error::io("create a temporary data directory"))?;
                let root = dir.path().to_path_buf();
                (Some(dir), root)
            }
            Some(root) => {
                std::fs::create_dir_all(&root).map_err(|e| Error::DataDir {
                    path: root.clone(),
                    reason: e.to_string(),
                })?;
                (None, root)
            }
        };
        let root = root.canonicalize().map_err(|e| Error::DataDir {
            path: root.clone(),
            reason: e.to_string(),
        })?;
        let bucket_dir = root.join(BUCKET);
        std::fs::create_dir_all(&bucket_dir).map_err(Error::io(format!(
            "create the bucket {}",
            bucket_dir.display()
        )))?;

        let access_key_id = keys::access_key_id().map_err(Error::io("generate an access key"))?;
        let secret_access_key =
            keys::secret_access_key().map_err(Error::io("generate a secret key"))?;

        // s3s_fs::Error has Debug only.
        let backend = s3s_fs::FileSystem::new(&root).map_err(|e| Error::DataDir {
            path: root.clone(),
            reason: format!("{e:?}"),
        })?;
        let mut builder = S3ServiceBuilder::new(backend);
        builder.set_auth(SimpleAuth::from_single(
            access_key_id.clone(),
            secret_access_key.clone(),
        ));
        let counters = Arc::new(Counters::default());
        let service = CountingService {
            inner: builder.build(),
            counters: Arc::clone(&counters),
            conditional_writes: Arc::default(),
        };

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-test-s3")
            .enable_all()
            .build()
            .map_err(Error::io("start the server's tokio runtime"))?;

        let listener = bind(options.port.unwrap_or(0))?;
        let port = listener
            .local_addr()
            .map_err(Error::io("read the listening address"))?
            .port();

        let mut server = S3Server {
            runtime: Some(runtime),
            serving: None,
            port,
            root,
            _temp_dir: temp_dir,
            service,
            counters,
            access_key_id,
            secret_access_key,
        };
        server.serve(listener)?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn bucket(&self) -> &str {
        BUCKET
    }

    pub fn region(&self) -> &str {
        REGION
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION, for a child
    /// process's environment.
    pub fn credential_env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.secret_access_key.clone(),
            ),
            ("AWS_REGION".into(), REGION.into()),
        ]
    }

    /// The data directory: the bucket is the `cairn-test` directory in it;
    /// s3s-fs keeps its metadata (`.bucket-*.json`), temporary files and
    /// multipart parts beside it.
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// Every key in the bucket, sorted. Read from the disk, so it includes
    /// objects written or deleted behind the server's back.
    pub fn object_keys(&self) -> Vec<String> {
        let bucket_dir = self.root.join(BUCKET);
        let mut keys = Vec::new();
        let mut pending = vec![bucket_dir.clone()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => pending.push(path),
                    Ok(t) if t.is_file() => {
                        let key = path.strip_prefix(&bucket_dir).ok().and_then(Path::to_str);
                        if let Some(key) = key {
                            keys.push(key.to_owned());
                        }
                    }
                    _ => {}
                }
            }
        }
        keys.sort();
        keys
    }

    /// Multipart uploads created and neither completed nor aborted (s3s-fs
    /// keeps one `.upload-<id>.json` per upload in the data directory).
    /// On real S3 their parts are stored, and billed, until aborted or
    /// removed by a lifecycle rule.
    pub fn incomplete_multipart_uploads(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with(".upload-") && name.ends_with(".json")
            })
            .count()
    }

    /// The file that holds `key`'s bytes: delete it or flip a byte in it to
    /// damage the object server-side. (The stored ETag and checksums are
    /// not updated, as with bit rot on a real server.)
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    /// Stops serving: the listener is closed (new connections are refused)
    /// and open connections are cut, mid-request if need be. The data and
    /// the port number are kept for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            // The accept loop may already be gone (runtime shut down): then
            // there is nothing left to wait for.
            let _ = serving.shutdown.send(());
            let _ = serving.stopped.recv_timeout(STOP_WAIT);
        }
    }

    /// Serves again on the same port with the same data and keys. A no-op
    /// while serving.
    pub fn restart(&mut self) -> Result<(), Error> {
        if self.serving.is_some() {
            return Ok(());
        }
        let listener = bind(self.port)?;
        self.serve(listener)
    }

    /// Requests received since start (restarts included), refused ones too.
    pub fn request_count(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// Request body bytes received since start (restarts included), as
    /// read off the wire.
    pub fn bytes_received(&self) -> u64 {
        self.counters.bytes_received.load(Ordering::Relaxed)
    }

    /// Answers the next `n` requests with 503 SlowDown (S3's "reduce your
    /// request rate") without reaching the backend: a deterministic way to
    /// make a client retry, or, with more failures than it retries, give
    /// up. Replaces any failures still pending; 0 cancels them.
    pub fn fail_next_requests(&self, n: u64) {
        self.counters.fail_next.store(n, Ordering::SeqCst);
    }

    /// Waits until at least `min` request-body bytes have arrived since
    /// start, or `timeout` passes; returns whether they did. For cutting a
    /// push off mid-way: start it, wait for some bytes, then `stop()` or
    /// kill the client.
    pub fn wait_for_bytes_received(&self, min: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.bytes_received() >= min {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn serve(&mut self, listener: StdTcpListener) -> Result<(), Error> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Server("the server's runtime is gone".into()))?;
        listener
            .set_nonblocking(true)
            .map_err(Error::io("make the listener non-blocking"))?;
        let listener = {
            let _in_runtime = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(Error::io("hand the listener to tokio"))?
        };
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let (stopped_tx, stopped) = mpsc::channel();
        runtime.spawn(accept_loop(
            listener,
            self.service.clone(),
            shutdown_rx,
            stopped_tx,
        ));
        self.serving = Some(Serving { shutdown, stopped });
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        // shutdown_background, unlike dropping the runtime, is allowed from
        // inside another runtime (a #[tokio::test] that owns the server).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn bind(port: u16) -> Result<StdTcpListener, Error> {
    // std sets SO_REUSEADDR on Unix, so a restart can take the port back
    // while old connections sit in TIME_WAIT.
    StdTcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
        .map_err(Error::io(format!("listen on 127.0.0.1:{port}")))
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    service: CountingService,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
    stopped: mpsc::Sender<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            // A send or a dropped sender both mean stop.
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let service = service.clone();
                    connections.spawn(async move {
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service);
                        // A client hanging up mid-request is its business.
                        let _ = connection.await;
                    });
                }
                // Out of descriptors and the like: back off, keep serving.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    let _ = stopped.send(());
}
