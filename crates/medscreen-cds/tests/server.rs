//! The CDS Hooks service over real HTTP on an ephemeral loopback port: discovery, the specification's
//! and the hook library's examples, real opioid-guideline requests replayed with a baclofen order, STU3
//! requests, authentication, missing prefetch fetched from a FHIR server started here, feedback, limits
//! and many requests at once.

#![allow(clippy::restriction, reason = "a test fails by panicking")]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use medscreen_cds::auth::Trust;
use medscreen_cds::server::{self, App, Auth, Config};
use medscreen_cds::{Catalog, CatalogError, Cds, CdsOptions};
use medscreen_core::Engine;
use medscreen_fhir::ValueSets;
use serde_json::{Value, json};

const ISS: &str = "https://fhir-ehr.example.com/";
const BACLOFEN: &str = "197391";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/cds_hooks")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn external(rel: &str) -> PathBuf {
    fixtures().join("external").join(rel)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

struct Options {
    auth: Option<Trust>,
    feedback_log: Option<PathBuf>,
    body_limit: usize,
    max_concurrent: usize,
    min: medscreen_core::Severity,
    public_url: Option<String>,
    request_timeout: Duration,
    fetch_timeout: Duration,
    body_timeout: Duration,
    body_budget: usize,
    /// The embedded packs to offer, each by its own `Cds`; `None`: one `Cds` over the default pack,
    /// as a library user with one pack builds it.
    packs: Option<Vec<&'static str>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            auth: None,
            feedback_log: None,
            body_limit: 5 << 20,
            max_concurrent: 64,
            min: medscreen_core::Severity::Warning,
            public_url: None,
            request_timeout: Duration::from_secs(20),
            fetch_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            body_budget: 96 << 20,
            packs: None,
        }
    }
}

/// Start a server on `127.0.0.1:0`; its base URL.
async fn start(o: Options) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = CdsOptions {
        min_card_severity: o.min,
        lookback_days: 365,
    };
    let catalog = match &o.packs {
        None => Catalog::from(
            Cds::new(
                Engine::embedded().unwrap(),
                ValueSets::embedded().unwrap(),
                opts,
            )
            .unwrap(),
        ),
        Some(names) => Catalog::new(names.iter().map(|n| pack_cds(n, opts)).collect()).unwrap(),
    };
    let public_url = o
        .public_url
        .unwrap_or_else(|| server::default_public_url(addr));
    let cfg =
        Config {
            public_url,
            auth: o.auth.map_or(Auth::Insecure, Auth::Trust),
            feedback_log: Some(o.feedback_log.unwrap_or_else(|| {
                std::env::temp_dir().join("medscreen-test-feedback-discard.jsonl")
            })),
            body_limit: o.body_limit,
            body_timeout: o.body_timeout,
            body_budget: o.body_budget,
            request_timeout: o.request_timeout,
            fetch_timeout: o.fetch_timeout,
            max_concurrent: o.max_concurrent,
            access_log: false,
        };
    let app = Arc::new(App::new(catalog, cfg).unwrap());
    tokio::spawn(server::serve(listener, app, std::future::pending()));
    format!("http://{addr}")
}

/// The service of embedded pack `name`: its engine screening with that pack alone, its value sets.
fn pack_cds(name: &str, opts: CdsOptions) -> Cds {
    Cds::new(
        Engine::embedded_pack(name).unwrap(),
        ValueSets::embedded_for(name).unwrap(),
        opts,
    )
    .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(base: &str, path: &str, body: &Value) -> (u16, Value) {
    post_raw(base, path, body.to_string().into_bytes(), None).await
}

async fn post_raw(base: &str, path: &str, body: Vec<u8>, bearer: Option<&str>) -> (u16, Value) {
    let mut req = client()
        .post(format!("{base}{path}"))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(t) = bearer {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: status {status}, body is not JSON: {text}"));
    (status, v)
}

fn rxnorm(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}]})
}

/// Change the first draft MedicationRequest of a request to baclofen 10 mg tablets; its reference.
fn make_baclofen(request: &mut Value) -> Option<String> {
    let entries = request["context"]["draftOrders"]["entry"].as_array_mut()?;
    for e in entries {
        let r = &mut e["resource"];
        if r["resourceType"] == "MedicationRequest" {
            r["medicationCodeableConcept"] = rxnorm(BACLOFEN, "baclofen 10 MG Oral Tablet");
            return Some(format!(
                "MedicationRequest/{}",
                r["id"].as_str().unwrap_or("")
            ));
        }
    }
    None
}

fn rules_of(cards: &Value) -> Vec<String> {
    cards["cards"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["source"]["topic"]["code"].as_str().map(str::to_owned))
        .collect()
}

/// Every card has the members the spec requires, with our limits.
fn check_cards(body: &Value, seen: &mut HashSet<String>) {
    for c in body["cards"].as_array().unwrap() {
        let uuid = c["uuid"].as_str().unwrap();
        assert_eq!(uuid.len(), 36, "{c}");
        assert!(seen.insert(uuid.to_owned()), "uuid {uuid} repeated");
        let summary = c["summary"].as_str().unwrap();
        assert!(
            !summary.is_empty() && summary.chars().count() < 140,
            "{summary}"
        );
        assert!(
            ["info", "warning", "critical"].contains(&c["indicator"].as_str().unwrap()),
            "{c}"
        );
        assert!(!c["source"]["label"].as_str().unwrap().is_empty());
        assert!(!c["detail"].as_str().unwrap().is_empty());
        if c.get("suggestions").is_some() {
            assert_eq!(c["selectionBehavior"], "at-most-one");
        }
    }
}

/// A minimal order-sign request with our prefetch keys.
fn order_sign(patient: Value, drafts: Vec<Value>, prefetch_extra: Value) -> Value {
    let mut prefetch = json!({
        "patient": patient,
        "conditions": null,
        "medicationRequests": null,
        "medicationStatements": null,
        "egfr": null,
        "pregnancy": null,
        "breastfeeding": null,
    });
    for (k, v) in prefetch_extra.as_object().unwrap() {
        prefetch[k] = v.clone();
    }
    json!({
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/example",
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "type": "collection",
                "entry": drafts.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()},
        },
        "prefetch": prefetch,
    })
}

fn patient(birth: &str, gender: &str) -> Value {
    json!({"resourceType": "Patient", "id": "p1", "birthDate": birth, "gender": gender})
}

fn baclofen_draft(id: &str) -> Value {
    json!({"resourceType": "MedicationRequest", "id": id, "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": rxnorm(BACLOFEN, "baclofen 10 MG Oral Tablet"),
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}]})
}

fn searchset(resources: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "searchset",
        "entry": resources.into_iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
}

fn condition(id: &str, snomed: &str, display: &str) -> Value {
    json!({"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/p1"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": snomed, "display": display}]}})
}

fn active_med(id: &str, code: &str, display: &str) -> Value {
    json!({"resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": rxnorm(code, display)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_three_services_with_prefetch_from_the_pack() {
    let base = start(Options::default()).await;
    let resp = client()
        .get(format!("{base}/cds-services"))
        .header("Origin", "https://ehr.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert!(
        !resp
            .headers()
            .contains_key("access-control-allow-credentials")
    );
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    let services = v["services"].as_array().unwrap();
    let hooks: Vec<&str> = services
        .iter()
        .map(|s| s["hook"].as_str().unwrap())
        .collect();
    assert_eq!(
        hooks,
        ["order-select", "order-sign", "medication-prescribe"]
    );
    for s in services {
        assert!(s["id"].as_str().unwrap().starts_with("baclofen-"));
        assert!(!s["title"].as_str().unwrap().is_empty());
        assert!(!s["description"].as_str().unwrap().is_empty());
        let prefetch = s["prefetch"].as_object().unwrap();
        assert_eq!(prefetch["patient"], "Patient/{{context.patientId}}");
        assert!(
            prefetch["conditions"]
                .as_str()
                .unwrap()
                .starts_with("Condition?patient=")
        );
        assert!(
            prefetch["medicationRequests"]
                .as_str()
                .unwrap()
                .contains("status=active")
        );
        assert!(
            prefetch["egfr"]
                .as_str()
                .unwrap()
                .contains("http://loinc.org|")
        );
        assert!(prefetch["pregnancy"].as_str().unwrap().contains("82810-3"));
    }
    // CORS preflight, as a browser-based CDS client sends it.
    let pre = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/cds-services/baclofen-order-sign"),
        )
        .header("Origin", "https://ehr.example.org")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success(), "{}", pre.status());
    let methods = pre.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let headers = pre.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_examples_without_baclofen_get_empty_cards() {
    let base = start(Options::default()).await;
    let spec = read_json(&external(
        "cds-hooks-2.0.1-spec-examples/L0199-example-patient-view-request.json",
    ));
    // The spec's example is a `patient-view` call: we offer no patient-view service, so sent as is
    // to an order service it is refused, naming both hooks.
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &spec).await;
    assert_eq!(
        (status, &body["error"]),
        (400, &json!("hook_mismatch")),
        "{body}"
    );
    let m = body["message"].as_str().unwrap();
    assert!(
        m.contains("`patient-view`") && m.contains("`order-sign`"),
        "{m}"
    );
    // Its body is still read as the spec means it: with the service's hook, no baclofen, no cards.
    let mut as_order_sign = spec.clone();
    as_order_sign["hook"] = json!("order-sign");
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &as_order_sign).await;
    assert_eq!((status, &body), (200, &json!({"cards": []})));
    let lib = json_files(&external("cds-hooks-library-1.0.1-hook-examples"));
    assert_eq!(lib.len(), 7);
    for f in lib {
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        let hook = ["order-select", "order-sign", "medication-prescribe"]
            .into_iter()
            .find(|h| name.starts_with(h))
            .unwrap();
        let example = read_json(&f);
        // The library gives the `context` member only.
        let request = json!({"hook": hook, "hookInstance": "8d2b6a5e-0e8c-4bd5-8d0b-8b1e3b4e1a1f",
            "context": example["context"]});
        let (status, body) = post(&base, &format!("/cds-services/baclofen-{hook}"), &request).await;
        assert_eq!((status, &body), (200, &json!({"cards": []})), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opioid_guideline_requests_replayed_with_baclofen_give_the_interaction_cards() {
    let base = start(Options::default()).await;
    let dir = external("cds-hooks-opioid-cds-r4/commit-0aee96a-requests");
    let mut seen = HashSet::new();
    let mut screened = 0;
    for f in json_files(&dir) {
        let name = f.file_name().unwrap().to_str().unwrap().to_owned();
        let mut request = read_json(&f);
        let hook = request["hook"].as_str().unwrap().to_owned();
        let service = if hook == "patient-view" {
            "order-sign".to_owned()
        } else {
            hook.clone()
        };
        let path = format!("/cds-services/baclofen-{service}");
        if hook != service {
            // A patient-view request to an order service is refused as sent; replayed as an
            // order-sign call, its body is read.
            let (status, body) = post(&base, &path, &request).await;
            assert_eq!(
                (status, &body["error"]),
                (400, &json!("hook_mismatch")),
                "{name}"
            );
            request["hook"] = json!(service);
        }
        // As sent: opioids and benzodiazepines, no baclofen: no cards, whatever the prefetch.
        let (status, body) = post(&base, &path, &request).await;
        assert_eq!((status, &body), (200, &json!({"cards": []})), "{name}");
        let Some(order) = make_baclofen(&mut request) else {
            continue;
        };
        let (status, body) = post(&base, &path, &request).await;
        if name == "noPrefetch.json" {
            assert_eq!(status, 412, "{name}: {body}");
            assert_eq!(body["error"], "missing_prefetch");
            assert_eq!(body["missing"], json!(["patient"]));
            continue;
        }
        assert_eq!(status, 200, "{name}: {body}");
        check_cards(&body, &mut seen);
        let rules = rules_of(&body);
        let expect: &[&str] = match name.as_str() {
            "request-example-rec-08-on-benzodiazepine.json"
            | "request-example-rec-08-order-sign-on-benzodiazepine.json"
            | "request-example-rec-11-opioid-trigger-with-benzo.json" => {
                &["BAC-DDI-BENZODIAZEPINE"]
            }
            "request-example-rec-07-end-of-life-exclusion.json" => {
                &["BAC-DDI-OPIOID", "BAC-DDI-ANTIHISTAMINE"]
            }
            "request-example-rec-11-benzo-trigger-with-opioid.json"
            | "request-example-rec-07-seven-of-past-ten-days.json"
            | "request-example-rec-08-mme-greater-than-fifty.json" => &["BAC-DDI-OPIOID"],
            "request-example-rec-08-on-naloxone.json" => &[],
            _ => continue,
        };
        screened += 1;
        let ddi: Vec<&str> = rules
            .iter()
            .map(String::as_str)
            .filter(|r| r.starts_with("BAC-DDI"))
            .collect();
        assert_eq!(ddi, expect, "{name}");
        for c in body["cards"].as_array().unwrap() {
            if c["indicator"] == "critical" {
                assert_eq!(
                    c["suggestions"][0]["label"], "Cancel the baclofen order",
                    "{name}: the pack's cancel_label, by default"
                );
                let action = &c["suggestions"][0]["actions"][0];
                assert_eq!(action["type"], "delete", "{name}");
                assert_eq!(action["resourceId"], order.as_str(), "{name}");
            }
        }
        // Only the Patient and medications were sent (the client's own keys): what was not sent is
        // listed as unchecked in one info card, never passed.
        let info: Vec<&Value> = body["cards"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["indicator"] == "info")
            .collect();
        assert_eq!(info.len(), 1, "{name}");
        assert!(
            info[0]["detail"]
                .as_str()
                .unwrap()
                .contains("history of seizures or epilepsy"),
            "{name}"
        );
    }
    assert_eq!(screened, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_upstream_gets_400_with_a_message() {
    let base = start(Options::default()).await;
    let files = json_files(&external("cds-hooks-opioid-cds-r4/head-b29bdcb-requests"));
    assert_eq!(files.len(), 5);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let (status, body) =
            post_raw(&base, "/cds-services/baclofen-order-sign", bytes, None).await;
        assert_eq!(status, 400, "{}", f.display());
        assert_eq!(body["error"], "invalid_json");
        let m = body["message"].as_str().unwrap();
        assert!(m.contains("line") && m.contains("column"), "{m}");
    }
    let (status, body) = post(
        &base,
        "/cds-services/baclofen-order-sign",
        &json!({"context": {}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "the request has no `hook`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stu3_pddi_requests_are_handled_without_a_server_error() {
    let base = start(Options::default()).await;
    let files = json_files(&external("cds-hooks-pddi-cds-requests/requests"));
    assert_eq!(files.len(), 21);
    let mut seen = HashSet::new();
    for f in files {
        let mut request = read_json(&f);
        let hook = request["hook"].as_str().unwrap_or("order-sign").to_owned();
        let service = match hook.as_str() {
            "order-select" | "order-sign" | "medication-prescribe" => hook.clone(),
            _ => "order-sign".to_owned(),
        };
        let path = format!("/cds-services/baclofen-{service}");
        let (status, body) = post(&base, &path, &request).await;
        assert_eq!(
            (status, &body),
            (200, &json!({"cards": []})),
            "{}",
            f.display()
        );
        // With baclofen ordered the STU3 content is read as far as it goes: never a 5xx.
        if make_baclofen(&mut request).is_some() {
            let (status, body) = post(&base, &path, &request).await;
            assert!(
                status == 200 || status == 412,
                "{}: {status} {body}",
                f.display()
            );
            if status == 200 {
                check_cards(&body, &mut seen);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liberal_input_patient_reference_nulls_single_resources() {
    let base = start(Options::default()).await;
    let mut request = order_sign(
        patient("1950-03-01", "male"),
        vec![baclofen_draft("d1")],
        json!({
            // A single resource, not a searchset.
            "conditions": condition("c1", "84757009", "Epilepsy"),
            "medicationRequests": searchset(vec![active_med("m1", "7052", "morphine")]),
        }),
    );
    request["context"]["patientId"] = json!("Patient/p1");
    request["unknownMember"] = json!({"ignored": true});
    request["context"]["somethingNew"] = json!(1);
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    let rules = rules_of(&body);
    assert!(rules.contains(&"BAC-SEIZURE".to_owned()), "{rules:?}");
    assert!(rules.contains(&"BAC-DDI-OPIOID".to_owned()), "{rules:?}");
    assert!(rules.contains(&"BAC-AGE-OLDER".to_owned()), "{rules:?}");
    request["context"]["patientId"] = json!("p1");
    let (status, again) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200);
    assert_eq!(rules_of(&again), rules);
    // No baclofen and no prefetch at all: empty cards, no 412.
    let bare = json!({"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p1",
        "draftOrders": searchset(vec![active_med("m9", "7052", "morphine")])}});
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &bare).await;
    assert_eq!((status, body), (200, json!({"cards": []})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_carry_evidence_source_overrides_and_the_unchecked_facts() {
    let base = start(Options::default()).await;
    let egfr = json!({"resourceType": "Observation", "id": "o1", "status": "final",
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": medscreen_fhir::date::Date::today().to_string(),
        "code": {"coding": [{"system": "http://loinc.org", "code": "98979-8"}]},
        "valueQuantity": {"value": 25, "unit": "mL/min/{1.73_m2}"}});
    let request = order_sign(
        patient("1990-01-01", "female"),
        vec![baclofen_draft("d1"), active_med("d2", "7052", "morphine")],
        json!({"egfr": searchset(vec![egfr])}),
    );
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    check_cards(&body, &mut HashSet::new());
    let cards = body["cards"].as_array().unwrap();
    // The other draft (morphine) is a comedication of the baclofen order.
    let opioid = cards
        .iter()
        .find(|c| c["source"]["topic"]["code"] == "BAC-DDI-OPIOID")
        .expect("opioid card");
    assert_eq!(opioid["indicator"], "critical");
    assert_eq!(
        opioid["suggestions"][0]["actions"][0]["resourceId"],
        "MedicationRequest/d1"
    );
    let renal = cards
        .iter()
        .find(|c| c["source"]["topic"]["code"] == "BAC-RENAL")
        .expect("renal card");
    let detail = renal["detail"].as_str().unwrap();
    // The unit and the summary's short name come from the fact's declaration (`unit`, `short_title`).
    assert!(
        detail.contains("Kidney function (eGFR): 25 mL/min/1.73 m²"),
        "{detail}"
    );
    let summary = renal["summary"].as_str().unwrap();
    assert!(summary.ends_with("(eGFR 25)"), "{summary}");
    assert!(detail.contains("`Observation/o1`"), "{detail}");
    assert!(detail.contains("**Action**"), "{detail}");
    assert!(renal["overrideReasons"].as_array().unwrap().len() >= 3);
    assert!(
        renal["source"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    // Female of reproductive age, pregnancy not recorded: the info card says so.
    let info: Vec<&Value> = cards.iter().filter(|c| c["indicator"] == "info").collect();
    assert_eq!(info.len(), 1);
    let d = info[0]["detail"].as_str().unwrap();
    assert!(d.contains("Pregnancy status not recorded"), "{d}");
    // Severity order: critical first.
    assert_eq!(cards[0]["indicator"], "critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_card_severity_filters_cautions_but_not_the_info_card() {
    let request = order_sign(
        patient("1990-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({"medicationRequests": searchset(vec![active_med("m1", "29046", "lisinopril")])}),
    );
    let warn = start(Options::default()).await;
    let (_, body) = post(&warn, "/cds-services/baclofen-order-sign", &request).await;
    assert!(!rules_of(&body).contains(&"BAC-DDI-ANTIHYPERTENSIVE".to_owned()));
    let info = start(Options {
        min: medscreen_core::Severity::Info,
        ..Options::default()
    })
    .await;
    let (_, body) = post(&info, "/cds-services/baclofen-order-sign", &request).await;
    assert!(
        rules_of(&body).contains(&"BAC-DDI-ANTIHYPERTENSIVE".to_owned()),
        "{body}"
    );
    let crit = start(Options {
        min: medscreen_core::Severity::Critical,
        ..Options::default()
    })
    .await;
    let (_, body) = post(&crit, "/cds-services/baclofen-order-sign", &request).await;
    let cards = body["cards"].as_array().unwrap();
    assert!(cards.iter().all(|c| c["indicator"] != "warning"), "{body}");
    assert_eq!(cards.iter().filter(|c| c["indicator"] == "info").count(), 1);
}

/// (path prefix, status, body) answers of the test FHIR server.
type Answers = Arc<Vec<(&'static str, u16, Value)>>;
/// (path and query, Authorization header) of each request it got.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A FHIR server on loopback serving fixed answers and recording what it was asked.
async fn fhir_server(answers: Vec<(&'static str, u16, Value)>) -> (String, Seen) {
    use axum::extract::State;
    use axum::http::HeaderMap;
    use axum::http::Uri;
    let seen: Seen = Arc::default();
    let answers = Arc::new(answers);
    let app = axum::Router::new()
        .fallback(
            |State((answers, seen)): State<(Answers, Seen)>,
             uri: Uri,
             headers: HeaderMap| async move {
                let auth = headers
                    .get("authorization")
                    .map(|h| h.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let path = uri.to_string();
                seen.lock().unwrap().push((path.clone(), auth));
                let (_, status, body) = answers
                    .iter()
                    .find(|(prefix, _, _)| path.starts_with(prefix))
                    .cloned()
                    .unwrap_or(("", 404, json!({"resourceType": "OperationOutcome"})));
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(body),
                )
            },
        )
        .with_state((answers, seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/fhir"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_prefetch_is_fetched_from_the_fhir_server_or_answered_412() {
    let base = start(Options::default()).await;
    let mut request = order_sign(
        patient("1960-05-05", "male"),
        vec![baclofen_draft("d1")],
        json!({}),
    );
    request["prefetch"]
        .as_object_mut()
        .unwrap()
        .remove("conditions");
    // No FHIR access: 412, naming the key.
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["missing"], json!(["conditions"]));
    assert!(body["message"].as_str().unwrap().contains("`conditions`"));
    // A null patient is missing too: nothing can be screened without an age.
    let mut no_patient = request.clone();
    no_patient["prefetch"]["patient"] = Value::Null;
    no_patient["prefetch"]["conditions"] = Value::Null;
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &no_patient).await;
    assert_eq!(
        (status, &body["missing"]),
        (412, &json!(["patient"])),
        "{body}"
    );
    // With FHIR access: fetched with the bearer token.
    let (fhir, seen) = fhir_server(vec![(
        "/fhir/Condition?patient=p1",
        200,
        searchset(vec![condition("c7", "230690007", "Stroke")]),
    )])
    .await;
    request["fhirServer"] = json!(fhir);
    request["fhirAuthorization"] = json!({"access_token": "tok-123", "token_type": "Bearer",
        "expires_in": 300, "scope": "patient/*.read", "subject": "medscreen"});
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(rules_of(&body).contains(&"BAC-STROKE".to_owned()), "{body}");
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].0, "/fhir/Condition?patient=p1");
    assert_eq!(asked[0].1, "Bearer tok-123");
    // The FHIR server fails: 412 with the reason, no body echoed.
    let (fhir, _) = fhir_server(vec![("/fhir/", 500, json!({"secret": "patient data"}))]).await;
    request["fhirServer"] = json!(fhir);
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 412, "{body}");
    let m = body["message"].as_str().unwrap();
    assert!(m.contains("HTTP 500") && !m.contains("secret"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_appended_to_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("feedback.jsonl");
    let base = start(Options {
        feedback_log: Some(log.clone()),
        ..Options::default()
    })
    .await;
    for name in [
        "L0863-example-suggestion-accepted.json",
        "L0895-example-overridden-guidance-without-overridereason.json",
        "L0927-example-overridden-guidance-with-overridereason.json",
    ] {
        let fb = read_json(&external(&format!("cds-hooks-2.0.1-spec-examples/{name}")));
        let (status, body) = post(&base, "/cds-services/baclofen-order-sign/feedback", &fb).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    // Feedback on a card we issued names its rule.
    let request = order_sign(
        patient("1950-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({"medicationRequests": searchset(vec![active_med("m1", "7052", "morphine")])}),
    );
    let (_, cards) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    let card = cards["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"]["topic"]["code"] == "BAC-DDI-OPIOID")
        .unwrap();
    let fb = json!({"feedback": [{"card": card["uuid"], "outcome": "overridden",
        "overrideReason": {"reason": card["overrideReasons"][0], "userComment": "Patient Jane Doe insists"},
        "outcomeTimestamp": "2026-11-24T10:00:00Z"}]});
    let (status, _) = post(&base, "/cds-services/baclofen-order-sign/feedback", &fb).await;
    assert_eq!(status, 200);
    // Accepting the card's suggestion (cancel the order) is traced to it.
    let accepted = json!({"feedback": [{"card": card["uuid"], "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-11-24T10:01:00Z"}]});
    let (status, _) = post(
        &base,
        "/cds-services/baclofen-order-sign/feedback",
        &accepted,
    )
    .await;
    assert_eq!(status, 200);
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    let acc = lines.pop().unwrap();
    assert_eq!(acc["suggestions_known"], true, "{acc}");
    assert_eq!(acc["rule"], "BAC-DDI-OPIOID");
    assert_eq!(acc["hookInstance"], "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea");
    assert_eq!(acc["card_service_matches"], true);
    assert_eq!(lines[2]["card"], "9368d37b-283f-44a0-93ea-547cebab93ed");
    assert_eq!(lines[2]["overrideReason"]["code"], "d7ecf885");
    assert_eq!(lines[2]["reason_from_our_list"], false);
    assert!(lines.iter().take(3).all(|l| l["known_card"] == false));
    let last = &lines[3];
    assert_eq!(last["known_card"], true);
    assert_eq!(last["rule"], "BAC-DDI-OPIOID");
    assert_eq!(last["outcome"], "overridden");
    assert_eq!(last["overrideReason"]["code"], "benefit-outweighs-risk");
    assert_eq!(last["reason_from_our_list"], true);
    assert_eq!(last["userComment_given"], true);
    assert!(!text.contains("Jane"), "free text must not be logged");
    // A malformed item is refused whole, naming it.
    let bad = json!({"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "t"}]});
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign/feedback", &bad).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("`feedback[0]`")
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_unknown_routes_answer_json_errors() {
    let base = start(Options {
        body_limit: 2000,
        ..Options::default()
    })
    .await;
    let big = vec![b' '; 3000];
    let (status, body) = post_raw(&base, "/cds-services/baclofen-order-sign", big, None).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "body_too_large");
    let (status, body) = post(&base, "/cds-services/no-such-service", &json!({})).await;
    assert_eq!(status, 404);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("`baclofen-order-sign`")
    );
    let resp = client()
        .get(format!("{base}/cds-services/baclofen-order-sign"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(v["error"], "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_simultaneous_requests_are_all_answered_correctly() {
    let base = Arc::new(
        start(Options {
            max_concurrent: 8,
            ..Options::default()
        })
        .await,
    );
    let with = order_sign(
        patient("1950-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({"medicationRequests": searchset(vec![active_med("m1", "7052", "morphine")])}),
    );
    let without = json!({"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p1",
        "draftOrders": searchset(vec![active_med("m9", "7052", "morphine")])}});
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let base = base.clone();
        let body = if i % 3 == 0 {
            without.clone()
        } else {
            with.clone()
        };
        tasks.spawn(async move {
            (
                i,
                post(&base, "/cds-services/baclofen-order-sign", &body).await,
            )
        });
    }
    let mut seen = HashSet::new();
    let mut n = 0;
    while let Some(r) = tasks.join_next().await {
        let (i, (status, body)) = r.unwrap();
        assert_eq!(status, 200, "{body}");
        if i % 3 == 0 {
            assert_eq!(body, json!({"cards": []}));
        } else {
            let rules = rules_of(&body);
            assert!(rules.contains(&"BAC-DDI-OPIOID".to_owned()), "{body}");
            check_cards(&body, &mut seen);
        }
        n += 1;
    }
    assert_eq!(n, 300);
}

// ---- Authentication ----

fn spec_key() -> p384::ecdsa::SigningKey {
    let jwk = read_json(&fixtures().join("L1077-example-jwk-private.json"));
    p384::ecdsa::SigningKey::from_slice(&B64.decode(jwk["d"].as_str().unwrap()).unwrap()).unwrap()
}

fn sign(claims: &Value) -> String {
    use p384::ecdsa::signature::Signer;
    let header = json!({"alg": "ES384", "typ": "JWT", "kid": "example-kid"});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig: p384::ecdsa::Signature = spec_key().sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn trust() -> Trust {
    let text =
        json!({"issuers": {ISS: read_json(&fixtures().join("L1059-example-jwks-public.json"))}});
    Trust::from_json(&text.to_string(), "trust.json").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_is_required_and_checked() {
    let base = start(Options {
        auth: Some(trust()),
        public_url: Some("https://cds.example.org".into()),
        ..Options::default()
    })
    .await;
    let aud = "https://cds.example.org/cds-services/baclofen-order-sign";
    let body = json!({"hook": "order-sign", "hookInstance": "x", "context": {"patientId": "p1"}})
        .to_string()
        .into_bytes();
    let path = "/cds-services/baclofen-order-sign";
    let call = |token: Option<String>| {
        let base = base.clone();
        let body = body.clone();
        async move { post_raw(&base, path, body, token.as_deref()).await }
    };
    // Discovery stays open.
    assert_eq!(
        client()
            .get(format!("{base}/cds-services"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, v) = call(None).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("missing_token")));
    // The specification's example token: signed right, long expired.
    let header =
        std::fs::read_to_string(fixtures().join("L1092-example-complete-jwt.txt")).unwrap();
    let spec_token = header
        .trim()
        .strip_prefix("Authorization: Bearer ")
        .unwrap()
        .to_owned();
    let (status, v) = call(Some(spec_token.clone())).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("expired")), "{v}");
    let claims = |jti: &str, aud: Value, exp: u64| json!({"iss": ISS, "aud": aud, "exp": exp, "iat": now(), "jti": jti});
    let good = sign(&claims("jti-1", json!(aud), now() + 300));
    let (status, v) = call(Some(good.clone())).await;
    assert_eq!((status, &v), (200, &json!({"cards": []})));
    let (status, v) = call(Some(good.clone())).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("replayed")));
    let arr = sign(&claims(
        "jti-2",
        json!(["https://other.example", aud]),
        now() + 300,
    ));
    assert_eq!(call(Some(arr)).await.0, 200);
    let expired = sign(&claims("jti-3", json!(aud), now() - 600));
    assert_eq!(call(Some(expired)).await.1["error"], "expired");
    let wrong = sign(&claims(
        "jti-4",
        json!("https://cds.example.org/cds-services/baclofen-order-select"),
        now() + 300,
    ));
    assert_eq!(call(Some(wrong)).await.1["error"], "wrong_audience");
    // Tampered: the payload changed after signing.
    let t = sign(&claims("jti-5", json!(aud), now() + 300));
    let parts: Vec<&str> = t.split('.').collect();
    let forged = claims("jti-5", json!(aud), now() + 86_400 * 365);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(forged.to_string()),
        parts[2]
    );
    let (status, v) = call(Some(tampered)).await;
    assert_eq!((status, v["error"].as_str()), (401, Some("bad_signature")));
    // alg none.
    let none = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(claims("jti-6", json!(aud), now() + 300).to_string())
    );
    let resp = client()
        .post(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {none}"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(v["error"], "unsupported_alg");
    // Feedback takes its own endpoint as audience.
    let fb = sign(&claims(
        "jti-7",
        json!(format!("{aud}/feedback")),
        now() + 300,
    ));
    let fb_body =
        json!({"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "t"}]});
    let (status, v) = post_raw(
        &base,
        &format!("{path}/feedback"),
        fb_body.to_string().into_bytes(),
        Some(&fb),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = post_raw(
        &base,
        &format!("{path}/feedback"),
        fb_body.to_string().into_bytes(),
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_draft_orders_count_even_when_no_medication_list_was_sent() {
    let base = start(Options::default()).await;
    // The client's own prefetch keys, with the Patient only.
    let request = json!({"hook": "order-sign", "hookInstance": "x",
        "context": {"patientId": "p1", "draftOrders": searchset(vec![
            baclofen_draft("d1"), active_med("d2", "7052", "morphine")])},
        "prefetch": {"item1": patient("1980-01-01", "male"), "item2": null}});
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        rules_of(&body).contains(&"BAC-DDI-OPIOID".to_owned()),
        "{body}"
    );
    let info = body["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["indicator"] == "info")
        .unwrap();
    let d = info["detail"].as_str().unwrap();
    assert!(d.contains("Only the other orders being placed"), "{d}");
    assert!(d.contains("history of seizures or epilepsy"), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_select_screens_only_a_selected_baclofen_order() {
    let base = start(Options::default()).await;
    let mut request = order_sign(
        patient("1950-01-01", "male"),
        vec![baclofen_draft("d1"), active_med("d2", "7052", "morphine")],
        json!({}),
    );
    request["hook"] = json!("order-select");
    request["context"]["selections"] = json!(["MedicationRequest/d2"]);
    let path = "/cds-services/baclofen-order-select";
    let (status, body) = post(&base, path, &request).await;
    assert_eq!((status, body), (200, json!({"cards": []})));
    request["context"]["selections"] = json!(["MedicationRequest/d1"]);
    let (status, body) = post(&base, path, &request).await;
    assert_eq!(status, 200);
    assert!(
        rules_of(&body).contains(&"BAC-DDI-OPIOID".to_owned()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medication_prescribe_reads_the_medications_member() {
    let base = start(Options::default()).await;
    // DSTU2 shape: MedicationOrder in an array, prescribed by display text only.
    let order = json!({"resourceType": "MedicationOrder", "id": "mo1", "status": "draft",
        "patient": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "Baclofen 10 mg tablet"}});
    let mut request = order_sign(patient("1940-01-01", "female"), vec![], json!({}));
    request["hook"] = json!("medication-prescribe");
    let ctx = request["context"].as_object_mut().unwrap();
    ctx.remove("draftOrders");
    ctx.insert("medications".into(), json!([order]));
    let (status, body) = post(
        &base,
        "/cds-services/baclofen-medication-prescribe",
        &request,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        rules_of(&body).contains(&"BAC-AGE-OLDER".to_owned()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_fhir_server_and_slow_requests_time_out_with_json_errors() {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/fhir/Condition",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            axum::Json(searchset(vec![]))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut request = order_sign(
        patient("1960-05-05", "male"),
        vec![baclofen_draft("d1")],
        json!({}),
    );
    request["prefetch"]
        .as_object_mut()
        .unwrap()
        .remove("conditions");
    request["fhirServer"] = json!(format!("http://{addr}/fhir"));
    request["fhirAuthorization"] = json!({"access_token": "t"});
    let fetch_limited = start(Options {
        fetch_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let (status, body) = post(
        &fetch_limited,
        "/cds-services/baclofen-order-sign",
        &request,
    )
    .await;
    assert_eq!(status, 412, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{body}"
    );
    let request_limited = start(Options {
        request_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let (status, body) = post(
        &request_limited,
        "/cds-services/baclofen-order-sign",
        &request,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "timeout");
}

/// The order-sign request of these tests with one draft replaced.
fn with_draft(draft: Value, prefetch_extra: Value) -> Value {
    order_sign(patient("1950-01-01", "male"), vec![draft], prefetch_extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baclofen_is_recognised_however_the_order_names_it() {
    let base = start(Options::default()).await;
    let path = "/cds-services/baclofen-order-sign";
    let draft = |med: Value| {
        let mut d = baclofen_draft("d1");
        let o = d.as_object_mut().unwrap();
        o.remove("medicationCodeableConcept");
        for (k, v) in med.as_object().unwrap() {
            o.insert(k.clone(), v.clone());
        }
        d
    };
    let cases = [
        // A brand name in the text, the baclofen coding second.
        json!({"medicationCodeableConcept": {"text": "Lioresal 10 mg tab", "coding": [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "105212"},
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197391"}]}}),
        // The brand name alone.
        json!({"medicationCodeableConcept": {"text": "Ozobax DS 5 mg/mL"}}),
        // The ingredient code alone.
        json!({"medicationCodeableConcept": {"coding": [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1292"}]}}),
        // A reference with only a display.
        json!({"medicationReference": {"display": "baclofen 10 MG Oral Tablet"}}),
    ];
    for med in cases {
        let request = with_draft(draft(med.clone()), json!({}));
        let (status, body) = post(&base, path, &request).await;
        assert_eq!(status, 200, "{med}: {body}");
        assert!(
            rules_of(&body).contains(&"BAC-AGE-OLDER".to_owned()),
            "{med}: {body}"
        );
    }
    // A reference to a Medication sent in the draftOrders Bundle.
    let mut request = with_draft(
        draft(json!({"medicationReference": {"reference": "Medication/med-bac"}})),
        json!({}),
    );
    request["context"]["draftOrders"]["entry"]
        .as_array_mut()
        .unwrap()
        .push(
            json!({"resource": {"resourceType": "Medication", "id": "med-bac",
            "code": rxnorm("197391", "baclofen 10 MG Oral Tablet")}}),
        );
    let (status, body) = post(&base, path, &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        rules_of(&body).contains(&"BAC-AGE-OLDER".to_owned()),
        "{body}"
    );
    // Not baclofen: no cards.
    let other = with_draft(
        draft(json!({"medicationCodeableConcept": {"text": "tizanidine 4 mg"}})),
        json!({}),
    );
    assert_eq!(post(&base, path, &other).await.1, json!({"cards": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_a_longer_list_is_not_read_as_the_whole_list() {
    let base = start(Options::default()).await;
    let mut page = searchset(vec![condition("c1", "38341003", "Hypertension")]);
    page["total"] = json!(40);
    page["link"] =
        json!([{"relation": "next", "url": "https://ehr.example/fhir/Condition?page=2"}]);
    let request = with_draft(baclofen_draft("d1"), json!({"conditions": page}));
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    let info = body["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["indicator"] == "info")
        .expect("info card");
    let d = info["detail"].as_str().unwrap();
    assert!(d.contains("History of seizures or epilepsy"), "{d}");
    assert!(d.contains("did not send complete data"), "{d}");
    // The same list whole: seizures are known absent, not listed.
    let whole = with_draft(
        baclofen_draft("d1"),
        json!({"conditions": searchset(vec![condition("c1", "38341003", "Hypertension")])}),
    );
    let (_, body) = post(&base, "/cds-services/baclofen-order-sign", &whole).await;
    let text = body.to_string();
    assert!(!text.contains("History of seizures or epilepsy"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_by_full_url_reach_the_patient() {
    let base = start(Options::default()).await;
    let mut seizure = condition("c1", "84757009", "Epilepsy");
    seizure["subject"] = json!({"reference": "urn:uuid:aaaa-1111"});
    let mut request = with_draft(baclofen_draft("d1"), json!({}));
    request["prefetch"]["patient"] = json!({"resourceType": "Bundle", "type": "searchset",
        "entry": [{"fullUrl": "urn:uuid:aaaa-1111", "resource": patient("1950-01-01", "male")}]});
    request["prefetch"]["conditions"] = searchset(vec![seizure]);
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        rules_of(&body).contains(&"BAC-SEIZURE".to_owned()),
        "{body}"
    );
    // Another patient's condition is not read, and the list is no longer taken as whole.
    let mut foreign = condition("c2", "84757009", "Epilepsy");
    foreign["subject"] = json!({"reference": "Patient/someone-else"});
    request["prefetch"]["conditions"] = searchset(vec![foreign]);
    let (_, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert!(
        !rules_of(&body).contains(&"BAC-SEIZURE".to_owned()),
        "{body}"
    );
    let text = body.to_string();
    assert!(text.contains("about another patient"), "{text}");
    assert!(text.contains("History of seizures or epilepsy"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_medication_list_does_not_crowd_out_the_other_orders() {
    let base = start(Options::default()).await;
    let many: Vec<Value> = (0..250)
        .map(|i| {
            active_med(
                &format!("m{i}"),
                &format!("{}", 100_000 + i),
                &format!("drug {i}"),
            )
        })
        .collect();
    let request = order_sign(
        patient("1980-01-01", "male"),
        vec![baclofen_draft("d1"), active_med("d2", "7804", "oxycodone")],
        json!({"medicationRequests": searchset(many)}),
    );
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        rules_of(&body).contains(&"BAC-DDI-OPIOID".to_owned()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_baclofen_orders_add_up_their_daily_doses() {
    let base = start(Options::default()).await;
    let dose = |id: &str, tablets: u32| {
        let mut d = baclofen_draft(id);
        d["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = json!(tablets);
        d
    };
    // 3 x 2 x 10 mg + 3 x 1 x 10 mg = 90 mg/day, above the labelled 80 mg/day; each alone is not.
    let request = order_sign(
        patient("1980-01-01", "male"),
        vec![dose("d1", 2), dose("d2", 1)],
        json!({}),
    );
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        rules_of(&body).contains(&"BAC-DOSE-MAX".to_owned()),
        "{body}"
    );
    let one = order_sign(
        patient("1980-01-01", "male"),
        vec![dose("d1", 2)],
        json!({}),
    );
    let (_, body) = post(&base, "/cds-services/baclofen-order-sign", &one).await;
    assert!(
        !rules_of(&body).contains(&"BAC-DOSE-MAX".to_owned()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_orders_and_references_are_handled() {
    let base = start(Options::default()).await;
    let path = "/cds-services/baclofen-order-sign";
    // An order without an id: cards, but no delete suggestion that could name it.
    let mut draft = baclofen_draft("d1");
    draft.as_object_mut().unwrap().remove("id");
    let request = order_sign(
        patient("1980-01-01", "male"),
        vec![draft, active_med("d2", "7804", "oxycodone")],
        json!({}),
    );
    let (status, body) = post(&base, path, &request).await;
    assert_eq!(status, 200, "{body}");
    let opioid = body["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"]["topic"]["code"] == "BAC-DDI-OPIOID")
        .unwrap();
    assert!(opioid.get("suggestions").is_none(), "{opioid}");
    // A comedication whose Medication was not sent: reported as not recognised, not a failure.
    let mut unresolved = active_med("m1", "1", "x");
    unresolved
        .as_object_mut()
        .unwrap()
        .remove("medicationCodeableConcept");
    unresolved["medicationReference"] = json!({"reference": "Medication/not-sent"});
    let request = with_draft(
        baclofen_draft("d1"),
        json!({"medicationRequests": searchset(vec![unresolved])}),
    );
    let (status, body) = post(&base, path, &request).await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    assert!(text.contains("Medication not recognized"), "{text}");
    // Selections by bare id match too.
    let mut select = order_sign(
        patient("1980-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({}),
    );
    select["hook"] = json!("order-select");
    select["context"]["selections"] = json!(["d1"]);
    let (_, body) = post(&base, "/cds-services/baclofen-order-select", &select).await;
    assert!(!body["cards"].as_array().unwrap().is_empty(), "{body}");
    // A patient reference with no id is refused.
    let mut bad = with_draft(baclofen_draft("d1"), json!({}));
    bad["context"]["patientId"] = json!("Patient/");
    assert_eq!(post(&base, path, &bad).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_searches_follow_next_pages_and_refuse_error_answers() {
    let base = start(Options::default()).await;
    let mut page1 = searchset(vec![condition("c1", "38341003", "Hypertension")]);
    page1["link"] = json!([{"relation": "next", "url": "Condition?page=2"}]);
    let (fhir, seen) = fhir_server(vec![
        (
            "/fhir/Condition?page=2",
            200,
            searchset(vec![condition("c2", "230690007", "Stroke")]),
        ),
        ("/fhir/Condition?patient=p1", 200, page1),
    ])
    .await;
    let mut request = with_draft(baclofen_draft("d1"), json!({}));
    request["prefetch"]
        .as_object_mut()
        .unwrap()
        .remove("conditions");
    request["fhirServer"] = json!(fhir);
    request["fhirAuthorization"] = json!({"access_token": "tok"});
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(rules_of(&body).contains(&"BAC-STROKE".to_owned()), "{body}");
    assert_eq!(seen.lock().unwrap().len(), 2);
    // A search answered with an OperationOutcome is a failed fetch, not an empty list.
    let (fhir, _) = fhir_server(vec![(
        "/fhir/Condition",
        200,
        json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "forbidden"}]}),
    )])
    .await;
    request["fhirServer"] = json!(fhir);
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 412, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("OperationOutcome"),
        "{body}"
    );
    // Plain http to another host: the token is not sent.
    request["fhirServer"] = json!("http://ehr.example.org/fhir");
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 412, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("not https"),
        "{body}"
    );
}

/// The card of rule `rule`, if any.
fn card_of<'a>(body: &'a Value, rule: &str) -> Option<&'a Value> {
    body["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"]["topic"]["code"] == rule)
}

/// A baclofen MedicationRequest routed intrathecally (SNOMED 72607000), with `status` and its text.
fn intrathecal_order(status: &str, text: &str) -> Value {
    json!({"resourceType": "MedicationRequest", "id": "itb", "status": status,
        "intent": "order", "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": text},
        "dosageInstruction": [{"route": {"coding": [{"system": "http://snomed.info/sct",
            "code": "72607000", "display": "Intrathecal route"}]}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intrathecal_baclofen_draft_is_never_the_order_screened() {
    // It was screened as if it were oral baclofen when no other baclofen order came with it.
    let base = start(Options::default()).await;
    let itb = intrathecal_order("draft", "Gablofen 2000 MCG/ML Intrathecal Solution");
    let req = order_sign(
        patient("1970-01-01", "male"),
        vec![itb.clone()],
        json!({"medicationRequests": searchset(vec![])}),
    );
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"cards": []}));

    // With an oral draft, the intrathecal one is its comedication: a critical duplicate.
    let req = order_sign(
        patient("1970-01-01", "male"),
        vec![itb, baclofen_draft("d1")],
        json!({"medicationRequests": searchset(vec![])}),
    );
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &req).await;
    assert_eq!(status, 200, "{body}");
    let card = card_of(&body, "BAC-DUPLICATE").unwrap_or_else(|| panic!("{body}"));
    assert_eq!(card["indicator"], "critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baclofen_draft_over_intrathecal_baclofen_is_a_critical_duplicate_but_a_renewal_is_not() {
    let base = start(Options::default()).await;
    let intrathecal = intrathecal_order("active", "baclofen 2000 MCG/ML Injectable Solution");
    let req = order_sign(
        patient("1970-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({"medicationRequests": searchset(vec![intrathecal])}),
    );
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &req).await;
    assert_eq!(status, 200, "{body}");
    let card = card_of(&body, "BAC-DUPLICATE").unwrap_or_else(|| panic!("{body}"));
    assert_eq!(card["indicator"], "critical");
    assert!(card["detail"].as_str().unwrap().contains("intrathecal"));

    // An active oral baclofen order is the order the draft renews: no duplicate card.
    let oral = active_med("old", BACLOFEN, "baclofen 10 MG Oral Tablet");
    let req = order_sign(
        patient("1970-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({"medicationRequests": searchset(vec![oral])}),
    );
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &req).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        card_of(&body, "BAC-DUPLICATE").is_none(),
        "{:?}",
        rules_of(&body)
    );
}

// ---- Hardening: malformed prefetch is never read as "nothing recorded" ----

/// The load fixture: a Synthea patient with a baclofen draft and our prefetch keys (oxycodone,
/// diazepam, chlorpheniramine, naproxen; epilepsy among 12 conditions).
fn load_request() -> Value {
    read_json(&fixtures().join("load/baclofen-prefetch.json"))
}

fn summaries(body: &Value) -> Vec<String> {
    body["cards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["summary"].as_str().unwrap().to_owned())
        .collect()
}

fn not_fully_screened(body: &Value) -> Option<&Value> {
    body["cards"].as_array().unwrap().iter().find(|c| {
        c["summary"]
            .as_str()
            .unwrap()
            .starts_with("Baclofen: not fully screened")
    })
}

/// The patient id of the load fixture, bare.
const LOAD_PATIENT: &str = "bae2bf00-eca1-47fb-bb43-272f8de1449c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_medication_list_is_fetched_not_read_as_empty() {
    let base = start(Options::default()).await;
    let path = "/cds-services/baclofen-order-sign";
    let good = load_request();
    let (status, body) = post(&base, path, &good).await;
    assert_eq!(status, 200, "{body}");
    let rules = rules_of(&body);
    assert!(rules.contains(&"BAC-DDI-OPIOID".to_owned()), "{rules:?}");
    assert!(rules.contains(&"BAC-SEIZURE".to_owned()), "{rules:?}");
    assert!(not_fully_screened(&body).is_none(), "{body}");
    let malformed = [
        json!([]),
        json!("x"),
        json!({}),
        json!({"resourceType": "Bundle", "type": "searchset", "entry": "x"}),
        json!({"resourceType": "Bundle", "type": "searchset", "entry": [5, null]}),
        json!({"resourceType": "Condition", "id": "wrong-type-for-the-key"}),
    ];
    for (key, rule, kind) in [
        ("medicationRequests", "BAC-DDI-OPIOID", "MedicationRequest"),
        ("conditions", "BAC-SEIZURE", "Condition"),
    ] {
        for bad in &malformed {
            if key == "conditions" && bad["resourceType"] == "Condition" {
                continue; // a single Condition is a readable conditions list
            }
            let mut request = good.clone();
            request["prefetch"][key] = bad.clone();
            // No FHIR access: refused like a missing prefetch, never screened as "none recorded".
            let (status, body) = post(&base, path, &request).await;
            assert_eq!(status, 412, "{key} = {bad}: {body}");
            assert_eq!(body["error"], "missing_prefetch");
            assert_eq!(body["missing"], json!([key]), "{key} = {bad}");
            // With FHIR access: fetched, and the caution is back.
            let (fhir, seen) = fhir_server(vec![(
                if kind == "Condition" {
                    "/fhir/Condition?"
                } else {
                    "/fhir/MedicationRequest?"
                },
                200,
                good["prefetch"][key].clone(),
            )])
            .await;
            request["fhirServer"] = json!(fhir);
            request["fhirAuthorization"] = json!({"access_token": "t", "token_type": "Bearer"});
            let (status, body) = post(&base, path, &request).await;
            assert_eq!(status, 200, "{key} = {bad}: {body}");
            assert!(
                rules_of(&body).contains(&rule.to_owned()),
                "{key} = {bad}: {body}"
            );
            assert!(not_fully_screened(&body).is_none(), "{body}");
            let asked = seen.lock().unwrap().clone();
            assert_eq!(asked.len(), 1, "{asked:?}");
            assert!(
                asked[0]
                    .0
                    .starts_with(&format!("/fhir/{kind}?patient={LOAD_PATIENT}")),
                "{asked:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searchset_without_entry_is_an_empty_list() {
    let base = start(Options::default()).await;
    let mut request = load_request();
    request["prefetch"]["medicationRequests"] =
        json!({"resourceType": "Bundle", "type": "searchset", "total": 0});
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    let rules = rules_of(&body);
    assert!(!rules.iter().any(|r| r.starts_with("BAC-DDI")), "{rules:?}");
    assert!(rules.contains(&"BAC-SEIZURE".to_owned()), "{rules:?}");
    assert!(not_fully_screened(&body).is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_without_resource_type_gives_not_fully_screened_card() {
    let base = start(Options::default()).await;
    let path = "/cds-services/baclofen-order-sign";
    let good = load_request();
    // Entry 3 is the oxycodone order: its type removed, misspelt, or not a string.
    let breaks: [(&str, Option<Value>); 3] = [
        ("missing", None),
        ("misspelt", Some(json!("MedicationReqest"))),
        ("number", Some(json!(7))),
    ];
    for (what, rt) in breaks {
        let mut request = good.clone();
        let r = request["prefetch"]["medicationRequests"]["entry"][3]["resource"]
            .as_object_mut()
            .unwrap();
        match rt {
            None => r.remove("resourceType"),
            Some(v) => r.insert("resourceType".into(), v),
        };
        let (status, body) = post(&base, path, &request).await;
        assert_eq!(status, 200, "{what}: {body}");
        let card = not_fully_screened(&body).unwrap_or_else(|| panic!("{what}: {body}"));
        assert_eq!(card["indicator"], "warning");
        let detail = card["detail"].as_str().unwrap();
        assert!(
            detail.contains("/prefetch/medicationRequests/entry/3/resource"),
            "{what}: {detail}"
        );
        // The rest is still screened (the seizure card stays), and the medication list is not
        // claimed whole: the info card says it was not sent complete.
        let rules = rules_of(&body);
        assert!(
            rules.contains(&"BAC-SEIZURE".to_owned()),
            "{what}: {rules:?}"
        );
        assert!(rules.contains(&"BAC-DDI-BENZODIAZEPINE".to_owned()));
        let info = body["cards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["indicator"] == "info")
            .unwrap();
        assert!(
            info["detail"]
                .as_str()
                .unwrap()
                .contains("did not send complete data for: current medications"),
            "{what}: {info}"
        );
        // Critical cards first, then this one.
        let s = summaries(&body);
        let at = s
            .iter()
            .position(|x| x.starts_with("Baclofen: not fully screened"))
            .unwrap();
        assert!(
            body["cards"].as_array().unwrap()[..at]
                .iter()
                .all(|c| c["indicator"] == "critical"),
            "{s:?}"
        );
        // With FHIR access the list is fetched instead, and the opioid card is back.
        let (fhir, _) = fhir_server(vec![(
            "/fhir/MedicationRequest?",
            200,
            good["prefetch"]["medicationRequests"].clone(),
        )])
        .await;
        request["fhirServer"] = json!(fhir);
        request["fhirAuthorization"] = json!({"access_token": "t"});
        let (status, body) = post(&base, path, &request).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert!(rules_of(&body).contains(&"BAC-DDI-OPIOID".to_owned()));
        assert!(not_fully_screened(&body).is_none(), "{what}: {body}");
    }
    // The same in a client's own prefetch keys (which cannot be refetched by key).
    let mut request = good.clone();
    let prefetch = request["prefetch"].as_object_mut().unwrap();
    let mut meds = prefetch.remove("medicationRequests").unwrap();
    meds["entry"][3]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("resourceType");
    let own: serde_json::Map<String, Value> = [
        ("p".to_owned(), prefetch["patient"].clone()),
        ("c".to_owned(), prefetch["conditions"].clone()),
        ("m".to_owned(), meds),
    ]
    .into_iter()
    .collect();
    request["prefetch"] = Value::Object(own);
    let (status, body) = post(&base, path, &request).await;
    assert_eq!(status, 200, "{body}");
    assert!(not_fully_screened(&body).is_some(), "{body}");
    assert!(rules_of(&body).contains(&"BAC-SEIZURE".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_requests_have_no_unreadable_entries() {
    // Guards the unreadable-entry check against false alarms on data nobody here wrote.
    let base = start(Options::default()).await;
    let dir = external("cds-hooks-opioid-cds-r4/commit-0aee96a-requests");
    let mut screened = 0;
    for f in json_files(&dir) {
        let mut request = read_json(&f);
        if make_baclofen(&mut request).is_none() {
            continue;
        }
        let hook = request["hook"].as_str().unwrap().to_owned();
        let (status, body) = post(&base, &format!("/cds-services/baclofen-{hook}"), &request).await;
        if status != 200 {
            continue;
        }
        screened += 1;
        assert!(
            not_fully_screened(&body).is_none(),
            "{}: {body}",
            f.display()
        );
    }
    assert!(screened >= 8, "{screened}");
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &load_request()).await;
    assert_eq!(status, 200);
    assert!(not_fully_screened(&body).is_none());
}

// ---- Hardening: hook, patient id, feedback log, fhirServer ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_mismatch_is_refused() {
    let base = start(Options::default()).await;
    let request = order_sign(
        patient("1950-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({}),
    );
    // The right service screens it.
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    for (service, hook) in [
        ("order-select", "order-sign"),
        ("medication-prescribe", "order-sign"),
        ("order-sign", "order-select"),
        ("order-sign", "patient-view"),
    ] {
        let mut r = request.clone();
        r["hook"] = json!(hook);
        let (status, body) = post(&base, &format!("/cds-services/baclofen-{service}"), &r).await;
        assert_eq!(status, 400, "{service} <- {hook}: {body}");
        assert_eq!(body["error"], "hook_mismatch");
        let m = body["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("`{hook}`")) && m.contains(&format!("`{service}`")),
            "{m}"
        );
    }
    // Without a baclofen order too: the hook is checked before anything else.
    let mut r = request.clone();
    r["context"]["draftOrders"]["entry"] = json!([]);
    r["hook"] = json!("order-select");
    let (status, _) = post(&base, "/cds-services/baclofen-order-sign", &r).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_id_dot_dot_is_refused() {
    let base = start(Options::default()).await;
    let (fhir, seen) = fhir_server(vec![(
        "/fhir",
        200,
        json!({"resourceType": "Bundle", "type": "searchset"}),
    )])
    .await;
    let long = "a".repeat(65);
    for id in [
        "..",
        ".",
        "Patient/..",
        "Patient/.",
        "https://ehr.example/fhir/Patient/..",
        "p1/../p2",
        "p1?x=1",
        "p 1",
        "p1%2F..",
        long.as_str(),
    ] {
        let mut request = order_sign(Value::Null, vec![baclofen_draft("d1")], json!({}));
        request["context"]["patientId"] = json!(id);
        request["fhirServer"] = json!(fhir);
        request["fhirAuthorization"] = json!({"access_token": "t"});
        let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
        assert_eq!(status, 400, "{id}: {body}");
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("`context.patientId` is not a FHIR id"),
            "{body}"
        );
    }
    assert!(seen.lock().unwrap().is_empty(), "the FHIR server was asked");
    // The longest valid id, with dots and dashes, is read (and fetched by it).
    let id = format!("{}.x-1", "a".repeat(60));
    let mut request = order_sign(Value::Null, vec![baclofen_draft("d1")], json!({}));
    request["context"]["patientId"] = json!(format!("Patient/{id}"));
    request["fhirServer"] = json!(fhir);
    request["fhirAuthorization"] = json!({"access_token": "t"});
    let _ = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked[0].0, format!("/fhir/Patient/{id}"), "{asked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_log_strips_control_characters_and_bounds_client_strings() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("feedback.jsonl");
    let base = start(Options {
        feedback_log: Some(log.clone()),
        ..Options::default()
    })
    .await;
    let nasty = format!("a\nb\r\u{1b}[31m\u{202e}\u{200b}c\u{7}{}", "x".repeat(5000));
    let fb = json!({"feedback": [{"card": "c\u{1b}\n1", "outcome": "overridden",
        "outcomeTimestamp": nasty,
        "acceptedSuggestions": [{"id": nasty}],
        "overrideReason": {"reason": {"system": nasty, "code": nasty}}}]});
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign/feedback", &fb).await;
    assert_eq!(status, 200, "{body}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: Value = serde_json::from_str(text.trim()).unwrap();
    let strings = [
        &line["card"],
        &line["outcomeTimestamp"],
        &line["acceptedSuggestions"][0],
        &line["overrideReason"]["system"],
        &line["overrideReason"]["code"],
    ];
    for s in strings {
        let s = s.as_str().unwrap();
        assert!(
            !s.chars()
                .any(|c| c.is_control() || ('\u{200b}'..='\u{202e}').contains(&c)),
            "{s:?}"
        );
        assert!(s.chars().count() <= 131, "{}", s.len());
    }
    assert_eq!(line["card"], "c1");
    assert!(line["outcomeTimestamp"].as_str().unwrap().ends_with("..."));
    // Bounded counts: too many items or suggestions are refused, not logged.
    let many = json!({"feedback": (0..101).map(|i| json!({"card": format!("c{i}"),
        "outcome": "accepted", "outcomeTimestamp": "t"})).collect::<Vec<_>>()});
    let (status, _) = post(&base, "/cds-services/baclofen-order-sign/feedback", &many).await;
    assert_eq!(status, 400);
    let sugg = json!({"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "t",
        "acceptedSuggestions": (0..9).map(|i| json!({"id": format!("s{i}")})).collect::<Vec<_>>()}]});
    let (status, _) = post(&base, "/cds-services/baclofen-order-sign/feedback", &sugg).await;
    assert_eq!(status, 400);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
}

/// A request that needs `conditions` fetched from `fhir`, with a token.
fn needs_fetch(fhir: &str) -> Value {
    let mut request = order_sign(
        patient("1960-05-05", "male"),
        vec![baclofen_draft("d1")],
        json!({}),
    );
    request["prefetch"]
        .as_object_mut()
        .unwrap()
        .remove("conditions");
    request["fhirServer"] = json!(fhir);
    request["fhirAuthorization"] = json!({"access_token": "secret-token"});
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_server_private_address_is_refused() {
    let base = start(Options::default()).await;
    let path = "/cds-services/baclofen-order-sign";
    for (server, what) in [
        ("https://10.0.0.1/fhir", "private"),
        ("https://172.16.5.4/fhir", "private"),
        ("https://192.168.1.20:8443/fhir", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[fe80::1]/fhir", "link-local"),
        ("https://[fd00::1]/fhir", "private"),
        ("https://[::ffff:10.0.0.1]/fhir", "private"),
        ("https://0.0.0.0/fhir", "unspecified"),
    ] {
        let (status, body) = post(&base, path, &needs_fetch(server)).await;
        assert_eq!(status, 412, "{server}: {body}");
        let m = body["message"].as_str().unwrap();
        assert!(m.contains(&format!("on a {what} address")), "{server}: {m}");
        assert!(m.contains("`fhirServers`"), "{m}");
    }
    // Loopback stays allowed in development (--insecure-no-auth).
    let (fhir, seen) = fhir_server(vec![("/fhir/Condition", 200, searchset(vec![]))]).await;
    let (status, body) = post(&base, path, &needs_fetch(&fhir)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let by_name = fhir.replace("127.0.0.1", "localhost");
    let (status, body) = post(&base, path, &needs_fetch(&by_name)).await;
    assert_eq!(status, 200, "{by_name}: {body}");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

fn trust_with(fhir_servers: Value) -> Trust {
    let text = json!({"issuers": {ISS: read_json(&fixtures().join("L1059-example-jwks-public.json"))},
        "fhirServers": fhir_servers});
    Trust::from_json(&text.to_string(), "trust.json").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_server_resolved_address_is_checked_and_the_allow_list_admits_listed_origins() {
    let (fhir, seen) = fhir_server(vec![("/fhir/Condition", 200, searchset(vec![]))]).await;
    let origin = fhir.trim_end_matches("/fhir").to_owned();
    let public = "https://cds.example.org";
    let aud = format!("{public}/cds-services/baclofen-order-sign");
    let path = "/cds-services/baclofen-order-sign";
    let token = |jti: &str| {
        sign(&json!({"iss": ISS, "aud": aud, "exp": now() + 300, "iat": now(), "jti": jti}))
    };
    // A trust file without `fhirServers`: public addresses only, loopback refused, by address and
    // by a name that resolves to it (`localhost`, checked at connection time).
    let strict = start(Options {
        auth: Some(trust_with(json!([]))),
        public_url: Some(public.into()),
        ..Options::default()
    })
    .await;
    for (i, server) in [fhir.clone(), fhir.replace("127.0.0.1", "localhost")]
        .iter()
        .enumerate()
    {
        let body = needs_fetch(server).to_string().into_bytes();
        let (status, v) = post_raw(&strict, path, body, Some(&token(&format!("s{i}")))).await;
        assert_eq!(status, 412, "{server}: {v}");
        let m = v["message"].as_str().unwrap();
        assert!(m.contains("loopback address"), "{server}: {m}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "the token went to a refused server"
    );
    // Listed: that origin is used, whatever its address; another origin is not.
    let listed = start(Options {
        auth: Some(trust_with(json!([origin]))),
        public_url: Some(public.into()),
        ..Options::default()
    })
    .await;
    let body = needs_fetch(&fhir).to_string().into_bytes();
    let (status, v) = post_raw(&listed, path, body, Some(&token("l1"))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let body = needs_fetch("https://fhir.example.org/r4")
        .to_string()
        .into_bytes();
    let (status, v) = post_raw(&listed, path, body, Some(&token("l2"))).await;
    assert_eq!(status, 412, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("not one of the origins"),
        "{v}"
    );
    // A bad list is a load error naming the entry.
    let text = json!({"issuers": {ISS: read_json(&fixtures().join("L1059-example-jwks-public.json"))},
        "fhirServers": ["https://ok.example", "https://a.example/fhir", 5, "http://plain.example"]});
    let err = Trust::from_json(&text.to_string(), "trust.json").unwrap_err();
    let pointers: Vec<&str> = err.problems.iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        ["/fhirServers/1", "/fhirServers/2", "/fhirServers/3"],
        "{err}"
    );
}

// ---- Hardening: slow bodies and memory ----

/// Open a connection that sends a hook call's headers (declaring `length` body bytes) and then
/// `{`, and keeps the body coming at one byte a second for `seconds`; the task ends with what the
/// server answered, if anything.
fn slow_body(addr: &str, length: usize, seconds: u64) -> tokio::task::JoinHandle<Option<String>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = addr.to_owned();
    tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(&addr).await.ok()?;
        let head = format!(
            "POST /cds-services/baclofen-order-sign HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{"
        );
        s.write_all(head.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        for _ in 0..seconds {
            let mut buf = [0u8; 512];
            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    answer.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(_) => {
                    if s.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            }
        }
        (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_do_not_starve_ordinary_requests() {
    // The body deadline is longer than the 3 s the ordinary request may take, so the slow bodies are
    // still arriving while it is answered.
    let base = start(Options {
        body_timeout: Duration::from_secs(6),
        ..Options::default()
    })
    .await;
    let addr = base.trim_start_matches("http://").to_owned();
    // 70 clients sending their bodies at one byte a second: more than the 64 slots.
    let slow: Vec<_> = (0..70).map(|_| slow_body(&addr, 10_000, 9)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let request = order_sign(
        patient("1950-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({"medicationRequests": searchset(vec![active_med("m1", "7052", "morphine")])}),
    );
    let t = std::time::Instant::now();
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    let took = t.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(rules_of(&body).contains(&"BAC-DDI-OPIOID".to_owned()));
    assert!(took < Duration::from_secs(3), "answered in {took:?}");
    // The slow ones are cut off at the body deadline with a 408, not left holding anything.
    let mut timed_out = 0;
    for h in slow {
        if let Some(answer) = h.await.unwrap() {
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
            assert!(answer.contains("body_timeout"), "{answer}");
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 70);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_memory_budget_get_503_with_retry_after() {
    let base = start(Options {
        body_limit: 60_000,
        body_budget: 100_000,
        ..Options::default()
    })
    .await;
    let addr = base.trim_start_matches("http://").to_owned();
    let mut request = order_sign(
        patient("1950-01-01", "male"),
        vec![baclofen_draft("d1")],
        json!({}),
    )
    .to_string()
    .into_bytes();
    request.resize(59_000, b' ');
    // One body of 59 KB being read holds 59 KB of the 100 KB budget: a second one does not fit.
    let holder = slow_body(&addr, 59_000, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = client()
        .post(format!("{base}/cds-services/baclofen-order-sign"))
        .header("Content-Type", "application/json")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(v["error"], "memory_busy");
    // Once that client is gone, its share is given back.
    holder.abort();
    let _ = holder.await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = post_raw(&base, "/cds-services/baclofen-order-sign", request, None).await;
    assert_eq!(status, 200, "{body}");
    // A body sent without a length (chunked) is charged as it arrives: 50 KB do not fit beside
    // another 59 KB being read.
    let holder = slow_body(&addr, 59_000, 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = chunked_post(&addr, &[vec![b' '; 25_000], vec![b' '; 25_000]]).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("memory_busy"), "{answer}");
    holder.abort();
}

/// POST a chunked body on a raw connection; the answer's text.
async fn chunked_post(addr: &str, chunks: &[Vec<u8>]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "POST /cds-services/baclofen-order-sign HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for c in chunks {
        req.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        req.extend_from_slice(c);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let _ = s.write_all(&req).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

// ---- Several packs: one service per pack and hook, each screening with its own pack ----

fn both_packs() -> Options {
    Options {
        packs: Some(vec!["baclofen", "tizanidine"]),
        ..Options::default()
    }
}

async fn get_json(base: &str, path: &str) -> Value {
    let resp = client().get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_every_packs_services_with_distinct_ids() {
    let base = start(both_packs()).await;
    let v = get_json(&base, "/cds-services").await;
    let services = v["services"].as_array().unwrap();
    let ids: Vec<&str> = services.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "baclofen-order-select",
            "baclofen-order-sign",
            "baclofen-medication-prescribe",
            "tizanidine-order-select",
            "tizanidine-order-sign",
            "tizanidine-medication-prescribe",
        ]
    );
    // Baclofen's entries are those of the one-pack service, byte for byte.
    let alone = get_json(&start(Options::default()).await, "/cds-services").await;
    assert_eq!(services[..3], alone["services"].as_array().unwrap()[..]);
    // Tizanidine's are its own: its title, and its prefetch (the ALT its hepatic rules read).
    for s in &services[3..] {
        assert!(s["title"].as_str().unwrap().contains("tizanidine"), "{s}");
        assert!(
            s["prefetch"]["alt"]
                .as_str()
                .unwrap()
                .starts_with("Observation?patient="),
            "{s}"
        );
    }
    assert!(
        services[..3]
            .iter()
            .all(|s| s["prefetch"].get("alt").is_none())
    );
}

#[test]
fn a_pack_offered_twice_is_refused() {
    let opts = CdsOptions::default();
    let err = Catalog::new(vec![
        pack_cds("tizanidine", opts),
        pack_cds("tizanidine", opts),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        CatalogError::DuplicateService("tizanidine-order-select".into())
    );
    assert_eq!(Catalog::new(Vec::new()).unwrap_err(), CatalogError::Empty);
}

/// The load fixture with its baclofen draft made a tizanidine one (RxNorm 57258, the ingredient
/// CUI of the tizanidine subject set, 4 mg three times a day), and the tizanidine services' `alt`
/// key sent as "no data".
fn tizanidine_request() -> Value {
    let mut request = load_request();
    let draft = &mut request["context"]["draftOrders"]["entry"][0]["resource"];
    assert_eq!(
        draft["medicationCodeableConcept"]["coding"][0]["code"],
        BACLOFEN
    );
    draft["medicationCodeableConcept"] = json!({"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "57258", "display": "tizanidine"}], "text": "tizanidine 4 MG Oral Tablet"});
    draft["dosageInstruction"][0]["text"] = json!("4 mg by mouth three times a day");
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = json!(4);
    request["prefetch"]["alt"] = Value::Null;
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tizanidine_order_is_screened_by_the_tizanidine_service_only() {
    let base = start(both_packs()).await;
    let request = tizanidine_request();
    let (status, body) = post(&base, "/cds-services/tizanidine-order-sign", &request).await;
    assert_eq!(status, 200, "{body}");
    let rules = rules_of(&body);
    assert!(!rules.is_empty(), "{body}");
    assert!(rules.iter().all(|r| r.starts_with("TZN-")), "{rules:?}");
    for s in summaries(&body) {
        assert!(s.to_lowercase().contains("tizanidine"), "{s}");
    }
    check_cards(&body, &mut HashSet::new());
    // The baclofen service sees no baclofen order: no cards, as for any other drug.
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &request).await;
    assert_eq!((status, body), (200, json!({"cards": []})));
    // And the baclofen order is still the baclofen service's, not the tizanidine one's.
    let (status, body) = post(&base, "/cds-services/baclofen-order-sign", &load_request()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        rules_of(&body).iter().all(|r| r.starts_with("BAC-")),
        "{body}"
    );
    let mut baclofen = load_request();
    baclofen["prefetch"]["alt"] = Value::Null;
    let (status, body) = post(&base, "/cds-services/tizanidine-order-sign", &baclofen).await;
    assert_eq!((status, body), (200, json!({"cards": []})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_on_a_tizanidine_card_names_its_tizanidine_rule() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("feedback.jsonl");
    let base = start(Options {
        feedback_log: Some(log.clone()),
        ..both_packs()
    })
    .await;
    let (_, cards) = post(
        &base,
        "/cds-services/tizanidine-order-sign",
        &tizanidine_request(),
    )
    .await;
    let card = cards["cards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"]["topic"]["code"].is_string())
        .unwrap()
        .clone();
    let rule = card["source"]["topic"]["code"].as_str().unwrap();
    assert!(rule.starts_with("TZN-"), "{card}");
    let fb = json!({"feedback": [{"card": card["uuid"], "outcome": "overridden",
        "overrideReason": {"reason": card["overrideReasons"][0]},
        "outcomeTimestamp": "2026-11-24T10:00:00Z"}]});
    for path in [
        "/cds-services/tizanidine-order-sign/feedback",
        // Sent to another pack's service, the card is still known by the pack that issued it.
        "/cds-services/baclofen-order-sign/feedback",
    ] {
        let (status, body) = post(&base, path, &fb).await;
        assert_eq!((status, body), (200, json!({"recorded": 1})), "{path}");
    }
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for (line, service, matches) in [
        (&lines[0], "tizanidine-order-sign", true),
        (&lines[1], "baclofen-order-sign", false),
    ] {
        assert_eq!(line["service"], service, "{line}");
        assert_eq!(line["known_card"], true, "{line}");
        assert_eq!(line["rule"], rule, "{line}");
        assert_eq!(line["card_service_matches"], matches, "{line}");
        assert_eq!(line["reason_from_our_list"], true, "{line}");
    }
}
