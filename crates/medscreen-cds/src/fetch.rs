//! Fetching missing prefetch from the EHR's FHIR server, as the CDS Hooks spec allows when the request
//! carries `fhirServer` and `fhirAuthorization`.
//!
//! Each missing template is one GET (run concurrently), with the bearer token, `Accept:
//! application/fhir+json`, a timeout, a size cap, and at most a few `next` pages of a searchset. The
//! token is only ever sent to the origin of `fhirServer`: a `next` link to another origin is not
//! followed. Errors name the prefetch key and the HTTP status, never the response body.
//!
//! `fhirServer` comes from the caller, so it must not be a way into the network the service runs in
//! (server-side request forgery). [`FhirServers`] is the policy: the trust file's `fhirServers`
//! allow-list of origins when it has one, and otherwise any origin whose addresses are public.
//! Private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), loopback
//! and other special addresses are refused unless their origin is listed; loopback is allowed in
//! development (`--insecure-no-auth`). The check is made twice: on the URL before anything is sent
//! (an address literal, `localhost`, the allow-list), and on every address a name resolves to, in
//! the HTTP client's own resolver, so that the address checked is the address connected to (a name
//! that resolves to 10.0.0.1, or changes its answer between a check and the connection, is refused).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::servers::{FhirServers, special};
use super::service::{Fetched, FhirAccess, Template, incomplete};

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// The prefetch key.
    pub key: String,
    /// What went wrong.
    pub message: String,
}

/// ``prefetch `key`: message``; the message names the status or the failure, never the body.
impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "prefetch `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for FetchError {}

/// An HTTP client for FHIR reads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    max_bytes: usize,
    max_pages: usize,
}

impl Fetcher {
    /// A client whose every request gives up after `timeout`, connecting only where `servers`
    /// allows.
    pub fn new(timeout: Duration, servers: Arc<FhirServers>) -> Result<Fetcher, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .dns_resolver(Arc::new(CheckedResolver { servers }))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("medscreen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Fetcher {
            client,
            max_bytes: 20 << 20,
            max_pages: 5,
        })
    }

    /// Fetch every template, concurrently, for `patient_id`: (key, resource or Bundle) in template
    /// order, or the first error.
    pub async fn fetch_all(
        &self,
        access: &FhirAccess,
        templates: &[Template],
        patient_id: &str,
    ) -> Result<Vec<Fetched>, FetchError> {
        let mut set = JoinSet::new();
        for (i, t) in templates.iter().enumerate() {
            let me = self.clone();
            let access = access.clone();
            let key = t.key.clone();
            let query = t.fill(patient_id);
            set.spawn(async move { (i, me.fetch(&access, &key, &query).await) });
        }
        let mut out: Vec<Option<Fetched>> = vec![None; templates.len()];
        while let Some(joined) = set.join_next().await {
            let (i, result) = joined.map_err(|e| FetchError {
                key: String::new(),
                message: format!("a fetch task failed: {e}"),
            })?;
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(result?);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// GET `{fhirServer}/{query}`; a searchset's `next` pages (on the same origin, up to a limit) are
    /// appended to its entries, and the answer says whether the list is complete.
    pub async fn fetch(
        &self,
        access: &FhirAccess,
        key: &str,
        query: &str,
    ) -> Result<Fetched, FetchError> {
        let err = |message: String| FetchError {
            key: key.to_owned(),
            message,
        };
        let base = Url::parse(&format!("{}/", access.server))
            .map_err(|_| err("`fhirServer` is not a valid URL".into()))?;
        let mut url = base
            .join(query)
            .map_err(|_| err("the prefetch query does not make a valid URL".into()))?;
        let search = query.contains('?');
        let mut bundle: Option<Value> = None;
        for _ in 0..self.max_pages {
            let page = self.get(&url, &access.token).await.map_err(&err)?;
            let kind = page.get("resourceType").and_then(Value::as_str);
            if kind == Some("OperationOutcome") {
                return Err(err(
                    "the FHIR server answered with an OperationOutcome".into()
                ));
            }
            if kind != Some("Bundle") {
                if search {
                    return Err(err(
                        "the FHIR server did not answer the search with a Bundle".into(),
                    ));
                }
                return Ok(Fetched {
                    key: key.to_owned(),
                    value: page,
                    complete: true,
                });
            }
            let next = next_link(&page);
            match &mut bundle {
                None => bundle = Some(page),
                Some(b) => {
                    let more = page
                        .get("entry")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(entries) = b.get_mut("entry").and_then(Value::as_array_mut) {
                        entries.extend(more);
                    } else {
                        b["entry"] = json!(more);
                    }
                }
            }
            match next.and_then(|n| url.join(&n).ok()) {
                Some(n) if same_origin(&n, &base) => url = n,
                // A `next` page elsewhere is not followed (the token would go with it).
                Some(_) => return Ok(finish(key, bundle, false)),
                None => return Ok(finish(key, bundle, true)),
            }
        }
        Ok(finish(key, bundle, false))
    }

    async fn get(&self, url: &Url, token: &str) -> Result<Value, String> {
        let mut resp = self
            .client
            .get(url.clone())
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/fhir+json")
            .send()
            .await
            .map_err(|e| {
                if let Some(r) = refusal(&e) {
                    r.to_string()
                } else if e.is_timeout() {
                    "the FHIR server did not answer in time".to_owned()
                } else {
                    "the FHIR server could not be reached".to_owned()
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("the FHIR server answered HTTP {}", status.as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|_| "the FHIR server's answer was cut off".to_owned())?
        {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(format!(
                    "the FHIR server's answer is larger than {} MiB",
                    self.max_bytes >> 20
                ));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| "the FHIR server's answer is not JSON".to_owned())
    }
}

/// The pages read, as one searchset without its `next` link (the pages it named are in it, or were
/// not followed: `all_pages` says which), complete when every page was read and none holds an error.
fn finish(key: &str, bundle: Option<Value>, all_pages: bool) -> Fetched {
    let mut value = bundle.unwrap_or(Value::Null);
    if let Some(links) = value.get_mut("link").and_then(Value::as_array_mut) {
        links.retain(|l| l.get("relation").and_then(Value::as_str) != Some("next"));
    }
    Fetched {
        key: key.to_owned(),
        complete: all_pages && !incomplete(&value),
        value,
    }
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle
        .get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
        .map(str::to_owned)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The resolver the HTTP client uses: the system's, then every address checked against the policy.
struct CheckedResolver {
    servers: Arc<FhirServers>,
}

/// A name that resolved to an address the policy refuses.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let servers = self.servers.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Every address, not only the first: the connection may use any of them.
            for a in &addrs {
                if !servers.address_allowed(&host, a.ip()) {
                    let what = special(a.ip()).unwrap_or("refused");
                    let e: Box<dyn std::error::Error + Send + Sync> = Box::new(Refused(format!(
                        "`fhirServer` resolves to a {what} address, where the service does not send access tokens; list its origin in the trust file's `fhirServers` to allow it"
                    )));
                    return Err(e);
                }
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// The policy refusal inside a client error, if that is what it is.
fn refusal(e: &reqwest::Error) -> Option<&Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_error_is_a_std_error_naming_the_key() {
        let err: Box<dyn std::error::Error> = Box::new(FetchError {
            key: "medications".to_owned(),
            message: "the server answered 503".to_owned(),
        });
        assert_eq!(
            err.to_string(),
            "prefetch `medications`: the server answered 503"
        );
    }
}
