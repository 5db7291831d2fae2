//! The CDS Hooks client-authentication check (`medscreen_cds::auth`) against the specification's own
//! example token and keys, and against tokens signed here with the specification's published
//! example private key (ES384), a test-only RSA key (every `RS*` and `PS*`) and a P-256 key (ES256).
//! Tokens are signed by implementations other than the verifier's `ring` (`p384`, `p256`, `rsa` and
//! `jsonwebtoken`'s pure-Rust backend), so a verification bug cannot cancel out.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use medscreen_cds::auth::{AuthError, CLOCK_SKEW_SECS, MAX_LIFETIME_SECS, Trust, Verified};
use serde_json::{Value, json};

const ISS: &str = "https://fhir-ehr.example.com/";
const RSA_ISS: &str = "https://rsa-ehr.example.org";
const AUD: &str = "https://cds.example.org/cds-services/some-service";
/// `exp` of the specification's example token.
const SPEC_EXP: u64 = 1_422_568_860;
/// A fixed "now" for tokens signed here.
const NOW: u64 = 1_750_000_000;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/cds_hooks")
        .join(name)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap()
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// The header value of `L1092`, without the `Authorization: ` name.
fn spec_header() -> String {
    fixture("L1092-example-complete-jwt.txt")
        .trim()
        .strip_prefix("Authorization: ")
        .unwrap()
        .to_owned()
}

/// The spec issuer with its published JWKS, and a second issuer with the test RSA key.
fn trust() -> Trust {
    let text = json!({"issuers": {
        ISS: fixture_json("L1059-example-jwks-public.json"),
        RSA_ISS: fixture_json("test-rsa-jwks-public.json"),
    }})
    .to_string();
    Trust::from_json(&text, "test-trust.json").unwrap()
}

fn b64_member(jwk: &Value, name: &str) -> Vec<u8> {
    B64.decode(jwk[name].as_str().unwrap()).unwrap()
}

/// The specification's published example private key (L1077).
fn spec_signing_key() -> p384::ecdsa::SigningKey {
    let jwk = fixture_json("L1077-example-jwk-private.json");
    p384::ecdsa::SigningKey::from_slice(&b64_member(&jwk, "d")).unwrap()
}

/// A P-384 key nobody trusts.
fn attacker_signing_key() -> p384::ecdsa::SigningKey {
    p384::ecdsa::SigningKey::from_slice(&[7u8; 48]).unwrap()
}

fn rsa_private_key() -> rsa::RsaPrivateKey {
    let jwk = fixture_json("test-rsa-private-jwk.json");
    let big = |name| rsa::BigUint::from_bytes_be(&b64_member(&jwk, name));
    rsa::RsaPrivateKey::from_components(big("n"), big("e"), big("d"), vec![big("p"), big("q")])
        .unwrap()
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

fn sign_es384(header: &Value, claims: &Value, key: &p384::ecdsa::SigningKey) -> String {
    use p384::ecdsa::signature::Signer;
    let input = signing_input(header, claims);
    let signature: p384::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

fn sign_rs384(header: &Value, claims: &Value) -> String {
    use rsa::signature::{SignatureEncoding, Signer};
    let input = signing_input(header, claims);
    let key = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha384>::new(rsa_private_key());
    format!(
        "{input}.{}",
        B64.encode(key.sign(input.as_bytes()).to_bytes())
    )
}

fn es_header() -> Value {
    json!({"alg": "ES384", "typ": "JWT", "kid": "example-kid"})
}

fn rs_header() -> Value {
    json!({"alg": "RS384", "typ": "JWT", "kid": "test-rsa-1"})
}

fn claims(jti: &str) -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "exp": NOW + 300,
        "iat": NOW,
        "jti": jti,
        "sub": "ehr-client",
        "tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
    })
}

fn with(mut value: Value, name: &str, member: Value) -> Value {
    value[name] = member;
    value
}

fn without(mut value: Value, name: &str) -> Value {
    value.as_object_mut().unwrap().remove(name);
    value
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn es_token(claims: &Value) -> String {
    sign_es384(&es_header(), claims, &spec_signing_key())
}

/// `check` (no replay insertion) of an ES384 token signed with the spec key.
fn check_es(claims: &Value) -> Result<Verified, AuthError> {
    trust().check(Some(&bearer(&es_token(claims))), AUD, NOW)
}

fn code<T: std::fmt::Debug>(result: Result<T, AuthError>) -> &'static str {
    result.unwrap_err().code
}

// --- The specification's example token -------------------------------------------------------------

#[test]
fn spec_token_signature_verifies_so_it_fails_only_as_expired() {
    let err = trust().verify(Some(&spec_header()), AUD, NOW).unwrap_err();
    assert_eq!(err.code, "expired");
    assert_eq!(
        err.message,
        format!("token expired at {SPEC_EXP} (now {NOW}, allowed clock skew 60 s)")
    );
}

#[test]
fn spec_token_is_accepted_before_its_exp_with_the_spec_claims() {
    let payload = fixture_json("L1046-example-jwt-payload.json");
    let verified = trust()
        .verify(Some(&spec_header()), AUD, SPEC_EXP - 1)
        .unwrap();
    assert_eq!(
        verified,
        Verified {
            iss: payload["iss"].as_str().unwrap().to_owned(),
            sub: None,
            jti: "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e".to_owned(),
            exp: SPEC_EXP,
            iat: Some(1_311_280_970),
            tenant: Some(payload["tenant"].as_str().unwrap().to_owned()),
            kid: Some("example-kid".to_owned()),
        }
    );
}

#[test]
fn spec_token_verifies_with_the_committed_trust_file() {
    let trust = Trust::from_file(&fixture_path("trust-example.json")).unwrap();
    assert_eq!(trust.issuers(), 1);
    assert_eq!(
        trust
            .check(Some(&spec_header()), AUD, SPEC_EXP)
            .unwrap()
            .jti,
        "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e"
    );
}

#[test]
fn spec_token_with_an_edited_claim_is_bad_signature_whatever_the_time() {
    let header = spec_header();
    let token = header.strip_prefix("Bearer ").unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(NOW + 300);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    let err = trust().check(Some(&bearer(&forged)), AUD, NOW).unwrap_err();
    assert_eq!(err.code, "bad_signature");
    assert_eq!(
        err.message,
        "token signature does not verify with key `example-kid` of issuer `https://fhir-ehr.example.com/`"
    );
}

#[test]
fn spec_header_names_a_jku_which_is_never_fetched() {
    let header = fixture_json("L1035-example-jwt-header.json");
    assert!(
        header["jku"].is_string(),
        "the fixture should carry a `jku`"
    );
    // Verification above succeeded offline against the trust file only; a token signed here with
    // the same `jku` does too.
    let verified = trust().check(
        Some(&bearer(&sign_es384(
            &header,
            &claims("jku-1"),
            &spec_signing_key(),
        ))),
        AUD,
        NOW,
    );
    assert_eq!(verified.unwrap().kid.as_deref(), Some("example-kid"));
}

// --- Tokens signed here with the spec key (ES384) ----------------------------------------------------

#[test]
fn es384_token_signed_with_the_spec_key_verifies() {
    let verified = check_es(&claims("es-1")).unwrap();
    assert_eq!(verified.iss, ISS);
    assert_eq!(verified.jti, "es-1");
    assert_eq!(verified.sub.as_deref(), Some("ehr-client"));
    assert_eq!(verified.exp, NOW + 300);
}

#[test]
fn a_token_is_accepted_once_then_replayed() {
    let trust = trust();
    let header = bearer(&es_token(&claims("once")));
    // `check` does not consume the jti.
    trust.check(Some(&header), AUD, NOW).unwrap();
    trust.check(Some(&header), AUD, NOW).unwrap();
    trust.verify(Some(&header), AUD, NOW).unwrap();
    for result in [
        trust.verify(Some(&header), AUD, NOW + 1),
        trust.check(Some(&header), AUD, NOW + 1),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.code, "replayed");
        assert_eq!(
            err.message,
            "token `jti` `once` from issuer `https://fhir-ehr.example.com/` was already used; each request needs a fresh token"
        );
    }
    // Another jti from the same issuer is a different token.
    trust
        .verify(Some(&bearer(&es_token(&claims("twice")))), AUD, NOW)
        .unwrap();
}

#[test]
fn concurrent_requests_with_one_token_let_exactly_one_through() {
    let trust = trust();
    let header = bearer(&es_token(&claims("race")));
    let accepted = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| trust.verify(Some(&header), AUD, NOW)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(Result::is_ok)
            .count()
    });
    assert_eq!(accepted, 1);
}

#[test]
fn a_signed_token_with_a_changed_claim_is_bad_signature() {
    let token = es_token(&claims("tamper"));
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = with(claims("tamper"), "sub", json!("someone-else"));
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(forged_claims.to_string()),
        parts[2]
    );
    assert_eq!(
        code(trust().check(Some(&bearer(&forged)), AUD, NOW)),
        "bad_signature"
    );
    // The untouched token still verifies, so the failure is the edit.
    trust().check(Some(&bearer(&token)), AUD, NOW).unwrap();
}

#[test]
fn expiry_allows_exactly_the_clock_skew() {
    let last_second = with(claims("exp-a"), "exp", json!(NOW - CLOCK_SKEW_SECS + 1));
    check_es(&last_second).unwrap();
    let err = check_es(&with(claims("exp-b"), "exp", json!(NOW - CLOCK_SKEW_SECS))).unwrap_err();
    assert_eq!(err.code, "expired");
    assert_eq!(
        err.message,
        format!(
            "token expired at {} (now {NOW}, allowed clock skew 60 s)",
            NOW - CLOCK_SKEW_SECS
        )
    );
}

#[test]
fn iat_and_nbf_may_be_ahead_by_the_skew_but_no_more() {
    for claim in ["iat", "nbf"] {
        check_es(&with(claims("t-ok"), claim, json!(NOW + CLOCK_SKEW_SECS))).unwrap();
        let err = check_es(&with(
            claims("t-bad"),
            claim,
            json!(NOW + CLOCK_SKEW_SECS + 1),
        ))
        .unwrap_err();
        assert_eq!(err.code, "not_yet_valid", "{claim}");
        assert_eq!(
            err.message,
            format!(
                "token `{claim}` {} is in the future (now {NOW}, allowed clock skew 60 s)",
                NOW + CLOCK_SKEW_SECS + 1
            )
        );
    }
    // `iat` is optional.
    check_es(&without(claims("no-iat"), "iat")).unwrap();
}

#[test]
fn audience_must_name_this_service() {
    let err = check_es(&with(
        claims("aud-1"),
        "aud",
        json!("https://cds.example.org/cds-services/other-service"),
    ))
    .unwrap_err();
    assert_eq!(err.code, "wrong_audience");
    assert_eq!(
        err.message,
        "token audience [`https://cds.example.org/cds-services/other-service`] does not include this service `https://cds.example.org/cds-services/some-service`"
    );
    // The discovery URL is a prefix of the service URL, not the service.
    assert_eq!(
        code(check_es(&with(
            claims("aud-2"),
            "aud",
            json!("https://cds.example.org/cds-services")
        ))),
        "wrong_audience"
    );
    assert_eq!(
        code(check_es(&with(
            claims("aud-3"),
            "aud",
            json!(["https://other.example/"])
        ))),
        "wrong_audience"
    );
    assert_eq!(
        code(check_es(&with(claims("aud-4"), "aud", json!(42)))),
        "invalid_claim"
    );
}

#[test]
fn audience_may_be_an_array_and_may_differ_by_a_trailing_slash() {
    check_es(&with(
        claims("arr"),
        "aud",
        json!(["https://other.example/", AUD]),
    ))
    .unwrap();
    check_es(&with(claims("slash"), "aud", json!(format!("{AUD}/")))).unwrap();
    let trust = trust();
    let token = es_token(&claims("slash-2"));
    trust
        .check(Some(&bearer(&token)), &format!("{AUD}/"), NOW)
        .unwrap();
}

#[test]
fn an_issuer_not_in_the_trust_file_is_refused() {
    let err = check_es(&with(
        claims("iss-1"),
        "iss",
        json!("https://evil.example/"),
    ))
    .unwrap_err();
    assert_eq!(err.code, "untrusted_issuer");
    assert_eq!(
        err.message,
        "issuer `https://evil.example/` is not in the trust file"
    );
    // Issuers are compared exactly, but the message points out a trailing-slash slip.
    let err = check_es(&with(
        claims("iss-2"),
        "iss",
        json!("https://fhir-ehr.example.com"),
    ))
    .unwrap_err();
    assert_eq!(err.code, "untrusted_issuer");
    assert_eq!(
        err.message,
        "issuer `https://fhir-ehr.example.com` is not in the trust file (it trusts `https://fhir-ehr.example.com/`; issuers are compared exactly)"
    );
}

#[test]
fn an_unknown_kid_is_refused() {
    let header = with(es_header(), "kid", json!("rotated-away"));
    let token = sign_es384(&header, &claims("kid-1"), &spec_signing_key());
    let err = trust().check(Some(&bearer(&token)), AUD, NOW).unwrap_err();
    assert_eq!(err.code, "unknown_key");
    assert_eq!(
        err.message,
        "issuer `https://fhir-ehr.example.com/` has no trusted key with `kid` `rotated-away`"
    );
}

#[test]
fn a_missing_kid_selects_the_issuers_only_key() {
    let token = sign_es384(
        &without(es_header(), "kid"),
        &claims("nokid"),
        &spec_signing_key(),
    );
    assert_eq!(
        trust()
            .check(Some(&bearer(&token)), AUD, NOW)
            .unwrap()
            .kid
            .as_deref(),
        Some("example-kid")
    );
}

#[test]
fn a_missing_kid_is_refused_when_the_issuer_has_several_keys() {
    let mut jwks = fixture_json("L1059-example-jwks-public.json");
    let mut second = jwks["keys"][0].clone();
    second["kid"] = json!("second-kid");
    jwks["keys"].as_array_mut().unwrap().push(second);
    let trust = Trust::from_json(&json!({"issuers": {ISS: jwks}}).to_string(), "two.json").unwrap();
    let token = sign_es384(
        &without(es_header(), "kid"),
        &claims("nokid"),
        &spec_signing_key(),
    );
    let err = trust.check(Some(&bearer(&token)), AUD, NOW).unwrap_err();
    assert_eq!(err.code, "unknown_key");
    assert_eq!(
        err.message,
        "token has no `kid` and issuer `https://fhir-ehr.example.com/` has 2 trusted keys"
    );
    // Naming either key works.
    let named = sign_es384(
        &with(es_header(), "kid", json!("second-kid")),
        &claims("named"),
        &spec_signing_key(),
    );
    trust.check(Some(&bearer(&named)), AUD, NOW).unwrap();
}

#[test]
fn alg_none_is_refused() {
    let header = json!({"alg": "none", "typ": "JWT", "kid": "example-kid"});
    let input = signing_input(&header, &claims("none"));
    for token in [format!("{input}."), format!("{input}.AAAA")] {
        let err = trust().check(Some(&bearer(&token)), AUD, NOW).unwrap_err();
        assert_eq!(err.code, "unsupported_alg");
        assert_eq!(
            err.message,
            "token `alg` `none` is refused: unsigned tokens are never accepted"
        );
    }
}

#[test]
fn hs384_keyed_with_the_public_key_is_refused() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let jwk = &fixture_json("L1059-example-jwks-public.json")["keys"][0];
    let mut point = vec![4u8];
    point.extend(b64_member(jwk, "x"));
    point.extend(b64_member(jwk, "y"));
    // The classic confusion: an HMAC whose "secret" is the verifier's public key, in two encodings.
    for secret in [point, jwk.to_string().into_bytes()] {
        let mut header = Header::new(Algorithm::HS384);
        header.kid = Some("example-kid".to_owned());
        let token = encode(&header, &claims("hs"), &EncodingKey::from_secret(&secret)).unwrap();
        let err = trust().check(Some(&bearer(&token)), AUD, NOW).unwrap_err();
        assert_eq!(err.code, "unsupported_alg");
        assert_eq!(
            err.message,
            "token `alg` `HS384` is refused: symmetric (hmac) algorithms are never accepted: cds hooks requires a public-key signature"
        );
    }
}

#[test]
fn an_unknown_alg_is_refused_with_the_accepted_list() {
    let header = json!({"alg": "ES512", "kid": "example-kid"});
    let token = format!("{}.AAAA", signing_input(&header, &claims("es512")));
    let err = trust().check(Some(&bearer(&token)), AUD, NOW).unwrap_err();
    assert_eq!(err.code, "unsupported_alg");
    assert_eq!(
        err.message,
        "token `alg` `ES512` is not supported; accepted: `ES256`, `ES384`, `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512`"
    );
}

#[test]
fn required_claims_are_required() {
    for claim in ["exp", "jti", "aud", "iss"] {
        let err = check_es(&without(claims("req"), claim)).unwrap_err();
        assert_eq!(err.code, "missing_claim", "{claim}");
        assert_eq!(err.message, format!("token has no `{claim}` claim"));
    }
    assert_eq!(
        code(check_es(&with(claims("x"), "exp", json!("tomorrow")))),
        "invalid_claim"
    );
    assert_eq!(
        code(check_es(&with(claims("x"), "jti", json!(12)))),
        "invalid_claim"
    );
}

#[test]
fn jku_or_x5u_pointing_anywhere_changes_nothing() {
    let header = with(
        with(
            es_header(),
            "jku",
            json!("https://attacker.example/jwks.json"),
        ),
        "x5u",
        json!("https://attacker.example/cert.pem"),
    );
    // Signed with the trusted key: verified against the trust file, no fetch.
    let good = sign_es384(&header, &claims("jku-ok"), &spec_signing_key());
    trust().check(Some(&bearer(&good)), AUD, NOW).unwrap();
    // Signed with the attacker's key, which the `jku` (and an embedded `jwk`) would vouch for.
    let attacker = attacker_signing_key();
    let point = attacker.verifying_key().to_encoded_point(false);
    let embedded = json!({"kty": "EC", "crv": "P-384",
        "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap())});
    let forged = sign_es384(
        &with(header, "jwk", embedded),
        &claims("jku-bad"),
        &attacker,
    );
    assert_eq!(
        code(trust().check(Some(&bearer(&forged)), AUD, NOW)),
        "bad_signature"
    );
}

#[test]
fn header_and_token_shape_errors() {
    let trust = trust();
    let err = trust.check(None, AUD, NOW).unwrap_err();
    assert_eq!(err.code, "missing_token");
    assert_eq!(
        err.message,
        "no `Authorization` header: this service requires a bearer jwt signed by a trusted cds client"
    );
    let token = es_token(&claims("shape"));
    assert_eq!(
        code(trust.check(Some(&format!("Basic {token}")), AUD, NOW)),
        "malformed_header"
    );
    assert_eq!(
        code(trust.check(Some(&token), AUD, NOW)),
        "malformed_header"
    );
    let two_parts = token.rsplit_once('.').unwrap().0;
    let err = trust.check(Some(&bearer(two_parts)), AUD, NOW).unwrap_err();
    assert_eq!(err.code, "malformed_token");
    assert_eq!(
        err.message,
        "the bearer token is not a compact jws (three base64url parts joined by `.`)"
    );
    assert_eq!(
        code(trust.check(Some(&bearer("e30!.e30.AAAA")), AUD, NOW)),
        "malformed_token"
    );
    let huge = format!("{}.e30.AAAA", "A".repeat(20_000));
    assert_eq!(
        code(trust.check(Some(&bearer(&huge)), AUD, NOW)),
        "malformed_token"
    );
    let crit = sign_es384(
        &with(es_header(), "crit", json!(["exp"])),
        &claims("crit"),
        &spec_signing_key(),
    );
    assert_eq!(
        code(trust.check(Some(&bearer(&crit)), AUD, NOW)),
        "malformed_token"
    );
}

#[test]
fn messages_never_contain_the_token() {
    let trust = trust();
    let cases = [
        with(claims("m1"), "aud", json!("https://elsewhere.example/")),
        with(claims("m2"), "exp", json!(1)),
        with(claims("m3"), "iss", json!("https://evil.example/")),
    ];
    for case in cases {
        let token = es_token(&case);
        let err = trust.check(Some(&bearer(&token)), AUD, NOW).unwrap_err();
        for part in token.split('.') {
            assert!(!err.message.contains(part), "{}", err.message);
        }
    }
}

// --- RSA ---------------------------------------------------------------------------------------------

fn rsa_claims(jti: &str) -> Value {
    with(claims(jti), "iss", json!(RSA_ISS))
}

#[test]
fn rs384_token_signed_with_the_test_rsa_key_verifies() {
    let token = sign_rs384(&rs_header(), &rsa_claims("rs-1"));
    let verified = trust().check(Some(&bearer(&token)), AUD, NOW).unwrap();
    assert_eq!(verified.iss, RSA_ISS);
    assert_eq!(verified.kid.as_deref(), Some("test-rsa-1"));
    // The same signature over edited claims fails.
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(with(rsa_claims("rs-1"), "jti", json!("rs-2")).to_string()),
        parts[2]
    );
    assert_eq!(
        code(trust().check(Some(&bearer(&forged)), AUD, NOW)),
        "bad_signature"
    );
}

#[test]
fn ps384_verifies_with_an_rsa_key_that_does_not_pin_alg() {
    let token = sign_rsa_elsewhere(jsonwebtoken::Algorithm::PS384, &rsa_claims("ps-1"));
    unpinned_rsa_trust()
        .check(Some(&bearer(&token)), AUD, NOW)
        .unwrap();
}

#[test]
fn an_algorithm_that_does_not_fit_the_key_is_refused() {
    // RS384 naming the EC key.
    let token = sign_rs384(
        &with(rs_header(), "kid", json!("example-kid")),
        &claims("mismatch-1"),
    );
    let err = trust().check(Some(&bearer(&token)), AUD, NOW).unwrap_err();
    assert_eq!(err.code, "key_alg_mismatch");
    assert_eq!(
        err.message,
        "token `alg` `RS384` does not fit key `example-kid` of issuer `https://fhir-ehr.example.com/`: it is an `EC` `P-384` key, which verifies `ES384` only"
    );
    // ES384 naming the RSA key.
    let token = sign_es384(
        &with(es_header(), "kid", json!("test-rsa-1")),
        &rsa_claims("mismatch-2"),
        &spec_signing_key(),
    );
    assert_eq!(
        code(trust().check(Some(&bearer(&token)), AUD, NOW)),
        "key_alg_mismatch"
    );
    // RS256 with the RSA key that pins RS384.
    let header = json!({"alg": "RS256", "kid": "test-rsa-1"});
    let token = format!("{}.AAAA", signing_input(&header, &rsa_claims("mismatch-3")));
    let err = trust().check(Some(&bearer(&token)), AUD, NOW).unwrap_err();
    assert_eq!(err.code, "key_alg_mismatch");
    assert_eq!(
        err.message,
        "token `alg` `RS256` does not match `alg` `RS384` of key `test-rsa-1` of issuer `https://rsa-ehr.example.org`"
    );
}

// --- The trust file ----------------------------------------------------------------------------------

fn load_err(trust_file: &Value) -> Vec<(String, String, String)> {
    Trust::from_json(&trust_file.to_string(), "trust.json")
        .unwrap_err()
        .problems
        .into_iter()
        .map(|p| (p.code.to_owned(), p.pointer, p.message))
        .collect()
}

fn spec_key() -> Value {
    fixture_json("L1059-example-jwks-public.json")["keys"][0].clone()
}

fn one_key(key: Value) -> Value {
    json!({"issuers": {ISS: {"keys": [key]}}})
}

const KEY0: &str = "/issuers/https:~1~1fhir-ehr.example.com~1/keys/0";

#[test]
fn a_private_key_in_the_trust_file_is_refused() {
    let err = Trust::from_json(
        &one_key(fixture_json("L1077-example-jwk-private.json")).to_string(),
        "trust.json",
    )
    .unwrap_err();
    assert_eq!(err.problems.len(), 1);
    let p = &err.problems[0];
    assert_eq!(p.code, "private_key");
    assert_eq!(p.pointer, format!("{KEY0}/d"));
    assert_eq!(
        p.to_string(),
        format!(
            "trust.json at {KEY0}/d: private key member `d` present; a trust file must hold public keys only\n  help: keep only the public members; a private key that was shared should be rotated"
        )
    );
    let rsa_private = fixture_json("test-rsa-private-jwk.json");
    assert_eq!(
        load_err(&one_key(rsa_private)),
        [(
            "private_key".to_owned(),
            format!("{KEY0}/d"),
            "private key members `d`, `p`, `q`, `dp`, `dq`, `qi` present; a trust file must hold public keys only"
                .to_owned()
        )]
    );
}

#[test]
fn a_symmetric_key_in_the_trust_file_is_refused() {
    let oct = json!({"kty": "oct", "kid": "shared", "k": "c2VjcmV0", "alg": "HS384"});
    assert_eq!(
        load_err(&one_key(oct)),
        [(
            "symmetric_key".to_owned(),
            format!("{KEY0}/kty"),
            "symmetric key (`kty` `oct`) refused: a shared secret cannot identify a cds client, and hmac tokens are never accepted".to_owned()
        )]
    );
}

#[test]
fn a_trust_file_that_is_not_json_is_refused() {
    let err = Trust::from_json("{\"issuers\": {", "trust.json").unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].code, "invalid_json");
    assert_eq!(
        err.problems[0].to_string(),
        "trust.json: the trust file is not json: EOF while parsing an object at line 1 column 13"
    );
}

#[test]
fn a_missing_trust_file_is_an_io_error_naming_it() {
    let path = fixture_path("no-such-trust.json");
    let err = Trust::from_file(&path).unwrap_err();
    assert_eq!(err.problems[0].code, "io");
    assert_eq!(err.problems[0].file, path.display().to_string());
}

#[test]
fn trust_file_structure_errors_are_located() {
    assert_eq!(
        load_err(&json!({"issuers": {}})),
        [(
            "no_issuers".to_owned(),
            "/issuers".to_owned(),
            "`issuers` is empty, so no cds client could call the service".to_owned()
        )]
    );
    let err = Trust::from_json(&json!({"issuer": {}}).to_string(), "trust.json").unwrap_err();
    let codes: Vec<_> = err.problems.iter().map(|p| p.code).collect();
    assert_eq!(codes, ["unknown_member", "missing_member"]);
    assert_eq!(
        err.problems[0].help.as_deref(),
        Some("did you mean `issuers`?")
    );
    assert_eq!(
        load_err(&json!({"issuers": {ISS: {"keys": []}}})),
        [(
            "no_keys".to_owned(),
            "/issuers/https:~1~1fhir-ehr.example.com~1/keys".to_owned(),
            "`keys` is empty, so no token from this issuer could verify".to_owned()
        )]
    );
}

#[test]
fn trust_file_key_errors_are_located_and_all_reported() {
    let second = with(spec_key(), "kid", json!("other"));
    let no_kid = without(spec_key(), "kid");
    assert_eq!(
        load_err(&json!({"issuers": {ISS: {"keys": [no_kid, second]}}})),
        [(
            "missing_kid".to_owned(),
            KEY0.to_owned(),
            "key has no `kid`, but the issuer has 2 keys, so tokens could not name it".to_owned()
        )]
    );
    let dup = json!({"issuers": {ISS: {"keys": [spec_key(), spec_key()]}}});
    assert_eq!(load_err(&dup)[0].0, "duplicate_kid");

    let err = Trust::from_json(
        &one_key(with(spec_key(), "kty", json!("ECC"))).to_string(),
        "trust.json",
    )
    .unwrap_err();
    assert_eq!(err.problems[0].code, "unknown_kty");
    assert_eq!(err.problems[0].message, "unknown `kty` `ECC`");
    assert_eq!(err.problems[0].help.as_deref(), Some("did you mean `EC`?"));

    let hs = load_err(&one_key(with(spec_key(), "alg", json!("HS256"))));
    assert_eq!(hs[0].0, "unsupported_alg");
    assert_eq!(hs[0].1, format!("{KEY0}/alg"));

    let rs_on_ec = load_err(&one_key(with(spec_key(), "alg", json!("RS384"))));
    assert_eq!(
        rs_on_ec,
        [(
            "key_alg_mismatch".to_owned(),
            format!("{KEY0}/alg"),
            "`alg` `RS384` does not fit this key: it is an `EC` `P-384` key, which verifies `ES384` only"
                .to_owned()
        )]
    );

    // A point off the curve: flip the last byte of `y`.
    let mut y = b64_member(&spec_key(), "y");
    *y.last_mut().unwrap() ^= 1;
    let off_curve = load_err(&one_key(with(spec_key(), "y", json!(B64.encode(y)))));
    assert_eq!(
        off_curve,
        [(
            "invalid_key".to_owned(),
            KEY0.to_owned(),
            "(`x`, `y`) is not a point on `P-384`".to_owned()
        )]
    );

    let weak = json!({"kty": "RSA", "kid": "weak", "n": B64.encode([0xc5u8; 128]), "e": "AQAB"});
    assert_eq!(
        load_err(&one_key(weak)),
        [(
            "weak_key".to_owned(),
            format!("{KEY0}/n"),
            "the rsa modulus is 1024 bits; at least 2048 are required".to_owned()
        )]
    );

    // Every problem in the file is reported, not just the first.
    let many = json!({"issuers": {
        ISS: {"keys": [fixture_json("L1077-example-jwk-private.json")]},
        "https://other.example": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
    }});
    let mut codes: Vec<_> = load_err(&many).into_iter().map(|p| p.0).collect();
    codes.sort();
    assert_eq!(codes, ["private_key", "symmetric_key"]);
}

#[test]
fn trust_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Trust>();
    assert_send_sync::<AuthError>();
}

#[test]
fn tokens_living_longer_than_five_minutes_are_refused() {
    let trust = trust();
    let limit = NOW + MAX_LIFETIME_SECS + CLOCK_SKEW_SECS;
    let ok = sign_es384(
        &es_header(),
        &with(claims("t-life-1"), "exp", json!(limit)),
        &spec_signing_key(),
    );
    trust
        .check(Some(&format!("Bearer {ok}")), AUD, NOW)
        .unwrap();
    let long = sign_es384(
        &es_header(),
        &with(claims("t-life-2"), "exp", json!(limit + 1)),
        &spec_signing_key(),
    );
    let e = trust
        .check(Some(&format!("Bearer {long}")), AUD, NOW)
        .unwrap_err();
    assert_eq!(e.code, "lifetime_too_long", "{e}");
}

// --- Every accepted algorithm, verified by `ring`, signed by independent implementations ------------

/// The RSA issuer's JWK Set without its pinned `alg`, so that every `RS*` and `PS*` fits the key.
fn unpinned_rsa_trust() -> Trust {
    let mut jwks = fixture_json("test-rsa-jwks-public.json");
    jwks["keys"][0].as_object_mut().unwrap().remove("alg");
    Trust::from_json(&json!({"issuers": {RSA_ISS: jwks}}).to_string(), "rsa.json").unwrap()
}

/// A token signed by `jsonwebtoken`'s pure-Rust backend (the `rsa` crate), not by `ring`.
fn sign_rsa_elsewhere(alg: jsonwebtoken::Algorithm, claims: &Value) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let der = rsa_private_key().to_pkcs1_der().unwrap();
    let mut header = Header::new(alg);
    header.kid = Some("test-rsa-1".to_owned());
    encode(&header, claims, &EncodingKey::from_rsa_der(der.as_bytes())).unwrap()
}

/// The token with one bit of its signature flipped.
fn with_flipped_signature_bit(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut signature = B64.decode(signature).unwrap();
    let middle = signature.len() / 2;
    signature[middle] ^= 1;
    format!("{input}.{}", B64.encode(signature))
}

#[test]
fn every_rsa_algorithm_verifies_and_a_flipped_signature_bit_is_bad_signature() {
    use jsonwebtoken::Algorithm::{PS256, PS384, PS512, RS256, RS384, RS512};
    let trust = unpinned_rsa_trust();
    for alg in [RS256, RS384, RS512, PS256, PS384, PS512] {
        let token = sign_rsa_elsewhere(alg, &rsa_claims(&format!("{alg:?}")));
        let verified = trust
            .check(Some(&bearer(&token)), AUD, NOW)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(verified.kid.as_deref(), Some("test-rsa-1"), "{alg:?}");
        let forged = with_flipped_signature_bit(&token);
        assert_eq!(
            code(trust.check(Some(&bearer(&forged)), AUD, NOW)),
            "bad_signature",
            "{alg:?}"
        );
    }
}

#[test]
fn a_pkcs1_signature_under_a_pss_header_is_bad_signature() {
    let header = json!({"alg": "PS384", "typ": "JWT", "kid": "test-rsa-1"});
    let token = sign_rs384(&header, &rsa_claims("pss-confusion"));
    assert_eq!(
        code(unpinned_rsa_trust().check(Some(&bearer(&token)), AUD, NOW)),
        "bad_signature"
    );
}

#[test]
fn an_rsa_modulus_with_a_leading_zero_byte_still_verifies() {
    let mut jwks = fixture_json("test-rsa-jwks-public.json");
    let mut n = b64_member(&jwks["keys"][0], "n");
    n.insert(0, 0);
    jwks["keys"][0]["n"] = json!(B64.encode(n));
    let trust = Trust::from_json(
        &json!({"issuers": {RSA_ISS: jwks}}).to_string(),
        "zero.json",
    )
    .unwrap();
    let token = sign_rs384(&rs_header(), &rsa_claims("leading-zero"));
    trust.check(Some(&bearer(&token)), AUD, NOW).unwrap();
}

#[test]
fn an_rsa_key_the_verifier_cannot_use_is_refused_at_load_not_at_the_first_token() {
    let public = fixture_json("test-rsa-jwks-public.json")["keys"][0].clone();
    let mut even_n = b64_member(&public, "n");
    *even_n.last_mut().unwrap() &= !1;
    let too_big_e = B64.encode([2u8, 0, 0, 0, 1]);
    for (what, key) in [
        (
            "even exponent",
            with(public.clone(), "e", json!(B64.encode([2u8]))),
        ),
        (
            "exponent 1",
            with(public.clone(), "e", json!(B64.encode([1u8]))),
        ),
        (
            "exponent of 2^33 + 1",
            with(public.clone(), "e", json!(too_big_e)),
        ),
        (
            "even modulus",
            with(public.clone(), "n", json!(B64.encode(&even_n))),
        ),
    ] {
        assert_eq!(
            load_err(&one_key(key)),
            [(
                "invalid_key".to_owned(),
                KEY0.to_owned(),
                "(`n`, `e`) is not a usable rsa public key".to_owned()
            )],
            "{what}"
        );
    }
}

/// A P-256 key, its public JWK (`kid` `p256`) and an ES256 token it signed (by the `p256` crate).
fn p256_key_and_token(jti: &str) -> (Value, String) {
    use p256::ecdsa::signature::Signer;
    let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "p256", "use": "sig",
        "x": B64.encode(point.x().unwrap()), "y": B64.encode(point.y().unwrap())});
    let input = signing_input(
        &json!({"alg": "ES256", "typ": "JWT", "kid": "p256"}),
        &claims(jti),
    );
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    (jwk, format!("{input}.{}", B64.encode(signature.to_bytes())))
}

#[test]
fn es256_verifies_with_a_p256_key_and_only_with_it() {
    let (jwk, token) = p256_key_and_token("es256-1");
    let trust = Trust::from_json(&one_key(jwk.clone()).to_string(), "p256.json").unwrap();
    let verified = trust.check(Some(&bearer(&token)), AUD, NOW).unwrap();
    assert_eq!(verified.kid.as_deref(), Some("p256"));
    assert_eq!(
        code(trust.check(Some(&bearer(&with_flipped_signature_bit(&token))), AUD, NOW)),
        "bad_signature"
    );
    // An ES384 token naming the P-256 key.
    let es384 = sign_es384(
        &with(es_header(), "kid", json!("p256")),
        &claims("es256-2"),
        &spec_signing_key(),
    );
    assert_eq!(
        code(trust.check(Some(&bearer(&es384)), AUD, NOW)),
        "key_alg_mismatch"
    );
    // A P-256 point off the curve is refused at load.
    let mut y = b64_member(&jwk, "y");
    *y.last_mut().unwrap() ^= 1;
    assert_eq!(
        load_err(&one_key(with(jwk, "y", json!(B64.encode(y))))),
        [(
            "invalid_key".to_owned(),
            KEY0.to_owned(),
            "(`x`, `y`) is not a point on `P-256`".to_owned()
        )]
    );
}
