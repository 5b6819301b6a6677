//! The topology of `stack/definitions.json` is really on the broker, as the
//! management HTTP API reports it: every exchange (type, durability,
//! arguments), every queue (durability, queue type, dead-letter exchange,
//! stream retention) and every binding on vhost `/`.
//!
//! The expectations are read from the definitions file itself (compiled in
//! as `tickbridge_broker::amqp::DEFINITIONS_JSON`), so this test cannot drift
//! from it. The API is `RABBITMQ_MGMT_URL` (default
//! `http://guest:guest@127.0.0.1:15672/api`, the local stack of
//! `scripts/stack.sh up`); an unreachable API fails the test with that URL.

use serde_json::{json, Value};
use tickbridge_broker::amqp::DEFINITIONS_JSON;

const DEFAULT_URL: &str = "http://guest:guest@127.0.0.1:15672/api";

/// Management API base, with credentials split out for basic auth.
struct Api {
    base: String,
    user: String,
    pass: String,
    client: reqwest::Client,
}

impl Api {
    fn from_env() -> Self {
        let raw = std::env::var("RABBITMQ_MGMT_URL").unwrap_or_else(|_| DEFAULT_URL.into());
        let mut url = url::Url::parse(&raw)
            .unwrap_or_else(|e| panic!("RABBITMQ_MGMT_URL {raw:?} is not a URL: {e}"));
        let user = match url.username() {
            "" => "guest".to_string(),
            u => u.to_string(),
        };
        let pass = url.password().unwrap_or("guest").to_string();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Api {
            base: url.as_str().trim_end_matches('/').to_string(),
            user,
            pass,
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
        }
    }

    /// GET `path` (segments already encoded); panics with the reason.
    async fn get(&self, path: &str) -> Value {
        let url = format!("{}/{path}", self.base);
        let resp = self
            .client
            .get(&url)
            .basic_auth(&self.user, Some(&self.pass))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the RabbitMQ management API at {} is unreachable (run scripts/stack.sh up, \
                     or set RABBITMQ_MGMT_URL): {e}",
                    self.base
                )
            });
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "GET {url} answered {status}: {body} (is stack/definitions.json loaded? scripts/stack.sh up loads it)"
        );
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"))
    }
}

/// Percent-encodes one path segment (`/` → `%2F`, as the API wants vhosts).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn definitions() -> Value {
    serde_json::from_str(DEFINITIONS_JSON).expect("stack/definitions.json is JSON")
}

fn list<'a>(defs: &'a Value, key: &str) -> &'a Vec<Value> {
    defs[key]
        .as_array()
        .unwrap_or_else(|| panic!("stack/definitions.json has no {key} array"))
}

/// `field` of a definitions entry, with RabbitMQ's default when omitted.
fn field(entry: &Value, name: &str, default: Value) -> Value {
    entry.get(name).cloned().unwrap_or(default)
}

#[tokio::test]
async fn definitions_are_loaded_on_the_broker() {
    let api = Api::from_env();
    let defs = definitions();

    for vhost in list(&defs, "vhosts") {
        let name = vhost["name"].as_str().unwrap();
        let got = api.get(&format!("vhosts/{}", enc(name))).await;
        assert_eq!(got["name"], name, "vhost {name}");
    }

    let exchanges = list(&defs, "exchanges");
    assert!(
        exchanges
            .iter()
            .any(|e| e["name"] == "ticks" && e["type"] == "topic" && e["durable"] == true),
        "stack/definitions.json no longer declares the durable topic exchange `ticks`"
    );
    for want in exchanges {
        let (vhost, name) = (
            want["vhost"].as_str().unwrap(),
            want["name"].as_str().unwrap(),
        );
        let got = api
            .get(&format!("exchanges/{}/{}", enc(vhost), enc(name)))
            .await;
        for key in ["type", "durable"] {
            assert_eq!(got[key], want[key], "exchange {name}: {key}");
        }
        for (key, default) in [
            ("auto_delete", json!(false)),
            ("internal", json!(false)),
            ("arguments", json!({})),
        ] {
            assert_eq!(
                got[key],
                field(want, key, default),
                "exchange {name}: {key}"
            );
        }
    }

    let queues = list(&defs, "queues");
    for (name, must_have) in [
        ("ticks.work", "x-dead-letter-exchange"),
        ("ticks.dlq", "x-queue-type"),
        ("ticks.stream", "x-queue-type"),
    ] {
        assert!(
            queues
                .iter()
                .any(|q| q["name"] == name && q["arguments"].get(must_have).is_some()),
            "stack/definitions.json no longer declares {name} with {must_have}"
        );
    }
    for want in queues {
        let (vhost, name) = (
            want["vhost"].as_str().unwrap(),
            want["name"].as_str().unwrap(),
        );
        let got = api
            .get(&format!("queues/{}/{}", enc(vhost), enc(name)))
            .await;
        assert_eq!(got["durable"], want["durable"], "queue {name}: durable");
        assert_eq!(
            got["auto_delete"],
            field(want, "auto_delete", json!(false)),
            "queue {name}: auto_delete"
        );
        let want_args = want["arguments"].as_object().cloned().unwrap_or_default();
        for (arg, value) in &want_args {
            assert_eq!(
                &got["arguments"][arg], value,
                "queue {name}: argument {arg}"
            );
        }
        // The broker reports the queue type it really made, not only the
        // argument it was given.
        if let Some(kind) = want_args.get("x-queue-type") {
            assert_eq!(&got["type"], kind, "queue {name}: type");
        }
    }

    for want in list(&defs, "bindings") {
        let vhost = want["vhost"].as_str().unwrap();
        let source = want["source"].as_str().unwrap();
        let got = api
            .get(&format!(
                "exchanges/{}/{}/bindings/source",
                enc(vhost),
                enc(source)
            ))
            .await;
        let found = got.as_array().into_iter().flatten().any(|b| {
            b["destination"] == want["destination"]
                && b["destination_type"] == want["destination_type"]
                && b["routing_key"] == want["routing_key"]
                && b["arguments"] == field(want, "arguments", json!({}))
        });
        assert!(
            found,
            "binding {source} -> {} ({}) is not on the broker; bindings of {source}: {got}",
            want["destination"], want["routing_key"]
        );
    }
}

#[test]
fn segments_are_encoded_for_the_api() {
    assert_eq!(enc("/"), "%2F");
    assert_eq!(enc("ticks.work"), "ticks.work");
    assert_eq!(enc("a b#"), "a%20b%23");
}
