//! Micro-benchmarks of the token endpoint's pieces: assertion verification, access-token
//! signing, claim serialisation, and the read-model lookups (client + grant) in a model of
//! 100,000 clients. `cargo bench -p clavis-bench` runs them; `bench/run` does not.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use clavis::domain::client::{AuthMethodKind, AuthMethods, NewClient};
use clavis::domain::client_grant::NewClientGrant;
use clavis::domain::credential::NewCredential;
use clavis::domain::resource_server::NewResourceServer;
use clavis::domain::time::Timestamp;
use clavis::domain::validate::Body;
use clavis::model::ReadModel;
use clavis::store::{KeyState, SigningKeyRecord, Snapshot};
use clavis_crypto::jws::{CompactJws, JwsAlg, SigningKey};
use clavis_crypto::sealed::MasterKey;
use criterion::{Criterion, criterion_group, criterion_main};
use serde::Serialize;
use serde_json::json;

#[derive(Serialize)]
struct AccessTokenClaims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    gty: &'static str,
    azp: &'a str,
}

const CLIENT: &str = "bEnChClIeNt000000000000000000001";

fn claims() -> AccessTokenClaims<'static> {
    AccessTokenClaims {
        iss: "https://127.0.0.1:8443/",
        sub: format!("{CLIENT}@clients"),
        aud: "https://api.bench/",
        iat: 1_800_000_000,
        exp: 1_800_086_400,
        scope: Some("read:things write:things"),
        gty: "client-credentials",
        azp: CLIENT,
    }
}

fn assertion(key: &SigningKey) -> String {
    key.sign_jwt(&json!({
        "iss": CLIENT, "sub": CLIENT, "aud": "https://127.0.0.1:8443/",
        "jti": "a-unique-jti-0001", "iat": 1_800_000_000i64, "exp": 1_800_000_240i64,
    }))
    .unwrap()
}

fn crypto(c: &mut Criterion) {
    let client_key = SigningKey::generate().unwrap();
    let server_key = SigningKey::generate().unwrap();
    let text = assertion(&client_key);
    c.bench_function("assertion: parse + claims + RS256 verify", |b| {
        b.iter(|| {
            let jws = CompactJws::parse(black_box(&text)).unwrap();
            let claims: serde_json::Map<String, serde_json::Value> = jws.claims().unwrap();
            jws.verify(client_key.public_key(), JwsAlg::RS256).unwrap();
            black_box(claims)
        })
    });
    c.bench_function("access token: RS256 sign (claims included)", |b| {
        b.iter(|| black_box(server_key.sign_jwt(black_box(&claims())).unwrap()))
    });
    c.bench_function("access token: claim serialisation (JSON)", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&claims())).unwrap()))
    });
}

fn model(c: &mut Criterion) {
    let master = MasterKey::generate();
    let now = Timestamp::now();
    let signing = SigningKey::generate().unwrap();
    let record = SigningKeyRecord {
        kid: signing.kid().to_string(),
        sealed_pkcs8: master.seal(signing.pkcs8_der(), signing.kid().as_bytes()),
        cert_pem: String::new(),
        state: KeyState::Current,
        created_at: now,
        current_since: Some(now),
        current_until: None,
        revoked_at: None,
    };
    let rs = NewResourceServer::parse(
        Body::new(&json!({"name": "bench", "identifier": "https://api.bench/",
                          "scopes": [{"value": "read:things"}]}))
        .unwrap(),
    )
    .unwrap()
    // An RS256 API: nothing to seal.
    .build(now, &|_, _| Vec::new());
    let key = SigningKey::generate().unwrap();
    let pem = der::pem::encode_string(
        "RSA PUBLIC KEY",
        der::pem::LineEnding::LF,
        key.public_key().pkcs1_der(),
    )
    .unwrap();
    let cred_template = NewCredential::parse(
        Body::new(&json!({"credential_type": "public_key", "pem": pem, "alg": "RS256"})).unwrap(),
    )
    .unwrap()
    .build("template", now)
    .unwrap();
    let client_template = NewClient::parse(
        Body::new(&json!({"name": "c", "app_type": "non_interactive",
                          "grant_types": ["client_credentials"]}))
        .unwrap(),
    )
    .unwrap()
    .build(None, Default::default(), now)
    .unwrap();
    let mut snapshot = Snapshot {
        signing_keys: vec![record],
        resource_servers: vec![rs.clone()],
        ..Snapshot::default()
    };
    let mut ids = Vec::new();
    for i in 0..100_000 {
        let mut a = client_template.clone();
        a.client.client_id = format!("client{i:026}");
        let mut cred = cred_template.clone();
        cred.id = format!("cred_{i:016}");
        cred.client_id = a.client.client_id.clone();
        a.client.token_endpoint_auth_method = None;
        a.client.client_authentication_methods = Some(AuthMethods {
            kind: AuthMethodKind::PrivateKeyJwt,
            credential_ids: vec![cred.id.clone()],
        });
        a.credentials = vec![cred];
        let grant = NewClientGrant::parse(
            Body::new(
                &json!({"client_id": a.client.client_id, "audience": "https://api.bench/",
                              "scope": ["read:things"]}),
            )
            .unwrap(),
        )
        .unwrap()
        .build(&rs, now)
        .unwrap();
        ids.push(a.client.client_id.clone());
        snapshot.client_grants.push(grant);
        snapshot.clients.push(a);
    }
    let model = ReadModel::load(snapshot, &master).unwrap();
    let mut i = 0usize;
    c.bench_function(
        "read model: client + grant + api lookup (100k clients)",
        |b| {
            b.iter(|| {
                i = (i + 7919) % ids.len();
                let id = &ids[i];
                let client = model.client(id).unwrap();
                let grant = model.grant(id, "https://api.bench/").unwrap();
                let api = model.api("https://api.bench/").unwrap();
                black_box((client, grant, api))
            })
        },
    );
}

criterion_group!(benches, crypto, model);
criterion_main!(benches);
