//! The HTTP service in front of s3s: counts requests and request-body
//! bytes (the figures dedup and bench tests assert on), and makes
//! conditional writes atomic.
//!
//! Why the lock: s3s-fs checks `If-None-Match: *` / `If-Match` and then
//! writes the object in two steps (an `exists()` test, then a rename over
//! the destination), so two racing conditional creates of one key could
//! both succeed. Real S3 and moto decide such a race for exactly one
//! writer, and Cairn's remote lock relies on that, so every conditional
//! PUT and CompleteMultipartUpload runs under one mutex here.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

/// What the server has seen since it was started (restarts included),
/// and the failures it was asked to inject.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    /// The next this-many requests are answered 503 without reaching
    /// the backend.
    pub(crate) fail_next: AtomicU64,
}

impl Counters {
    /// Takes one injected failure, if any are left.
    fn take_failure(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// What S3 answers when it is overloaded: 503 SlowDown, which clients
/// (OpenDAL included) treat as temporary and retry.
fn slow_down() -> s3s::HttpResponse {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <Error><Code>SlowDown</Code><Message>injected by cairn-testservers</Message></Error>";
    let mut response = http::Response::new(s3s::Body::from(body.to_owned()));
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}

#[derive(Clone)]
pub(crate) struct CountingService {
    pub(crate) inner: s3s::service::S3Service,
    pub(crate) counters: Arc<Counters>,
    pub(crate) conditional_writes: Arc<tokio::sync::Mutex<()>>,
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<s3s::HttpResponse, s3s::HttpError>> + Send>>;

impl hyper::service::Service<http::Request<Incoming>> for CountingService {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = ServiceFuture;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        if self.counters.take_failure() {
            return Box::pin(std::future::ready(Ok(slow_down())));
        }
        let conditional = is_conditional_write(&req);
        let counters = Arc::clone(&self.counters);
        let req = req.map(|body| s3s::Body::http_body_unsync(CountingBody { body, counters }));
        let service = self.clone();
        Box::pin(async move {
            let _serialised = if conditional {
                Some(service.conditional_writes.lock().await)
            } else {
                None
            };
            service.inner.call(req).await
        })
    }
}

/// A PUT (object or part) or POST (complete multipart upload) carrying a
/// precondition on the destination object.
fn is_conditional_write<B>(req: &http::Request<B>) -> bool {
    let writes = matches!(*req.method(), http::Method::PUT | http::Method::POST);
    let headers = req.headers();
    writes
        && (headers.contains_key(http::header::IF_NONE_MATCH)
            || headers.contains_key(http::header::IF_MATCH))
}

/// A request body that adds every data frame's length to the counters as
/// the service reads it (so aborted uploads count what actually arrived).
struct CountingBody {
    body: Incoming,
    counters: Arc<Counters>,
}

impl HttpBody for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
                self.counters
                    .bytes_received
                    .fetch_add(len, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
