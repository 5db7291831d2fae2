//! Signs CDS Hooks client JWTs for load tests: one ES384 token per line on standard output, each with
//! its own `jti`, valid for five minutes from now.
//!
//! ```sh
//! cargo run --release --example sign_tokens -- 10000 https://cds.test/cds-services/baclofen-order-sign
//! ```
//!
//! The key is the CDS Hooks specification's published example key
//! (`fixtures/cds_hooks/L1077-example-jwk-private.json`, issuer `https://fhir-ehr.example.com/`), which
//! `fixtures/cds_hooks/trust-example.json` trusts: for tests and benchmarks only.

use std::io::{BufWriter, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p384::ecdsa::signature::Signer;
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: sign_tokens COUNT AUDIENCE";
    let count: u64 = args.next().ok_or(usage)?.parse()?;
    let aud = args.next().ok_or(usage)?;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/cds_hooks/L1077-example-jwk-private.json"
    );
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let d = B64.decode(jwk["d"].as_str().ok_or("the key has no `d`")?)?;
    let key = p384::ecdsa::SigningKey::from_slice(&d)?;
    let since = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let now = since.as_secs();
    let header =
        B64.encode(json!({"alg": "ES384", "typ": "JWT", "kid": "example-kid"}).to_string());
    // Unique across runs, even two in the same second.
    let run = format!("{:x}-{:x}", since.as_nanos(), std::process::id());
    let mut out = BufWriter::new(std::io::stdout().lock());
    for i in 0..count {
        let claims = json!({"iss": "https://fhir-ehr.example.com/", "aud": aud, "iat": now,
            "exp": now + 300, "jti": format!("load-{run}-{i}")});
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let sig: p384::ecdsa::Signature = key.sign(input.as_bytes());
        writeln!(out, "{input}.{}", B64.encode(sig.to_bytes()))?;
    }
    out.flush()?;
    Ok(())
}
