//! Criterion benches of the CDS Hooks service without HTTP: what one hook call costs in process, on the
//! load-test fixtures of `benches/cds_load.sh` (`fixtures/cds_hooks/load/`), and what verifying one
//! client JWT costs (not in the loopback numbers, which run with `--insecure-no-auth`).
//!
//! Groups: `cds_prepare` (parse and check the request, find the baclofen order), `cds_cards` (map the
//! prefetch, screen, write the cards), `cds_request` (both plus the JSON response body, as the handler
//! does), `cds_discovery` (the discovery body, the loopback baseline's work) and `cds_auth`
//! (`Trust::check` of one ES384 and one RS384 token: every check `Trust::verify` makes except inserting
//! the `jti` into the replay cache, so that one token can be checked repeatedly).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a bench stops loudly on a broken fixture"
)]

use std::hint::black_box;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use medscreen_cds::auth::Trust;
use medscreen_cds::service::{Pending, Step};
use medscreen_cds::{Cds, CdsOptions};
use medscreen_core::Engine;
use medscreen_fhir::ValueSets;
use medscreen_fhir::date::Date;
use serde_json::{Value, json};

fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The load fixtures, the baclofen one with its eGFR dated today (as `cds_load.sh` does) so that it
/// stays inside the default 365-day lookback.
fn requests() -> (Vec<u8>, Vec<u8>) {
    let no = fixture("fixtures/cds_hooks/load/no-baclofen.json");
    let mut bac: Value =
        serde_json::from_slice(&fixture("fixtures/cds_hooks/load/baclofen-prefetch.json"))
            .expect("baclofen-prefetch.json is JSON");
    let today = format!("{}T00:00:00+00:00", Date::today());
    let egfr = &mut bac["prefetch"]["egfr"]["entry"][0]["resource"];
    egfr["effectiveDateTime"] = json!(today);
    egfr["issued"] = json!(today);
    (no, serde_json::to_vec_pretty(&bac).expect("serialize"))
}

fn cds() -> Cds {
    Cds::new(
        Engine::embedded().expect("embedded pack"),
        ValueSets::embedded().expect("embedded value sets"),
        CdsOptions::default(),
    )
    .expect("the embedded value sets fit the embedded pack")
}

fn pending(cds: &Cds, body: &[u8]) -> Box<Pending> {
    match cds.prepare(body).expect("valid request").step {
        Step::Screen(p) => p,
        Step::NoCards => panic!("the baclofen fixture must be screened"),
    }
}

/// What the handler does for one request after reading the body: the response body's bytes.
fn handle(cds: &Cds, body: &[u8]) -> Vec<u8> {
    let prepared = cds.prepare(body).expect("valid request");
    match prepared.step {
        Step::NoCards => serde_json::to_vec(&json!({"cards": []})),
        Step::Screen(p) => serde_json::to_vec(&json!({"cards": cds.cards(&p, &[])})),
    }
    .expect("serialize")
}

fn bench_service(c: &mut Criterion) {
    let cds = cds();
    let (no, bac) = requests();
    assert!(matches!(cds.prepare(&no).unwrap().step, Step::NoCards));
    assert_eq!(cds.cards(&pending(&cds, &bac), &[]).len(), 7);

    let mut g = c.benchmark_group("cds_prepare");
    g.throughput(Throughput::Bytes(no.len() as u64));
    g.bench_function("no_baclofen", |b| {
        b.iter(|| cds.prepare(black_box(&no)).unwrap())
    });
    g.throughput(Throughput::Bytes(bac.len() as u64));
    g.bench_function("baclofen_prefetch", |b| {
        b.iter(|| cds.prepare(black_box(&bac)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("cds_cards");
    let p = pending(&cds, &bac);
    g.bench_function("baclofen_prefetch", |b| {
        b.iter(|| cds.cards(black_box(&p), &[]))
    });
    g.finish();

    let mut g = c.benchmark_group("cds_request");
    g.bench_function("no_baclofen", |b| b.iter(|| handle(&cds, black_box(&no))));
    g.bench_function("baclofen_prefetch", |b| {
        b.iter(|| handle(&cds, black_box(&bac)))
    });
    g.finish();

    let mut g = c.benchmark_group("cds_discovery");
    g.bench_function("document", |b| {
        b.iter(|| serde_json::to_vec(&black_box(&cds).discovery()).unwrap())
    });
    g.finish();
}

/// The issuer and key of the CDS Hooks specification's example (`fixtures/cds_hooks/L1059`, `L1077`).
const ISS: &str = "https://fhir-ehr.example.com/";
/// The issuer of the test-only RSA key (`fixtures/cds_hooks/test-rsa-*.json`).
const RSA_ISS: &str = "https://rsa-ehr.example.org";
const AUD: &str = "https://cds.example.org/cds-services/baclofen-order-sign";
const NOW: u64 = 1_750_000_000;

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("fixtures/cds_hooks/{name}"))).expect("JSON fixture")
}

fn b64_member(jwk: &Value, name: &str) -> Vec<u8> {
    B64.decode(jwk[name].as_str().expect("JWK member"))
        .expect("base64url JWK member")
}

/// `header.claims`, base64url-encoded, for `iss`.
fn signing_input(alg: &str, kid: &str, iss: &str) -> String {
    let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
    let claims = json!({
        "iss": iss,
        "aud": AUD,
        "exp": NOW + 300,
        "iat": NOW,
        "jti": "bench-jti-1",
        "sub": "ehr-client",
        "tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
    });
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

/// An ES384 token signed with the specification's example key, as an `Authorization` value.
fn es384_header() -> String {
    use p384::ecdsa::signature::Signer;
    let jwk = fixture_json("L1077-example-jwk-private.json");
    let key = p384::ecdsa::SigningKey::from_slice(&b64_member(&jwk, "d")).expect("P-384 key");
    let input = signing_input("ES384", "example-kid", ISS);
    let signature: p384::ecdsa::Signature = key.sign(input.as_bytes());
    format!("Bearer {input}.{}", B64.encode(signature.to_bytes()))
}

/// An RS384 token signed with the test-only RSA key (`test-rsa-private-jwk.json`).
fn rs384_header() -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let jwk = fixture_json("test-rsa-private-jwk.json");
    let big = |name| rsa::BigUint::from_bytes_be(&b64_member(&jwk, name));
    let private =
        rsa::RsaPrivateKey::from_components(big("n"), big("e"), big("d"), vec![big("p"), big("q")])
            .expect("RSA key");
    let key = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha384>::new(private);
    let input = signing_input("RS384", "test-rsa-1", RSA_ISS);
    format!(
        "Bearer {input}.{}",
        B64.encode(key.sign(input.as_bytes()).to_bytes())
    )
}

fn bench_auth(c: &mut Criterion) {
    let text = json!({"issuers": {
        ISS: fixture_json("L1059-example-jwks-public.json"),
        RSA_ISS: fixture_json("test-rsa-jwks-public.json"),
    }})
    .to_string();
    let trust = Trust::from_json(&text, "bench-trust.json").expect("trust");
    let es = es384_header();
    let rs = rs384_header();
    for h in [&es, &rs] {
        trust.check(Some(h), AUD, NOW).expect("token verifies");
    }
    let mut g = c.benchmark_group("cds_auth");
    g.bench_function("es384_check", |b| {
        b.iter(|| trust.check(Some(black_box(&es)), AUD, NOW).unwrap())
    });
    g.bench_function("rs384_check", |b| {
        b.iter(|| trust.check(Some(black_box(&rs)), AUD, NOW).unwrap())
    });
    // The bare ES384 signature check (p384 crate), to tell the curve arithmetic from the rest.
    let (input, sig) = es
        .trim_start_matches("Bearer ")
        .rsplit_once('.')
        .expect("JWS");
    let sig =
        p384::ecdsa::Signature::from_slice(&B64.decode(sig).expect("base64url")).expect("sig");
    let jwk = fixture_json("L1077-example-jwk-private.json");
    let key = *p384::ecdsa::SigningKey::from_slice(&b64_member(&jwk, "d"))
        .expect("P-384 key")
        .verifying_key();
    g.bench_function("es384_signature_only", |b| {
        use p384::ecdsa::signature::Verifier;
        b.iter(|| key.verify(black_box(input.as_bytes()), &sig).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench_service, bench_auth);
criterion_main!(benches);
