//! The HTTP side of the CDS Hooks service: axum routes, authentication, limits, CORS and the feedback
//! log.
//!
//! Routes: `GET /cds-services` (discovery, open: it holds no patient data), `POST /cds-services/{id}`
//! (a hook call) and `POST /cds-services/{id}/feedback`. The two POST routes require the EHR's signed
//! JWT unless the server runs with `--insecure-no-auth`, read at most `body_limit` bytes, wait at most
//! `request_timeout` for a slot among `max_concurrent` and then for their answer, and answer errors as
//! JSON `{"error": code, "message": ...}`. Nothing here logs a request body or a patient value: the
//! access log has method, path, status and time; the feedback log has card ids, outcomes and coded
//! reasons, not free-text comments.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::{AuthError, Trust};
use super::cards::{Card, OVERRIDE_SYSTEM};
use super::catalog::Catalog;
use super::fetch::Fetcher;
use super::servers::FhirServers;
use super::service::{Cds, CdsError, ServiceDef, Step};
use medscreen_fhir::date::Date;

/// How requests are authenticated.
#[derive(Debug)]
pub enum Auth {
    /// Signed JWTs from the trusted issuers.
    Trust(Trust),
    /// No authentication (local development only).
    Insecure,
}

/// Server settings.
#[derive(Debug)]
pub struct Config {
    /// The URL clients call, without a trailing slash: JWT audiences are `{public_url}/cds-services/{id}`.
    pub public_url: String,
    /// Authentication.
    pub auth: Auth,
    /// Where feedback goes: a file (appended) or standard output.
    pub feedback_log: Option<PathBuf>,
    /// Largest request body.
    pub body_limit: usize,
    /// Longest reading a request body may take. Bodies are read before a screening slot is taken,
    /// so a slow client holds only its own connection.
    pub body_timeout: Duration,
    /// Bytes of request bodies being read or handled at once, all requests together (at least
    /// `body_limit`). A request that would go over it is answered 503 with `Retry-After`. A body
    /// costs several times its size in memory while it is parsed and screened (BENCHMARKS.md), so
    /// this bounds the service's memory.
    pub body_budget: usize,
    /// Longest a request may take in all: reading its body, waiting for a slot, and its answer.
    pub request_timeout: Duration,
    /// Longest one fetch from the EHR's FHIR server may take.
    pub fetch_timeout: Duration,
    /// Requests handled at once; the rest wait (up to the timeout).
    pub max_concurrent: usize,
    /// Log each request (method, path, status, milliseconds) to standard error.
    pub access_log: bool,
}

/// Cards issued recently, so that feedback can name the rule it answers. Kept compact (about 80
/// bytes a card: ids as numbers, the rule and service as indexes, the hook instance shared by the
/// cards of one call). The service is its number in the [`Catalog`]; the rule, its index in the
/// rules of that service's pack.
#[derive(Debug, Default)]
struct Issued {
    by_uuid: HashMap<u128, IssuedCard>,
    order: VecDeque<u128>,
}

#[derive(Debug, Clone)]
struct IssuedCard {
    service: usize,
    rule: Option<u16>,
    hook_instance: Arc<str>,
    suggestion: Option<u128>,
}

fn uuid_key(s: &str) -> Option<u128> {
    uuid::Uuid::parse_str(s).ok().map(|u| u.as_u128())
}

/// How many issued cards are remembered for feedback.
const ISSUED_MAX: usize = 100_000;

/// Everything a request handler reads. Shared by every task.
pub struct App {
    catalog: Catalog,
    cfg: Config,
    fetcher: Fetcher,
    fhir_servers: Arc<FhirServers>,
    slots: Semaphore,
    /// The byte budget of bodies in flight ([`Config::body_budget`]), one permit per byte.
    budget: Arc<Semaphore>,
    /// A heap trim is scheduled (see [`App::trim_soon`]).
    trim_pending: AtomicBool,
    issued: Mutex<Issued>,
    feedback: Mutex<Box<dyn Write + Send>>,
    /// The discovery document, written once.
    discovery: axum::body::Bytes,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The application over one pack's services (a [`Cds`]) or several packs' (a [`Catalog`]): opens
    /// the feedback log (appending) and builds the HTTP client.
    pub fn new(services: impl Into<Catalog>, cfg: Config) -> Result<App, String> {
        let catalog = services.into();
        let feedback: Box<dyn Write + Send> = match &cfg.feedback_log {
            Some(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        format!("cannot open the feedback log `{}`: {e}", path.display())
                    })?,
            ),
            None => Box::new(std::io::stdout()),
        };
        // Loopback FHIR servers only in development; a trust file may list private origins.
        let fhir_servers = Arc::new(match &cfg.auth {
            Auth::Trust(t) => t.fhir_servers(),
            Auth::Insecure => FhirServers::development(),
        });
        let discovery = serde_json::to_vec(&catalog.discovery())
            .map_err(|e| format!("cannot write the discovery document: {e}"))?
            .into();
        Ok(App {
            fetcher: Fetcher::new(cfg.fetch_timeout, fhir_servers.clone())?,
            fhir_servers,
            slots: Semaphore::new(cfg.max_concurrent.max(1)),
            budget: Arc::new(Semaphore::new(
                cfg.body_budget
                    .max(cfg.body_limit)
                    .min(Semaphore::MAX_PERMITS),
            )),
            trim_pending: AtomicBool::new(false),
            catalog,
            cfg,
            issued: Mutex::new(Issued::default()),
            feedback: Mutex::new(feedback),
            discovery,
        })
    }

    /// The default pack's services (the first pack of the catalog).
    pub fn cds(&self) -> &Cds {
        self.catalog.default_pack()
    }

    /// Every pack's services.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// A screening slot, waited for until `deadline`; 503 `busy` (with `Retry-After`) when none
    /// frees in time.
    async fn slot(&self, deadline: Instant) -> Result<SemaphorePermit<'_>, Box<Response>> {
        match tokio::time::timeout_at(deadline.into(), self.slots.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Box::new(retry_later(
                "busy",
                "the service is at its concurrency limit; retry shortly".into(),
            ))),
        }
    }

    /// Give freed memory back to the system soon after a large request, once (glibc keeps freed
    /// heap pages otherwise: measured in BENCHMARKS.md). Several large requests ending together
    /// share one trim; it runs on the blocking pool, as it walks every allocator arena.
    fn trim_soon(self: &Arc<Self>) {
        if self.trim_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let app = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(TRIM_DELAY).await;
            app.trim_pending.store(false, Ordering::Release);
            let _ = tokio::task::spawn_blocking(heap_trim::trim).await;
        });
    }

    /// Remember the cards that service number `service` issued, with rule indexes into its pack.
    fn remember(&self, service: usize, cds: &Cds, hook_instance: &str, cards: &[Card]) {
        let rules = cds.engine().rules();
        let hook_instance: Arc<str> = short(hook_instance).into();
        let Ok(mut issued) = self.issued.lock() else {
            return;
        };
        for c in cards {
            let Some(key) = uuid_key(&c.uuid) else {
                continue;
            };
            issued.by_uuid.insert(
                key,
                IssuedCard {
                    service,
                    rule: c
                        .rule
                        .as_ref()
                        .and_then(|r| rules.iter().position(|x| x.id == *r))
                        .and_then(|i| u16::try_from(i).ok()),
                    hook_instance: hook_instance.clone(),
                    suggestion: c.suggestions.first().and_then(|s| uuid_key(&s.uuid)),
                },
            );
            issued.order.push_back(key);
        }
        while issued.order.len() > ISSUED_MAX {
            if let Some(old) = issued.order.pop_front() {
                issued.by_uuid.remove(&old);
            }
        }
    }

    /// The number of service `id` in the catalog, the service and the verified issuer, or the
    /// 404 / 401 to answer. The audience is the URL called; for feedback the service's own URL is
    /// accepted too, as some clients send it.
    fn authorized(
        &self,
        id: &str,
        headers: &HeaderMap,
        feedback: bool,
    ) -> Result<(usize, &ServiceDef, Option<String>), Box<Response>> {
        let Some((n, (_, service))) = self
            .catalog
            .find(id)
            .and_then(|n| Some((n, self.catalog.get(n)?)))
        else {
            return Err(Box::new(unknown_service(self, id)));
        };
        let base = format!("{}/cds-services/{}", self.cfg.public_url, service.id);
        let audiences = if feedback {
            vec![format!("{base}/feedback"), base]
        } else {
            vec![base]
        };
        let iss = self.check_auth(headers, &audiences)?;
        Ok((n, service, iss))
    }

    fn check_auth(
        &self,
        headers: &HeaderMap,
        audiences: &[String],
    ) -> Result<Option<String>, Box<Response>> {
        let Auth::Trust(trust) = &self.cfg.auth else {
            return Ok(None);
        };
        let header = match headers.get(header::AUTHORIZATION).map(HeaderValue::to_str) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => Some(""),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut last: Option<AuthError> = None;
        for aud in audiences {
            match trust.verify(header, aud, now) {
                Ok(v) => return Ok(Some(v.iss)),
                Err(e) if e.code == "wrong_audience" => last = Some(e),
                // Too many live tokens to remember: the server is overloaded, the client did no wrong.
                Err(e) if e.code == "replay_cache_full" => {
                    return Err(Box::new(error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        e.code,
                        e.message,
                    )));
                }
                Err(e) => return Err(Box::new(unauthorized(&e))),
            }
        }
        Err(Box::new(last.map_or_else(
            || {
                error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "no audience to check".into(),
                )
            },
            |e| unauthorized(&e),
        )))
    }
}

fn unauthorized(e: &AuthError) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, e.code, e.message.clone());
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    r
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message})),
    )
        .into_response()
}

fn cds_error(e: &CdsError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(e.body())).into_response()
}

/// The routes, with CORS, limits and the access log.
pub fn router(app: Arc<App>) -> Router {
    // Any origin, as the spec's `Access-Control-Allow-Origin: *`, and no credentials: the JWT travels
    // in a header the calling script sets, so cookies are never needed (nor honoured).
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::ORIGIN,
            header::ACCEPT,
            header::CONTENT_LOCATION,
            header::LOCATION,
            header::HeaderName::from_static("x-requested-with"),
        ]);
    let limited = Router::new()
        .route("/cds-services/{id}", post(hook))
        .route("/cds-services/{id}/feedback", post(feedback))
        .route_layer(middleware::from_fn_with_state(app.clone(), guard));
    Router::new()
        .route("/cds-services", get(discovery))
        .merge(limited)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), access_log))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(cors)
        .with_state(app)
}

/// A bug must not show as a dropped connection or a stack trace: a 500 with a JSON body (the panic
/// message itself goes nowhere, as it could quote data).
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "medscreen failed on this request; the failure was logged without the request content"
            .into(),
    )
}

/// Serve on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Why [`run`] stopped serving or could not start.
#[derive(Debug)]
pub enum RunError {
    /// The async runtime could not be built.
    Runtime(std::io::Error),
    /// The address could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// The configuration was refused (a feedback log that cannot be opened...).
    Config(String),
    /// The server failed while serving.
    Serve(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Runtime(e) => write!(f, "cannot start the async runtime: {e}"),
            RunError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            RunError::Config(e) => f.write_str(e),
            RunError::Serve(e) => write!(f, "the server failed: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The whole life of `medscreen serve`: build a runtime, bind `addr`, make the configuration with
/// the public URL (`public_url`, or one made from the bound address, without a trailing `/`), call
/// `on_listen` once listening, and serve `services` (one pack's [`Cds`] or a [`Catalog`]) until
/// SIGINT or SIGTERM.
pub fn run(
    addr: SocketAddr,
    public_url: Option<String>,
    services: impl Into<Catalog>,
    config: impl FnOnce(String) -> Config,
    on_listen: impl FnOnce(SocketAddr, &str, &App),
) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        // Only large requests are screened on the blocking pool; a few threads are enough, and
        // each thread's allocator arena costs memory.
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| RunError::Bind(addr, e))?;
        let bound = listener.local_addr().unwrap_or(addr);
        let public_url = public_url
            .unwrap_or_else(|| default_public_url(bound))
            .trim_end_matches('/')
            .to_owned();
        let app =
            Arc::new(App::new(services, config(public_url.clone())).map_err(RunError::Config)?);
        on_listen(bound, &public_url, &app);
        serve(listener, app, shutdown_signal())
            .await
            .map_err(RunError::Serve)
    })
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The default public URL for a bound address.
pub fn default_public_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

async fn access_log(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status();
    if app.cfg.access_log || status.is_server_error() {
        // The path holds only the service id; bodies and headers are never logged.
        // Never panics on a closed standard error, unlike `eprintln!`.
        let _ = writeln!(
            std::io::stderr(),
            "medscreen serve: {method} {path} {} {:.1} ms",
            status.as_u16(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    resp
}

/// The whole request within the request timeout. The handlers read the body first (under its own
/// deadline and the byte budget, holding no slot) and only then wait for a slot among
/// `max_concurrent`: a client that sends its body slowly cannot hold a slot that an ordinary request
/// needs.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let deadline = app.cfg.request_timeout;
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(r) => r,
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {} ms", deadline.as_millis()),
        ),
    }
}

/// 503 with `Retry-After`: the service is momentarily full, the request was fine.
fn retry_later(code: &str, message: String) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, code, message);
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    r
}

/// What `Retry-After` says when the service is full.
const RETRY_AFTER_SECONDS: &str = "1";
/// Bodies at least this large have the heap trimmed after them.
const TRIM_MIN: usize = 1 << 20;
/// How long after a large request the trim waits, so that a burst shares one.
const TRIM_DELAY: Duration = Duration::from_millis(200);

async fn discovery(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.discovery.clone(),
    )
        .into_response()
}

/// `{"cards": [...]}`, written straight from the cards.
#[derive(serde::Serialize)]
struct CardsBody<'a> {
    cards: &'a [Card],
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; the services are listed at `GET /cds-services`".into(),
    )
}

async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "`GET /cds-services` lists the services; hooks and feedback are `POST`".into(),
    )
}

/// A request body read whole, and its bytes' share of the budget, given back when this is dropped
/// (after the answer is built: the parsed request lives that long).
struct ReadBody {
    bytes: Vec<u8>,
    budget: OwnedSemaphorePermit,
}

/// Read the body within `body_timeout`, at most `body_limit` bytes, charging the byte budget as it
/// comes (all of a declared `Content-Length` at once, so a request that cannot fit is refused before
/// it is read). Into one buffer of the declared size: no copy, no doubling.
async fn read_body(
    app: &App,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<ReadBody, Box<Response>> {
    let limit = app.cfg.body_limit;
    let too_large = || {
        Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        ))
    };
    let over_budget = || {
        Box::new(retry_later(
            "memory_busy",
            "the service is handling as much request data as it may hold at once; retry shortly"
                .into(),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let charge = |n: usize| {
        u32::try_from(n)
            .ok()
            .and_then(|n| app.budget.clone().try_acquire_many_owned(n).ok())
    };
    let mut budget = charge(declared.unwrap_or(0)).ok_or_else(over_budget)?;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    let deadline = Instant::now() + app.cfg.body_timeout;
    loop {
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout_at(deadline.into(), next).await {
            Err(_) => {
                return Err(Box::new(error(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!(
                        "the request body did not arrive within {} ms",
                        app.cfg.body_timeout.as_millis()
                    ),
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "body_cut_off",
                    "the request body was cut off".into(),
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = bytes.len() + data.len();
        if total > limit {
            return Err(too_large());
        }
        if total > budget.num_permits() {
            budget.merge(charge(total - budget.num_permits()).ok_or_else(over_budget)?);
        }
        bytes.extend_from_slice(&data);
    }
    Ok(ReadBody { bytes, budget })
}

/// Bodies up to this size are parsed and screened on the async worker (well under a millisecond);
/// larger ones on the blocking pool, so that one cannot stall the others. Measured: handing every
/// request to the pool cost 15-30% more CPU per request on loopback (BENCHMARKS.md).
const INLINE_MAX: usize = 256 << 10;

/// Run CPU work inline when `small`, else on the blocking pool; a panic there is a 500 like any other.
async fn blocking<T: Send + 'static>(
    small: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    if small {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| panicked(Box::new(())))
}

fn unknown_service(app: &App, id: &str) -> Response {
    let ids: Vec<&str> = app.catalog.services().map(|s| s.id.as_str()).collect();
    error(
        StatusCode::NOT_FOUND,
        "unknown_service",
        format!(
            "no service `{}`; the services are {}",
            id.chars().take(100).collect::<String>(),
            ids.iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

async fn hook(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let service = match app.authorized(&id, &headers, false) {
        Ok((n, _, _)) => n,
        Err(r) => return *r,
    };
    let deadline = Instant::now() + app.cfg.request_timeout;
    let ReadBody { bytes, budget } = match read_body(&app, &headers, body).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let size = bytes.len();
    let resp = screen(&app, service, bytes, deadline).await;
    drop(budget);
    if size >= TRIM_MIN {
        app.trim_soon();
    }
    resp
}

/// A hook call to service number `service` with its body read: take a slot, parse, fetch what is
/// missing, screen with the service's pack.
async fn screen(app: &Arc<App>, service: usize, bytes: Vec<u8>, deadline: Instant) -> Response {
    let _slot = match app.slot(deadline).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    // Parsing and screening are CPU work: a large request goes off the async workers, so that it
    // cannot stall the others (discovery included).
    let small = bytes.len() <= INLINE_MAX;
    let worker = app.clone();
    // The body is dropped as soon as it is parsed: only the parsed request is kept.
    let prepared = match blocking(small, move || {
        let (cds, def) = worker.catalog.get(service).ok_or_else(|| {
            CdsError::invalid("the service was removed while the request was read".into())
        })?;
        let prepared = cds.prepare_for(def, &worker.fhir_servers, &bytes);
        drop(bytes);
        prepared
    })
    .await
    {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return cds_error(&e),
        Err(r) => return r,
    };
    let pending = match prepared.step {
        Step::NoCards => return axum::Json(json!({"cards": []})).into_response(),
        Step::Screen(p) => p,
    };
    let fetched = match (&pending.fhir, pending.missing.is_empty()) {
        (_, true) => Vec::new(),
        (Some(access), false) => {
            match app
                .fetcher
                .fetch_all(access, &pending.missing, &pending.patient_id)
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    return cds_error(&CdsError {
                        status: 412,
                        code: "missing_prefetch",
                        message: format!(
                            "prefetch `{}` was not sent whole and fetching it from `fhirServer` failed: {}",
                            e.key, e.message
                        ),
                        missing: pending.missing.iter().map(|t| t.key.clone()).collect(),
                    });
                }
            }
        }
        (None, false) => Vec::new(),
    };
    let worker = app.clone();
    let small = small && fetched.is_empty();
    let cards = match blocking(small, move || {
        worker
            .catalog
            .get(service)
            .map(|(cds, _)| cds.cards(&pending, &fetched))
    })
    .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return panicked(Box::new(())),
        Err(r) => return r,
    };
    if let Some((cds, _)) = app.catalog.get(service) {
        app.remember(service, cds, &prepared.hook_instance, &cards);
    }
    axum::Json(CardsBody { cards: &cards }).into_response()
}

async fn feedback(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (service, iss) = match app.authorized(&id, &headers, true) {
        Ok((_, s, iss)) => (s, iss),
        Err(r) => return *r,
    };
    let deadline = Instant::now() + app.cfg.request_timeout;
    let ReadBody {
        bytes,
        budget: _budget,
    } = match read_body(&app, &headers, body).await {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let _slot = match app.slot(deadline).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let lines = match feedback_lines(&app, &service.id, iss.as_deref(), &bytes) {
        Ok(l) => l,
        Err(e) => return cds_error(&e),
    };
    let written = app.feedback.lock().map_err(|_| ()).and_then(|mut w| {
        for l in &lines {
            writeln!(w, "{l}").map_err(|_| ())?;
        }
        w.flush().map_err(|_| ())
    });
    if written.is_err() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "feedback_not_recorded",
            "the feedback could not be written to the audit log; send it again".into(),
        );
    }
    axum::Json(json!({"recorded": lines.len()})).into_response()
}

/// Check a feedback body and turn each item into one audit line.
fn feedback_lines(
    app: &App,
    service: &str,
    iss: Option<&str>,
    body: &[u8],
) -> Result<Vec<String>, CdsError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| CdsError {
        status: 400,
        code: "invalid_json",
        message: format!(
            "the feedback body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
        missing: Vec::new(),
    })?;
    let Some(items) = v.get("feedback").and_then(Value::as_array) else {
        return Err(CdsError::invalid(
            "the feedback body has no `feedback` array".into(),
        ));
    };
    if items.is_empty() {
        return Err(CdsError::invalid("`feedback` is empty".into()));
    }
    if items.len() > FEEDBACK_MAX_ITEMS {
        return Err(CdsError::invalid(format!(
            "`feedback` has {} items; at most {FEEDBACK_MAX_ITEMS} are taken in one request",
            items.len()
        )));
    }
    let received = now_rfc3339();
    // A card's rule is named from the pack of the service that issued it, whichever service the
    // feedback is sent to.
    let issued_by = |k: &IssuedCard| app.catalog.get(k.service);
    let issued = app.issued.lock().map(|i| {
        items
            .iter()
            .map(|it| {
                it.get("card")
                    .and_then(Value::as_str)
                    .and_then(uuid_key)
                    .and_then(|c| i.by_uuid.get(&c).cloned())
            })
            .collect::<Vec<_>>()
    });
    let issued = issued.unwrap_or_else(|_| vec![None; items.len()]);
    let mut out = Vec::with_capacity(items.len());
    for (i, (it, known)) in items.iter().zip(issued).enumerate() {
        let at = |m: &str| CdsError::invalid(format!("`feedback[{i}]`: {m}"));
        let card = match it.get("card") {
            Some(Value::String(c)) if !c.is_empty() && c.len() <= 128 => c,
            _ => return Err(at("`card` (the card's uuid) is missing or not a string")),
        };
        let outcome = match it.get("outcome").and_then(Value::as_str) {
            Some(o @ ("accepted" | "overridden")) => o,
            _ => return Err(at("`outcome` must be `accepted` or `overridden`")),
        };
        let Some(when) = it.get("outcomeTimestamp").and_then(Value::as_str) else {
            return Err(at("`outcomeTimestamp` is missing or not a string"));
        };
        let accepted: Vec<String> = match it.get("acceptedSuggestions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) if list.len() > FEEDBACK_MAX_SUGGESTIONS => {
                return Err(at(&format!(
                    "`acceptedSuggestions` has {} items; a card has at most {FEEDBACK_MAX_SUGGESTIONS}",
                    list.len()
                )));
            }
            Some(Value::Array(list)) => list
                .iter()
                .map(|s| s.get("id").and_then(Value::as_str).map(short))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| at("each of `acceptedSuggestions` needs an `id` string"))?,
            Some(_) => return Err(at("`acceptedSuggestions` is not an array")),
        };
        let reason = match it.get("overrideReason") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => return Err(at("`overrideReason` is not an object")),
        };
        let coding = reason.and_then(|r| r.get("reason")).map(|c| {
            json!({
                "system": c.get("system").and_then(Value::as_str).map(short),
                "code": c.get("code").and_then(Value::as_str).map(short),
            })
        });
        let offered = reason
            .and_then(|r| r.get("reason"))
            .map(|c| c.get("system").and_then(Value::as_str) == Some(OVERRIDE_SYSTEM));
        let line = json!({
            "received": received,
            "service": service,
            "issuer": iss,
            "card": short(card),
            "known_card": known.is_some(),
            "rule": known.as_ref().and_then(|k| Some((issued_by(k)?.0, k.rule?))).and_then(|(cds, r)| cds.engine().rules().get(usize::from(r))).map(|r| r.id.as_str()),
            "hookInstance": known.as_ref().map(|k| &*k.hook_instance),
            "card_service_matches": known.as_ref().map(|k| issued_by(k).is_some_and(|(_, s)| s.id == service)),
            "outcome": outcome,
            "outcomeTimestamp": short(when),
            "acceptedSuggestions": accepted,
            "suggestions_known": known.as_ref().map(|k| accepted.iter().all(|a| uuid_key(a).is_some_and(|a| Some(a) == k.suggestion))),
            "overrideReason": coding,
            "reason_from_our_list": offered,
            // Free text may hold patient data: only its presence is recorded.
            "userComment_given": reason.is_some_and(|r| r.get("userComment").is_some_and(|c| c.as_str().is_some_and(|s| !s.is_empty()))),
        });
        out.push(line.to_string());
    }
    Ok(out)
}

/// Feedback items taken in one request (a call's cards are a handful).
const FEEDBACK_MAX_ITEMS: usize = 100;
/// Accepted suggestions taken per feedback item (our cards carry at most one).
const FEEDBACK_MAX_SUGGESTIONS: usize = 8;
/// Longest client string written to the feedback log, in characters.
const LOGGED_MAX_CHARS: usize = 128;

/// A client-given string as logged: no control characters, no invisible formatting characters that
/// reorder or hide text (bidi overrides, zero-width characters), at most [`LOGGED_MAX_CHARS`]
/// characters, and a trailing `...` when it was cut. The log line is JSON, so quotes and backslashes
/// are escaped by the writer.
fn short(s: &str) -> String {
    let invisible = |c: char| matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
    let mut kept = s.chars().filter(|&c| !c.is_control() && !invisible(c));
    let mut out: String = kept.by_ref().take(LOGGED_MAX_CHARS).collect();
    if kept.next().is_some() {
        out.push_str("...");
    }
    out
}

/// Now as `2026-11-24T08:35:42Z`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        Date::from_days(days),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
