//! Authenticating the CDS client: verify the JWT an EHR sends with every CDS Hooks 2.0 call.
//!
//! CDS Hooks 2.0 ("Trusting CDS Clients") has the EHR sign a short JWT and send it as
//! `Authorization: Bearer <jwt>`. The service decides whom to trust out of band: a trust file
//! (`--trust FILE`) lists each trusted issuer (`iss`) with its public JWK Set, and nothing else is
//! trusted. The file is checked whole at load ([`Trust::from_file`]) so a bad key, a private key or a
//! shared secret stops the service from starting rather than surfacing on the first request.
//!
//! Verification ([`Trust::verify`]) is built to close the usual JWT holes, in this order:
//!
//! 1. The header `alg` must be an asymmetric signature algorithm (`ES256`, `ES384`, `RS256`,
//!    `RS384`, `RS512`, `PS256`, `PS384`, `PS512`). `none` and every `HS*` are refused before any key
//!    is looked at: an HMAC "keyed" by a public key is the classic algorithm-confusion attack.
//! 2. The claims are decoded *unverified* only to read `iss`, which picks the issuer; the header `kid`
//!    picks the key (an issuer with exactly one key may omit `kid`). The key comes from the trust
//!    file only: `jku`, `x5u`, `x5c` and an embedded `jwk` header are ignored, and nothing is ever
//!    fetched from the network, so a token cannot name its own verifier.
//! 3. The algorithm must fit the key: its type and curve (`ES384` needs an EC P-384 key, `RS*`/`PS*`
//!    an RSA key) and, when the JWK pins `alg`, exactly that algorithm.
//! 4. The signature is verified with `ring`, the one crypto backend of the service (it is also
//!    rustls's, for the FHIR fetches): ECDSA P-256/P-384, RSA PKCS#1 v1.5 and RSA-PSS (salt as long
//!    as the hash, as RFC 7518 §3.5 requires), over the exact bytes received.
//! 5. Only then are the claims checked, here, so that the order and the messages are ours: `exp`
//!    (required, with [`CLOCK_SKEW_SECS`] of tolerance), `nbf` and `iat` (when present, not in the
//!    future beyond the skew), `aud` (the expected URL, as a string or in an array, a trailing `/`
//!    tolerated), `jti` (required).
//! 6. The `(iss, jti)` pair is recorded until the token expires; a second use is `replayed`.
//!
//! Because the signature is checked before the time claims, an old but genuine token fails with
//! `expired`, while a forged one fails with `bad_signature` whatever its dates.
//!
//! The replay cache is in memory, so it protects one process, and it is bounded at
//! [`REPLAY_CACHE_CAPACITY`] entries: when it is full of unexpired tokens, new tokens are refused
//! (`replay_cache_full`) instead of letting memory grow without bound. Only tokens that carry a valid
//! signature from a trusted issuer reach the cache, so only a trusted client can fill it.
//!
//! Where the specification says REQUIRED but interoperability argues for leniency, this module is
//! lenient and says so: a missing `kid` is accepted when the issuer has one key, `iat` may be absent,
//! and `typ` may be absent (when present it must be `JWT`).
//!
//! Error messages never contain the token. They may name the issuer, `kid`, `jti` and audience (shortened
//! when long): those identify a client, not a patient.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use super::servers::{FhirServers, Origin};
use medscreen_core::diagnostic::{self, Diagnostic, Location};
use medscreen_core::schema::escape_pointer;
use medscreen_core::suggest::did_you_mean;

/// Clock skew tolerated between the EHR and this service, in seconds: a token is still accepted up
/// to this long after its `exp`, and its `iat`/`nbf` may be up to this far in the future.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Longest a token may still be valid when it arrives: CDS Hooks 2.0 has the client set `exp` "no
/// more than 5 minutes in the future". A longer-lived token is refused, so that a leaked one is
/// short-lived and the replay cache cannot be filled with entries that outlive a restart.
pub const MAX_LIFETIME_SECS: u64 = 300;

/// Most `(iss, jti)` pairs the replay cache holds. Expired entries are dropped first; if the cache is
/// still full, new tokens are refused with `replay_cache_full` until some expire. A token is held
/// until `exp` plus the skew, at most 420 s after it arrives (usually 360 s: clients give five minutes),
/// so this sustains about 5,000 authenticated requests a second, above what one ES384 verification
/// each allows on this machine, in about 120 MiB at worst. (100,000 filled within 40 s at 2,500
/// requests a second and turned the load test into 503s.)
pub const REPLAY_CACHE_CAPACITY: usize = 2_000_000;

/// Longest bearer token accepted, in bytes. A CDS Hooks JWT is a few hundred bytes; the cap bounds
/// the work an unauthenticated caller can make the service do.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Longest identifier (issuer, `kid`, `jti`, audience) quoted in a message, in characters.
const MAX_SHOWN_CHARS: usize = 120;

/// The accepted signature algorithms, with their JOSE names.
const ACCEPTED: [(&str, Alg); 8] = [
    ("ES256", Alg::Es256),
    ("ES384", Alg::Es384),
    ("RS256", Alg::Rs256),
    ("RS384", Alg::Rs384),
    ("RS512", Alg::Rs512),
    ("PS256", Alg::Ps256),
    ("PS384", Alg::Ps384),
    ("PS512", Alg::Ps512),
];

/// An accepted JWS algorithm: asymmetric only, by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Es256,
    Es384,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
        }
    }

    /// The `ring` verifier of an RSA algorithm; `None` for ECDSA, which [`Curve::verifier`] names.
    /// `ring`'s RSA verifiers take 2048 to 8192-bit moduli, a superset of what the trust file admits.
    fn rsa(self) -> Option<&'static RsaParameters> {
        match self {
            Alg::Es256 | Alg::Es384 => None,
            Alg::Rs256 => Some(&signature::RSA_PKCS1_2048_8192_SHA256),
            Alg::Rs384 => Some(&signature::RSA_PKCS1_2048_8192_SHA384),
            Alg::Rs512 => Some(&signature::RSA_PKCS1_2048_8192_SHA512),
            Alg::Ps256 => Some(&signature::RSA_PSS_2048_8192_SHA256),
            Alg::Ps384 => Some(&signature::RSA_PSS_2048_8192_SHA384),
            Alg::Ps512 => Some(&signature::RSA_PSS_2048_8192_SHA512),
        }
    }
}

/// What an `alg` string means to this service.
enum AlgVerdict {
    Accepted(Alg),
    /// Known and deliberately refused (`none`, HMAC), with the reason.
    Refused(&'static str),
    /// Not an algorithm this service knows.
    Unknown,
}

fn parse_alg(name: &str) -> AlgVerdict {
    if let Some((_, alg)) = ACCEPTED.iter().find(|(n, _)| *n == name) {
        return AlgVerdict::Accepted(*alg);
    }
    if name.eq_ignore_ascii_case("none") {
        return AlgVerdict::Refused("unsigned tokens are never accepted");
    }
    if name.starts_with("HS") {
        return AlgVerdict::Refused(
            "symmetric (hmac) algorithms are never accepted: cds hooks requires a public-key signature",
        );
    }
    AlgVerdict::Unknown
}

fn accepted_list() -> String {
    ACCEPTED
        .iter()
        .map(|(n, _)| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Elliptic curves with a verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }

    fn alg(self) -> Alg {
        match self {
            Curve::P256 => Alg::Es256,
            Curve::P384 => Alg::Es384,
        }
    }

    /// JWS signatures are the fixed-width `r || s`, not DER.
    fn verifier(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        }
    }

    fn agreement(self) -> &'static ring::agreement::Algorithm {
        match self {
            Curve::P256 => &ring::agreement::ECDH_P256,
            Curve::P384 => &ring::agreement::ECDH_P384,
        }
    }
}

/// The type of a trusted key, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Ec(Curve),
    Rsa,
}

impl KeyKind {
    fn fits(self, alg: Alg) -> bool {
        match self {
            KeyKind::Ec(curve) => curve.alg() == alg,
            KeyKind::Rsa => matches!(
                alg,
                Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512
            ),
        }
    }

    fn describe(self) -> String {
        match self {
            KeyKind::Ec(curve) => format!(
                "an `EC` `{}` key, which verifies `{}` only",
                curve.name(),
                curve.alg().name()
            ),
            KeyKind::Rsa => "an `RSA` key, which verifies `RS*` and `PS*` only".to_owned(),
        }
    }
}

/// The public key material, in the form `ring` verifies with. The variant is the key's type, so a
/// key can only ever be handed to a verifier of its own family.
enum PublicKey {
    /// The curve and the uncompressed point (`04 || x || y`).
    Ec(Curve, Vec<u8>),
    /// Modulus and exponent, big-endian without leading zeros (as `ring` requires).
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
}

impl PublicKey {
    fn kind(&self) -> KeyKind {
        match self {
            PublicKey::Ec(curve, _) => KeyKind::Ec(*curve),
            PublicKey::Rsa(_) => KeyKind::Rsa,
        }
    }

    /// Whether `signature` is `alg`'s signature of `message` under this key. `alg` must already fit
    /// the key ([`KeyKind::fits`]); a pairing that does not is refused here too, never guessed at.
    fn verifies(&self, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
        match (self, alg.rsa()) {
            (PublicKey::Ec(curve, point), None) if curve.alg() == alg => {
                UnparsedPublicKey::new(curve.verifier(), point)
                    .verify(message, signature)
                    .is_ok()
            }
            (PublicKey::Rsa(components), Some(params)) => {
                components.verify(params, message, signature).is_ok()
            }
            _ => false,
        }
    }
}

/// One public key of a trusted issuer, checked and ready to verify with.
struct TrustedKey {
    kid: Option<String>,
    /// The JWK's `alg`, when it pins one.
    alg: Option<Alg>,
    key: PublicKey,
}

impl TrustedKey {
    fn label(&self) -> String {
        match &self.kid {
            Some(kid) => format!("`{}`", shown(kid)),
            None => "(no `kid`)".to_owned(),
        }
    }
}

/// The allow-list of CDS clients: each trusted issuer with its public keys, plus the replay cache.
///
/// Loaded once from the trust file and shared by every request (it is `Send + Sync`). The file is
/// JSON:
///
/// ```json
/// {
///   "issuers": {
///     "https://fhir-ehr.example.com/": {
///       "keys": [
///         {"kty": "EC", "crv": "P-384", "kid": "example-kid", "use": "sig", "alg": "ES384",
///          "x": "46SDH7Znh821wblCBglA61sNE9ZrHYKKt3qRtRTmSXyOI_FIGBLWrWa0GPUkDCEk",
///          "y": "XMcRuuoGW7CXjQdy-F5i3FeBE0x9hPLdeFdSoDd3ELmx404tLX0VRRcqzAsPhXcI"}
///       ]
///     }
///   }
/// }
/// ```
///
/// Each issuer entry is that issuer's JWK Set (`{"keys": [...]}`), so a published JWKS can be pasted
/// in as is. Keys are `EC` (P-256, P-384) or `RSA` (2048 to 4096 bits), public members only.
///
/// An optional top-level `"fhirServers": ["https://fhir.example.org", "https://10.20.0.5:8443"]`
/// lists the origins (scheme, host, port; no path) a request's `fhirServer` may name: with it, only
/// those get an access token, and they may be on private addresses; without it, any https origin on
/// a public address does (see [`FhirServers`]).
pub struct Trust {
    issuers: HashMap<String, Vec<TrustedKey>>,
    fhir_servers: Vec<Origin>,
    replay: Mutex<ReplayCache>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.issuers.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Trust")
            .field("issuers", &names)
            .finish_non_exhaustive()
    }
}

/// The identity a verified token establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The trusted issuer (`iss`), exactly as in the trust file.
    pub iss: String,
    /// The subject (`sub`), when the token has one.
    pub sub: Option<String>,
    /// The token's unique id (`jti`).
    pub jti: String,
    /// Expiry (`exp`), seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time (`iat`), when the token has one.
    pub iat: Option<u64>,
    /// The healthcare organisation calling (`tenant`), when the token has one.
    pub tenant: Option<String>,
    /// The `kid` of the trusted key that verified the signature, when the key has one.
    pub kid: Option<String>,
}

/// Why a request's token was refused. The service returns `message` in its 401 body.
///
/// `code` is stable and set where the error is made:
///
/// | code | meaning |
/// |---|---|
/// | `missing_token` | no `Authorization` header |
/// | `malformed_header` | the header is not `Bearer <token>` |
/// | `malformed_token` | not a compact JWS, too long, or a header that cannot be honoured (`crit`, `typ`) |
/// | `unsupported_alg` | `alg` is `none`, `HS*`, or not one this service verifies |
/// | `untrusted_issuer` | `iss` is not in the trust file |
/// | `unknown_key` | no trusted key of the issuer matches the `kid` |
/// | `key_alg_mismatch` | the `alg` does not fit the key (type, curve, or the JWK's pinned `alg`) |
/// | `bad_signature` | the signature does not verify |
/// | `missing_claim` | `iss`, `aud`, `exp` or `jti` is absent |
/// | `invalid_claim` | a claim has the wrong type (e.g. `exp` not a number) |
/// | `expired` | `exp` is past, beyond the clock skew |
/// | `not_yet_valid` | `nbf` or `iat` is in the future, beyond the clock skew |
/// | `wrong_audience` | `aud` is not this service's URL |
/// | `replayed` | this issuer's `jti` was already used |
/// | `replay_cache_full` | too many unexpired tokens are remembered; a load condition, not the client's fault |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    /// Stable machine-readable code, listed above.
    pub code: &'static str,
    /// Lowercase, one line; never contains the token.
    pub message: String,
}

impl AuthError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        AuthError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthError {}

/// One thing wrong with a trust file, located by file and JSON Pointer.
///
/// Displayed as ``trust.json at /issuers/https:~1~1ehr.example~1/keys/0/d: private key member `d`
/// present; a trust file holds public keys only`` followed by `  help: ...` when there is help.
///
/// Codes: `io`, `invalid_json`, `wrong_type`, `missing_member`, `unknown_member`, `no_issuers`,
/// `invalid_issuer`, `no_keys`, `private_key`, `symmetric_key`, `unknown_kty`, `unsupported_key`,
/// `invalid_key`, `weak_key`, `unsupported_alg`, `key_alg_mismatch`, `missing_kid`, `duplicate_kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustProblem {
    /// Stable machine-readable code, listed above.
    pub code: &'static str,
    /// The file, as named to the loader.
    pub file: String,
    /// JSON Pointer inside the file (empty for the whole file).
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// One line of help, when there is some.
    pub help: Option<String>,
}

impl Diagnostic for TrustProblem {
    fn code(&self) -> &'static str {
        self.code
    }

    fn message(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.message)
    }

    fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    fn location(&self) -> Location<'_> {
        Location::File {
            file: &self.file,
            rule: None,
            pointer: &self.pointer,
        }
    }
}

/// ``file at /pointer: message``, then the help on a line of its own.
impl fmt::Display for TrustProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        diagnostic::render(self, f)
    }
}

impl std::error::Error for TrustProblem {}

/// Everything wrong with a trust file, collected in one pass; the service refuses to start on any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfigError {
    /// The problems, in file order.
    pub problems: Vec<TrustProblem>,
}

impl fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "the trust file failed to load ({n} error{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "error: {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AuthConfigError {}

impl Trust {
    /// Read and check the trust file at `path`.
    pub fn from_file(path: &Path) -> Result<Trust, AuthConfigError> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Trust::from_json(&text, &origin),
            Err(e) => Err(AuthConfigError {
                problems: vec![TrustProblem {
                    code: "io",
                    file: origin,
                    pointer: String::new(),
                    message: format!("cannot read the trust file: {e}"),
                    help: None,
                }],
            }),
        }
    }

    /// Parse and check a trust file's text; `origin` names it in errors (usually the path).
    pub fn from_json(text: &str, origin: &str) -> Result<Trust, AuthConfigError> {
        let mut loader = Loader {
            file: origin,
            problems: Vec::new(),
            origins: Vec::new(),
        };
        let issuers = loader.load(text);
        if loader.problems.is_empty() {
            Ok(Trust {
                issuers,
                fhir_servers: loader.origins,
                replay: Mutex::new(ReplayCache::new(REPLAY_CACHE_CAPACITY)),
            })
        } else {
            Err(AuthConfigError {
                problems: loader.problems,
            })
        }
    }

    /// How many issuers are trusted.
    pub fn issuers(&self) -> usize {
        self.issuers.len()
    }

    /// The policy for the `fhirServer` of requests: the file's `fhirServers` origins (only those,
    /// on any address) or, without that member, any origin on a public address.
    pub fn fhir_servers(&self) -> FhirServers {
        FhirServers::new(self.fhir_servers.clone())
    }

    /// Verify the `Authorization` header of one request and consume its `jti`.
    ///
    /// `expected_aud` is the URL of the endpoint being called (e.g.
    /// `https://cds.example.org/cds-services/some-service`). `now` is seconds since the Unix epoch
    /// (so tests can pin time). On success the `(iss, jti)` pair is remembered until the token
    /// expires, and presenting the same token again fails with `replayed`.
    pub fn verify(
        &self,
        authorization_header: Option<&str>,
        expected_aud: &str,
        now: u64,
    ) -> Result<Verified, AuthError> {
        let verified = self.verify_token(authorization_header, expected_aud, now)?;
        self.replay_cache()
            .record(&verified.iss, &verified.jti, verified.exp, now)?;
        Ok(verified)
    }

    /// Same checks as [`Trust::verify`], including refusing a `jti` already consumed, but without
    /// consuming this one (no replay-cache insertion). For tests and diagnostics.
    pub fn check(
        &self,
        authorization_header: Option<&str>,
        expected_aud: &str,
        now: u64,
    ) -> Result<Verified, AuthError> {
        let verified = self.verify_token(authorization_header, expected_aud, now)?;
        self.replay_cache()
            .refuse_replay(&verified.iss, &verified.jti, now)?;
        Ok(verified)
    }

    /// The replay cache. A panic while it was held cannot leave it inconsistent (each update is a
    /// single map operation), so a poisoned lock is used as is rather than failing every request.
    fn replay_cache(&self) -> std::sync::MutexGuard<'_, ReplayCache> {
        self.replay.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every check except the replay cache.
    fn verify_token(
        &self,
        authorization_header: Option<&str>,
        expected_aud: &str,
        now: u64,
    ) -> Result<Verified, AuthError> {
        let token = bearer_token(authorization_header)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::new(
                "malformed_token",
                format!(
                    "the bearer token is longer than {MAX_TOKEN_BYTES} bytes; a cds hooks jwt is a few hundred"
                ),
            ));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::new(
                "malformed_token",
                "the bearer token is not a compact jws (three base64url parts joined by `.`)",
            ));
        };

        // 1. The algorithm, before anything else depends on it.
        let header = decode_object(header_b64, "header")?;
        let alg = header_alg(&header)?;
        if let Some(typ) = header.get("typ")
            && !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
        {
            return Err(AuthError::new(
                "malformed_token",
                "token header `typ` is not `JWT`",
            ));
        }
        if header.contains_key("crit") {
            return Err(AuthError::new(
                "malformed_token",
                "token header `crit` names extensions this service does not implement",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => {
                return Err(AuthError::new(
                    "malformed_token",
                    "token header `kid` is not a string",
                ));
            }
        };

        // 2. Unverified claims, read only to choose the issuer.
        let claims = decode_object(payload_b64, "payload")?;
        let iss = required_string(&claims, "iss")?;
        let Some((iss, keys)) = self.issuers.get_key_value(iss) else {
            return Err(self.untrusted(iss));
        };
        let key = select_key(iss, keys, kid)?;

        // 3. The algorithm must fit the key.
        if !key.key.kind().fits(alg) {
            return Err(AuthError::new(
                "key_alg_mismatch",
                format!(
                    "token `alg` `{}` does not fit key {} of issuer `{}`: it is {}",
                    alg.name(),
                    key.label(),
                    shown(iss),
                    key.key.kind().describe()
                ),
            ));
        }
        if let Some(pinned) = key.alg
            && pinned != alg
        {
            return Err(AuthError::new(
                "key_alg_mismatch",
                format!(
                    "token `alg` `{}` does not match `alg` `{}` of key {} of issuer `{}`",
                    alg.name(),
                    pinned.name(),
                    key.label(),
                    shown(iss)
                ),
            ));
        }

        // 4. The signature, over the exact bytes received.
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        // `ring` for every algorithm (already linked for TLS): its P-384 is about ten times faster
        // than the pure-Rust one that cost 1.2 ms a token (BENCHMARKS.md), and one backend is one
        // set of crypto code to audit and update.
        let good = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .is_ok_and(|sig| key.key.verifies(alg, signing_input.as_bytes(), &sig));
        if !good {
            return Err(AuthError::new(
                "bad_signature",
                format!(
                    "token signature does not verify with key {} of issuer `{}`",
                    key.label(),
                    shown(iss)
                ),
            ));
        }

        // 5. The claims, now that they are known to come from the issuer.
        let exp = required_date(&claims, "exp")?;
        if now >= exp.saturating_add(CLOCK_SKEW_SECS) {
            return Err(AuthError::new(
                "expired",
                format!(
                    "token expired at {exp} (now {now}, allowed clock skew {CLOCK_SKEW_SECS} s)"
                ),
            ));
        }
        if exp > now.saturating_add(MAX_LIFETIME_SECS + CLOCK_SKEW_SECS) {
            return Err(AuthError::new(
                "lifetime_too_long",
                format!(
                    "token `exp` {exp} is more than {MAX_LIFETIME_SECS} s in the future (now {now}, \
                     allowed clock skew {CLOCK_SKEW_SECS} s); CDS Hooks clients issue short-lived tokens"
                ),
            ));
        }
        let nbf = optional_date(&claims, "nbf")?;
        let iat = optional_date(&claims, "iat")?;
        for (name, at) in [("nbf", nbf), ("iat", iat)] {
            if let Some(at) = at
                && at > now.saturating_add(CLOCK_SKEW_SECS)
            {
                return Err(AuthError::new(
                    "not_yet_valid",
                    format!(
                        "token `{name}` {at} is in the future (now {now}, allowed clock skew {CLOCK_SKEW_SECS} s)"
                    ),
                ));
            }
        }
        check_audience(&claims, expected_aud)?;
        let jti = required_string(&claims, "jti")?;
        if jti.is_empty() {
            return Err(AuthError::new(
                "invalid_claim",
                "token claim `jti` is empty",
            ));
        }
        let sub = optional_string(&claims, "sub")?;
        let tenant = optional_string(&claims, "tenant")?;

        Ok(Verified {
            iss: iss.clone(),
            sub,
            jti: jti.to_owned(),
            exp,
            iat,
            tenant,
            kid: key.kid.clone(),
        })
    }

    fn untrusted(&self, iss: &str) -> AuthError {
        let mut message = format!("issuer `{}` is not in the trust file", shown(iss));
        // A trailing slash is the likeliest slip between a trust file and an EHR's `iss`; name it
        // rather than silently accepting a different string as the issuer.
        let alternative = match iss.strip_suffix('/') {
            Some(base) => base.to_owned(),
            None => format!("{iss}/"),
        };
        if self.issuers.contains_key(&alternative) {
            message.push_str(&format!(
                " (it trusts `{}`; issuers are compared exactly)",
                shown(&alternative)
            ));
        }
        AuthError::new("untrusted_issuer", message)
    }
}

/// The token from `Authorization: Bearer <token>` (RFC 6750; the scheme is case-insensitive).
fn bearer_token(header: Option<&str>) -> Result<&str, AuthError> {
    let Some(header) = header else {
        return Err(AuthError::new(
            "missing_token",
            "no `Authorization` header: this service requires a bearer jwt signed by a trusted cds client",
        ));
    };
    let malformed = || {
        AuthError::new(
            "malformed_header",
            "the `Authorization` header is not `Bearer <jwt>`",
        )
    };
    let header = header.trim();
    let (scheme, token) = header.split_once([' ', '\t']).ok_or_else(malformed)?;
    let token = token.trim_start_matches([' ', '\t']);
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.contains(|c: char| c.is_ascii_whitespace())
    {
        return Err(malformed());
    }
    Ok(token)
}

/// A base64url part of the token that must hold a JSON object.
fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, AuthError> {
    let bad = || {
        AuthError::new(
            "malformed_token",
            format!("token {what} is not a base64url-encoded json object"),
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| bad())?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(bad()),
    }
}

fn header_alg(header: &Map<String, Value>) -> Result<Alg, AuthError> {
    let Some(alg) = header.get("alg") else {
        return Err(AuthError::new(
            "malformed_token",
            "token header has no `alg`",
        ));
    };
    let Some(name) = alg.as_str() else {
        return Err(AuthError::new(
            "malformed_token",
            "token header `alg` is not a string",
        ));
    };
    match parse_alg(name) {
        AlgVerdict::Accepted(alg) => Ok(alg),
        AlgVerdict::Refused(why) => Err(AuthError::new(
            "unsupported_alg",
            format!("token `alg` `{}` is refused: {why}", shown(name)),
        )),
        AlgVerdict::Unknown => Err(AuthError::new(
            "unsupported_alg",
            format!(
                "token `alg` `{}` is not supported; accepted: {}",
                shown(name),
                accepted_list()
            ),
        )),
    }
}

/// The issuer's key named by `kid`, or its only key when the token names none.
fn select_key<'k>(
    iss: &str,
    keys: &'k [TrustedKey],
    kid: Option<&str>,
) -> Result<&'k TrustedKey, AuthError> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| {
                AuthError::new(
                    "unknown_key",
                    format!(
                        "issuer `{}` has no trusted key with `kid` `{}`",
                        shown(iss),
                        shown(kid)
                    ),
                )
            }),
        None => match keys {
            [only] => Ok(only),
            _ => Err(AuthError::new(
                "unknown_key",
                format!(
                    "token has no `kid` and issuer `{}` has {} trusted keys",
                    shown(iss),
                    keys.len()
                ),
            )),
        },
    }
}

fn required_string<'c>(claims: &'c Map<String, Value>, name: &str) -> Result<&'c str, AuthError> {
    match claims.get(name) {
        None => Err(missing_claim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(AuthError::new(
            "invalid_claim",
            format!("token claim `{name}` is not a string"),
        )),
    }
}

fn optional_string(claims: &Map<String, Value>, name: &str) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(_) => required_string(claims, name).map(|s| Some(s.to_owned())),
    }
}

fn required_date(claims: &Map<String, Value>, name: &str) -> Result<u64, AuthError> {
    optional_date(claims, name)?.ok_or_else(|| missing_claim(name))
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional; truncated to whole
/// seconds.
fn optional_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthError> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let seconds = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    });
    match seconds {
        Some(s) => Ok(Some(s)),
        None => Err(AuthError::new(
            "invalid_claim",
            format!("token claim `{name}` is not a non-negative number of seconds since the epoch"),
        )),
    }
}

fn missing_claim(name: &str) -> AuthError {
    AuthError::new("missing_claim", format!("token has no `{name}` claim"))
}

/// `aud` must name this endpoint: a string or an array of strings, compared exactly except that one
/// trailing `/` on either side is ignored.
fn check_audience(claims: &Map<String, Value>, expected: &str) -> Result<(), AuthError> {
    let same = |aud: &str| {
        aud.strip_suffix('/').unwrap_or(aud) == expected.strip_suffix('/').unwrap_or(expected)
    };
    let invalid = || {
        AuthError::new(
            "invalid_claim",
            "token claim `aud` is not a string or an array of strings",
        )
    };
    let audiences: Vec<&str> = match claims.get("aud") {
        None => return Err(missing_claim("aud")),
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(invalid))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid()),
    };
    if audiences.iter().any(|aud| same(aud)) {
        return Ok(());
    }
    let named = audiences
        .iter()
        .take(3)
        .map(|a| format!("`{}`", shown(a)))
        .collect::<Vec<_>>()
        .join(", ");
    let more = if audiences.len() > 3 { ", ..." } else { "" };
    Err(AuthError::new(
        "wrong_audience",
        format!(
            "token audience [{named}{more}] does not include this service `{}`",
            shown(expected)
        ),
    ))
}

/// An identifier as quoted in a message: control characters dropped, long values shortened.
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control() && *c != '`')
        .take(MAX_SHOWN_CHARS)
        .collect();
    if s.chars().count() > MAX_SHOWN_CHARS {
        out.push_str("...");
    }
    out
}

/// `(iss, jti)` pairs already accepted, each kept until its token could no longer be accepted
/// (`exp` plus the clock skew). A pair is kept as the first 128 bits of its SHA-256 (about 60 bytes an
/// entry with the expiry index, against 150 or more for the strings), and expiry is indexed so that
/// pruning touches only what has expired.
struct ReplayCache {
    seen: HashMap<u128, u64>,
    by_expiry: BTreeMap<u64, Vec<u128>>,
    capacity: usize,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        ReplayCache {
            seen: HashMap::new(),
            by_expiry: BTreeMap::new(),
            capacity,
        }
    }

    fn key(iss: &str, jti: &str) -> u128 {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(iss.as_bytes());
        h.update([0u8]);
        h.update(jti.as_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 16];
        for (to, from) in first.iter_mut().zip(digest.iter()) {
            *to = *from;
        }
        u128::from_be_bytes(first)
    }

    fn refuse_replay(&self, iss: &str, jti: &str, now: u64) -> Result<(), AuthError> {
        match self.seen.get(&Self::key(iss, jti)) {
            Some(&until) if until > now => Err(AuthError::new(
                "replayed",
                format!(
                    "token `jti` `{}` from issuer `{}` was already used; each request needs a fresh token",
                    shown(jti),
                    shown(iss)
                ),
            )),
            _ => Ok(()),
        }
    }

    fn prune(&mut self, now: u64) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if *entry.key() > now {
                break;
            }
            for k in entry.remove() {
                if self.seen.get(&k).is_some_and(|&until| until <= now) {
                    self.seen.remove(&k);
                }
            }
        }
    }

    /// Remember `(iss, jti)` until `exp` (plus skew), refusing a replay or a full cache.
    fn record(&mut self, iss: &str, jti: &str, exp: u64, now: u64) -> Result<(), AuthError> {
        self.refuse_replay(iss, jti, now)?;
        self.prune(now);
        let key = Self::key(iss, jti);
        if self.seen.len() >= self.capacity && !self.seen.contains_key(&key) {
            return Err(AuthError::new(
                "replay_cache_full",
                format!(
                    "the replay cache holds {} unexpired tokens, its limit; new tokens are refused until some expire",
                    self.seen.len()
                ),
            ));
        }
        let until = exp.saturating_add(CLOCK_SKEW_SECS);
        self.seen.insert(key, until);
        self.by_expiry.entry(until).or_default().push(key);
        Ok(())
    }
}

/// Members of a JWK that only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Builds a [`Trust`] from the file's text, collecting every problem with its JSON Pointer.
struct Loader<'a> {
    file: &'a str,
    problems: Vec<TrustProblem>,
    origins: Vec<Origin>,
}

impl Loader<'_> {
    fn problem(
        &mut self,
        code: &'static str,
        pointer: &str,
        message: String,
        help: Option<String>,
    ) {
        self.problems.push(TrustProblem {
            code,
            file: self.file.to_owned(),
            pointer: pointer.to_owned(),
            message,
            help,
        });
    }

    fn load(&mut self, text: &str) -> HashMap<String, Vec<TrustedKey>> {
        let mut issuers = HashMap::new();
        let root: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.problem(
                    "invalid_json",
                    "",
                    format!("the trust file is not json: {e}"),
                    None,
                );
                return issuers;
            }
        };
        let Some(root) = self.object(&root, "", "the trust file") else {
            return issuers;
        };
        self.unknown_members(root, "", &["issuers", "fhirServers"]);
        if let Some(list) = root.get("fhirServers") {
            self.fhir_servers(list);
        }
        let Some(entries) = root.get("issuers") else {
            self.problem(
                "missing_member",
                "",
                "no `issuers` member".to_owned(),
                Some(r#"write `{"issuers": {"<iss>": {"keys": [<public JWK>, ...]}}}`"#.to_owned()),
            );
            return issuers;
        };
        let Some(entries) = self.object(entries, "/issuers", "`issuers`") else {
            return issuers;
        };
        if entries.is_empty() {
            self.problem(
                "no_issuers",
                "/issuers",
                "`issuers` is empty, so no cds client could call the service".to_owned(),
                None,
            );
        }
        for (iss, entry) in entries {
            let pointer = format!("/issuers/{}", escape_pointer(iss));
            if iss.is_empty() {
                self.problem(
                    "invalid_issuer",
                    &pointer,
                    "an issuer is the empty string".to_owned(),
                    None,
                );
                continue;
            }
            if let Some(keys) = self.issuer(entry, &pointer) {
                issuers.insert(iss.clone(), keys);
            }
        }
        issuers
    }

    /// `fhirServers`: the origins a request's `fhirServer` may name (see [`FhirServers`]).
    fn fhir_servers(&mut self, list: &Value) {
        let Some(items) = list.as_array() else {
            self.problem(
                "wrong_type",
                "/fhirServers",
                format!("`fhirServers` is {}, expected an array", type_name(list)),
                Some(r#"write `"fhirServers": ["https://fhir.example.org", ...]`"#.to_owned()),
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let pointer = format!("/fhirServers/{i}");
            let Some(text) = item.as_str() else {
                self.problem(
                    "wrong_type",
                    &pointer,
                    format!("an origin is {}, expected a string", type_name(item)),
                    None,
                );
                continue;
            };
            match Origin::parse(text) {
                Ok(o) if self.origins.contains(&o) => self.problem(
                    "duplicate_origin",
                    &pointer,
                    format!("origin `{}` is listed twice", shown(text)),
                    None,
                ),
                Ok(o) => self.origins.push(o),
                Err(e) => self.problem(
                    "invalid_origin",
                    &pointer,
                    format!("`{}` is not a FHIR server origin: {e}", shown(text)),
                    Some(
                        "write the scheme, host and port only: `https://fhir.example.org:8443`"
                            .to_owned(),
                    ),
                ),
            }
        }
    }

    fn object<'v>(
        &mut self,
        value: &'v Value,
        pointer: &str,
        what: &str,
    ) -> Option<&'v Map<String, Value>> {
        let object = value.as_object();
        if object.is_none() {
            self.problem(
                "wrong_type",
                pointer,
                format!("{what} is {}, expected an object", type_name(value)),
                None,
            );
        }
        object
    }

    fn unknown_members(&mut self, object: &Map<String, Value>, pointer: &str, known: &[&str]) {
        for name in object.keys() {
            if !known.contains(&name.as_str()) {
                let help = did_you_mean(name, known.iter().copied())
                    .map(|m| format!("did you mean `{m}`?"));
                self.problem(
                    "unknown_member",
                    &format!("{pointer}/{}", escape_pointer(name)),
                    format!("unknown member `{}`", shown(name)),
                    help,
                );
            }
        }
    }

    /// One issuer's JWK Set: every key checked, then the `kid` rules across them.
    fn issuer(&mut self, entry: &Value, pointer: &str) -> Option<Vec<TrustedKey>> {
        let entry = self.object(entry, pointer, "an issuer entry")?;
        self.unknown_members(entry, pointer, &["keys"]);
        let keys_pointer = format!("{pointer}/keys");
        let Some(keys) = entry.get("keys") else {
            self.problem(
                "missing_member",
                pointer,
                "no `keys` member".to_owned(),
                Some(
                    "an issuer entry is its JWK Set: `{\"keys\": [<public JWK>, ...]}`".to_owned(),
                ),
            );
            return None;
        };
        let Some(keys) = keys.as_array() else {
            self.problem(
                "wrong_type",
                &keys_pointer,
                format!("`keys` is {}, expected an array", type_name(keys)),
                None,
            );
            return None;
        };
        if keys.is_empty() {
            self.problem(
                "no_keys",
                &keys_pointer,
                "`keys` is empty, so no token from this issuer could verify".to_owned(),
                None,
            );
            return None;
        }
        let before = self.problems.len();
        let mut loaded = Vec::with_capacity(keys.len());
        let mut kids = HashSet::new();
        for (i, jwk) in keys.iter().enumerate() {
            let key_pointer = format!("{keys_pointer}/{i}");
            let Some(key) = self.key(jwk, &key_pointer) else {
                continue;
            };
            match &key.kid {
                Some(kid) if !kids.insert(kid.clone()) => self.problem(
                    "duplicate_kid",
                    &format!("{key_pointer}/kid"),
                    format!("`kid` `{}` is used by two keys of this issuer", shown(kid)),
                    Some("each key of an issuer needs its own `kid`".to_owned()),
                ),
                Some(_) => {}
                None if keys.len() > 1 => self.problem(
                    "missing_kid",
                    &key_pointer,
                    format!(
                        "key has no `kid`, but the issuer has {} keys, so tokens could not name it",
                        keys.len()
                    ),
                    None,
                ),
                None => {}
            }
            loaded.push(key);
        }
        (self.problems.len() == before).then_some(loaded)
    }

    /// One JWK: public, asymmetric, a supported type and size, with a consistent `alg`.
    fn key(&mut self, jwk: &Value, pointer: &str) -> Option<TrustedKey> {
        let jwk = self.object(jwk, pointer, "a key")?;
        let kty = match jwk.get("kty") {
            None => {
                self.problem(
                    "invalid_key",
                    pointer,
                    "key has no `kty`".to_owned(),
                    Some("`kty` is `EC` or `RSA`".to_owned()),
                );
                return None;
            }
            Some(Value::String(kty)) => kty.as_str(),
            Some(other) => {
                self.problem(
                    "wrong_type",
                    &format!("{pointer}/kty"),
                    format!("`kty` is {}, expected a string", type_name(other)),
                    None,
                );
                return None;
            }
        };
        let kty_pointer = format!("{pointer}/kty");
        match kty {
            "EC" | "RSA" => {}
            "oct" => {
                self.problem(
                    "symmetric_key",
                    &kty_pointer,
                    "symmetric key (`kty` `oct`) refused: a shared secret cannot identify a cds client, and hmac tokens are never accepted".to_owned(),
                    Some("trust the client's public `EC` or `RSA` key instead".to_owned()),
                );
                return None;
            }
            "OKP" => {
                self.problem(
                    "unsupported_key",
                    &kty_pointer,
                    "`kty` `OKP` (EdDSA) keys are not supported".to_owned(),
                    Some("use an `EC` P-384 key (ES384) or an `RSA` key (RS384)".to_owned()),
                );
                return None;
            }
            other => {
                let help = did_you_mean(other, ["EC", "RSA", "oct", "OKP"])
                    .map(|m| format!("did you mean `{m}`?"))
                    .or_else(|| Some("`kty` is `EC` or `RSA`".to_owned()));
                self.problem(
                    "unknown_kty",
                    &kty_pointer,
                    format!("unknown `kty` `{}`", shown(other)),
                    help,
                );
                return None;
            }
        }

        let private: Vec<&str> = PRIVATE_MEMBERS
            .iter()
            .copied()
            .filter(|m| jwk.contains_key(*m))
            .collect();
        if let Some(first) = private.first() {
            let names = private
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.problem(
                "private_key",
                &format!("{pointer}/{first}"),
                format!(
                    "private key member{} {names} present; a trust file must hold public keys only",
                    if private.len() == 1 { "" } else { "s" }
                ),
                Some(
                    "keep only the public members; a private key that was shared should be rotated"
                        .to_owned(),
                ),
            );
            return None;
        }

        let before = self.problems.len();
        if let Some(usage) = jwk.get("use")
            && usage.as_str() != Some("sig")
        {
            self.problem(
                "invalid_key",
                &format!("{pointer}/use"),
                "`use` is not `sig`; only signature keys can verify tokens".to_owned(),
                None,
            );
        }
        if let Some(ops) = jwk.get("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !verifies {
                self.problem(
                    "invalid_key",
                    &format!("{pointer}/key_ops"),
                    "`key_ops` does not include `verify`".to_owned(),
                    None,
                );
            }
        }
        let kid = match jwk.get("kid") {
            None => None,
            Some(Value::String(kid)) if !kid.is_empty() => Some(kid.clone()),
            Some(_) => {
                self.problem(
                    "invalid_key",
                    &format!("{pointer}/kid"),
                    "`kid` is not a non-empty string".to_owned(),
                    None,
                );
                None
            }
        };
        let alg = match jwk.get("alg") {
            None => None,
            Some(value) => self.jwk_alg(value, &format!("{pointer}/alg")),
        };
        let key = if kty == "EC" {
            self.ec_key(jwk, pointer)?
        } else {
            self.rsa_key(jwk, pointer)?
        };
        let kind = key.kind();
        if let Some(alg) = alg
            && !kind.fits(alg)
        {
            self.problem(
                "key_alg_mismatch",
                &format!("{pointer}/alg"),
                format!(
                    "`alg` `{}` does not fit this key: it is {}",
                    alg.name(),
                    kind.describe()
                ),
                None,
            );
        }
        (self.problems.len() == before).then_some(TrustedKey { kid, alg, key })
    }

    fn jwk_alg(&mut self, value: &Value, pointer: &str) -> Option<Alg> {
        let Some(name) = value.as_str() else {
            self.problem(
                "wrong_type",
                pointer,
                format!("`alg` is {}, expected a string", type_name(value)),
                None,
            );
            return None;
        };
        match parse_alg(name) {
            AlgVerdict::Accepted(alg) => Some(alg),
            AlgVerdict::Refused(why) => {
                self.problem(
                    "unsupported_alg",
                    pointer,
                    format!("`alg` `{}` is refused: {why}", shown(name)),
                    None,
                );
                None
            }
            AlgVerdict::Unknown => {
                let help = did_you_mean(name, ACCEPTED.iter().map(|(n, _)| *n))
                    .map(|m| format!("did you mean `{m}`?"))
                    .or_else(|| Some(format!("accepted: {}", accepted_list())));
                self.problem(
                    "unsupported_alg",
                    pointer,
                    format!("`alg` `{}` is not supported", shown(name)),
                    help,
                );
                None
            }
        }
    }

    /// A required base64url member of a JWK, decoded.
    fn b64_member(
        &mut self,
        jwk: &Map<String, Value>,
        pointer: &str,
        name: &str,
    ) -> Option<Vec<u8>> {
        let member_pointer = format!("{pointer}/{name}");
        match jwk.get(name) {
            None => {
                self.problem("invalid_key", pointer, format!("key has no `{name}`"), None);
                None
            }
            Some(Value::String(s)) => match URL_SAFE_NO_PAD.decode(s) {
                Ok(bytes) if !bytes.is_empty() => Some(bytes),
                _ => {
                    self.problem(
                        "invalid_key",
                        &member_pointer,
                        format!("`{name}` is not unpadded base64url"),
                        None,
                    );
                    None
                }
            },
            Some(other) => {
                self.problem(
                    "wrong_type",
                    &member_pointer,
                    format!("`{name}` is {}, expected a string", type_name(other)),
                    None,
                );
                None
            }
        }
    }

    fn ec_key(&mut self, jwk: &Map<String, Value>, pointer: &str) -> Option<PublicKey> {
        let crv_pointer = format!("{pointer}/crv");
        let curve = match jwk.get("crv").and_then(Value::as_str) {
            Some("P-256") => Curve::P256,
            Some("P-384") => Curve::P384,
            Some(other @ ("P-521" | "secp256k1")) => {
                self.problem(
                    "unsupported_key",
                    &crv_pointer,
                    format!("curve `{other}` is not supported"),
                    Some("use `P-384` (ES384) or `P-256` (ES256)".to_owned()),
                );
                return None;
            }
            Some(other) => {
                let help =
                    did_you_mean(other, ["P-256", "P-384"]).map(|m| format!("did you mean `{m}`?"));
                self.problem(
                    "invalid_key",
                    &crv_pointer,
                    format!("unknown curve `{}`", shown(other)),
                    help,
                );
                return None;
            }
            None => {
                self.problem(
                    "invalid_key",
                    pointer,
                    "`EC` key has no string `crv`".to_owned(),
                    None,
                );
                return None;
            }
        };
        let x = self.b64_member(jwk, pointer, "x");
        let y = self.b64_member(jwk, pointer, "y");
        let (x, y) = (x?, y?);
        let want = curve.coordinate_len();
        if x.len() != want || y.len() != want {
            self.problem(
                "invalid_key",
                pointer,
                format!(
                    "`x` and `y` of a `{}` key are {want} bytes each, not {} and {}",
                    curve.name(),
                    x.len(),
                    y.len()
                ),
                None,
            );
            return None;
        }
        let mut point = Vec::with_capacity(1 + 2 * want);
        point.push(4);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        if !on_curve(curve, &point) {
            self.problem(
                "invalid_key",
                pointer,
                format!("(`x`, `y`) is not a point on `{}`", curve.name()),
                None,
            );
            return None;
        }
        Some(PublicKey::Ec(curve, point))
    }

    fn rsa_key(&mut self, jwk: &Map<String, Value>, pointer: &str) -> Option<PublicKey> {
        let n = self.b64_member(jwk, pointer, "n");
        let e = self.b64_member(jwk, pointer, "e");
        let (n, e) = (n?, e?);
        let bits = bit_length(&n);
        if bits < 2048 {
            self.problem(
                "weak_key",
                &format!("{pointer}/n"),
                format!("the rsa modulus is {bits} bits; at least 2048 are required"),
                None,
            );
            return None;
        }
        if bits > 4096 {
            self.problem(
                "unsupported_key",
                &format!("{pointer}/n"),
                format!("the rsa modulus is {bits} bits; at most 4096 are supported"),
                None,
            );
            return None;
        }
        let (n, e) = (without_leading_zeros(&n), without_leading_zeros(&e));
        if !rsa_usable(n, e) {
            self.problem(
                "invalid_key",
                pointer,
                "(`n`, `e`) is not a usable rsa public key".to_owned(),
                None,
            );
            return None;
        }
        Some(PublicKey::Rsa(RsaPublicKeyComponents {
            n: n.to_vec(),
            e: e.to_vec(),
        }))
    }
}

/// Whether `point` is a valid public point of `curve` (on the curve, not the identity).
///
/// `ring` checks a point only when it verifies, and then reports a bad key and a bad signature
/// alike, so a key could not be refused at load. Its ECDH validates the peer's point with the same
/// routine as its ECDSA verification (`parse_uncompressed_point`), so an agreement with a fresh
/// ephemeral key answers the question, once per key at load.
fn on_curve(curve: Curve, point: &[u8]) -> bool {
    use ring::agreement::{EphemeralPrivateKey, UnparsedPublicKey, agree_ephemeral};
    let rng = ring::rand::SystemRandom::new();
    EphemeralPrivateKey::generate(curve.agreement(), &rng).is_ok_and(|ours| {
        agree_ephemeral(
            ours,
            &UnparsedPublicKey::new(curve.agreement(), point),
            |_| (),
        )
        .is_ok()
    })
}

/// Whether `ring` will accept (`n`, `e`) (both without leading zeros) as an RSA public key: the
/// checks of its partial public-key validation, which it otherwise makes only when verifying and
/// reports as a failed signature. The modulus must be odd (its size is checked by the caller); the
/// exponent odd, at least 3 and below 2^33.
fn rsa_usable(n: &[u8], e: &[u8]) -> bool {
    let n_odd = n.last().is_some_and(|b| b & 1 == 1);
    let exponent = (e.len() <= 5).then(|| e.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)));
    n_odd && exponent.is_some_and(|e| e & 1 == 1 && (3..1 << 33).contains(&e))
}

/// A big-endian integer without its leading zero bytes (JWKs should have none; some do).
fn without_leading_zeros(mut big_endian: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = big_endian {
        big_endian = rest;
    }
    big_endian
}

fn bit_length(big_endian: &[u8]) -> usize {
    let significant = without_leading_zeros(big_endian);
    match significant.first() {
        Some(first) => (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_escape_tilde_then_slash() {
        assert_eq!(
            escape_pointer("https://ehr.example/~a"),
            "https:~1~1ehr.example~1~0a"
        );
    }

    #[test]
    fn trust_file_errors_are_std_errors_naming_the_file_and_pointer() {
        let err = Trust::from_json(r#"{"issuers": []}"#, "trust.json").unwrap_err();
        let diagnostic: &dyn Diagnostic = &err.problems[0];
        assert_eq!(diagnostic.code(), "wrong_type");
        assert_eq!(
            diagnostic.location(),
            Location::File {
                file: "trust.json",
                rule: None,
                pointer: "/issuers"
            }
        );
        let problem: &dyn std::error::Error = &err.problems[0];
        assert_eq!(
            problem.to_string(),
            "trust.json at /issuers: `issuers` is an array, expected an object"
        );
        let err: Box<dyn std::error::Error> = Box::new(err);
        assert_eq!(
            err.to_string(),
            "the trust file failed to load (1 error):\nerror: trust.json at /issuers: `issuers` is an array, expected an object\n"
        );
    }

    #[test]
    fn bit_length_ignores_leading_zero_bytes() {
        assert_eq!(bit_length(&[0, 0x80, 0]), 16);
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[0, 0]), 0);
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_one_token() {
        assert_eq!(bearer_token(Some("bearer a.b.c")).ok(), Some("a.b.c"));
        assert_eq!(bearer_token(Some("Bearer   a.b.c  ")).ok(), Some("a.b.c"));
        for bad in [
            "Basic a.b.c",
            "Bearer",
            "Bearer a.b.c d",
            "a.b.c",
            "Bearer ",
        ] {
            assert_eq!(
                bearer_token(Some(bad)).map_err(|e| e.code),
                Err("malformed_header"),
                "{bad:?}"
            );
        }
        assert_eq!(bearer_token(None).map_err(|e| e.code), Err("missing_token"));
    }

    #[test]
    fn hmac_and_none_are_refused_not_unknown() {
        assert!(matches!(parse_alg("HS384"), AlgVerdict::Refused(_)));
        assert!(matches!(parse_alg("none"), AlgVerdict::Refused(_)));
        assert!(matches!(parse_alg("NONE"), AlgVerdict::Refused(_)));
        assert!(matches!(parse_alg("EdDSA"), AlgVerdict::Unknown));
        assert!(matches!(
            parse_alg("ES384"),
            AlgVerdict::Accepted(Alg::Es384)
        ));
    }

    #[test]
    fn key_kinds_fit_only_their_algorithms() {
        assert!(KeyKind::Ec(Curve::P384).fits(Alg::Es384));
        assert!(!KeyKind::Ec(Curve::P384).fits(Alg::Es256));
        assert!(!KeyKind::Ec(Curve::P256).fits(Alg::Es384));
        assert!(!KeyKind::Ec(Curve::P384).fits(Alg::Rs384));
        assert!(KeyKind::Rsa.fits(Alg::Ps512));
        assert!(!KeyKind::Rsa.fits(Alg::Es384));
    }

    #[test]
    fn replay_cache_drops_expired_entries_and_refuses_when_full_of_live_ones() {
        let mut cache = ReplayCache::new(2);
        let now = 1_000;
        cache.record("iss", "a", now + 10, now).unwrap();
        cache.record("iss", "b", now + 500, now).unwrap();
        assert_eq!(
            cache.record("iss", "a", now + 10, now).unwrap_err().code,
            "replayed"
        );
        // Same jti from another issuer is a different token.
        assert_eq!(
            cache.record("other", "c", now + 10, now).unwrap_err().code,
            "replay_cache_full"
        );
        // `a` lives until exp + skew; one second before that it still holds its slot...
        let a_gone = now + 10 + CLOCK_SKEW_SECS;
        assert_eq!(
            cache
                .record("other", "c", now + 600, a_gone - 1)
                .unwrap_err()
                .code,
            "replay_cache_full"
        );
        // ...and at that second it is pruned, freeing room.
        cache.record("other", "c", now + 600, a_gone).unwrap();
        assert_eq!(cache.seen.len(), 2);
        assert!(!cache.seen.contains_key(&ReplayCache::key("iss", "a")));
        // The expiry index holds what is left: `b`, then `c`.
        assert_eq!(
            cache.by_expiry.keys().copied().collect::<Vec<_>>(),
            [now + 500 + CLOCK_SKEW_SECS, now + 600 + CLOCK_SKEW_SECS]
        );
        // The pair, not the concatenation, is the key.
        assert_ne!(ReplayCache::key("ab", "c"), ReplayCache::key("a", "bc"));
    }

    #[test]
    fn shown_strips_controls_and_backticks_and_shortens() {
        assert_eq!(shown("a`b\nc"), "abc");
        let long = "x".repeat(MAX_SHOWN_CHARS + 5);
        assert_eq!(shown(&long).len(), MAX_SHOWN_CHARS + 3);
    }
}
