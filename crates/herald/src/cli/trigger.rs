//! `herald trigger`: publishes a sample event through the API, as an application would.
//! Without `--data` it sends the type's `example` from the server's own catalog, so what a
//! receiver gets is the shape the catalog promises.

use anyhow::Context as _;
use serde_json::Value;

pub async fn trigger(
    base: &str,
    key: &str,
    event_type: &str,
    data: Option<&str>,
    org: Option<&str>,
) -> anyhow::Result<()> {
    crate::delivery::client::install_crypto_provider();
    let client = reqwest::Client::builder().build()?;
    let base = base.trim_end_matches('/');
    let data: Value = match data {
        Some(raw) => serde_json::from_str(raw).context("--data is not valid JSON")?,
        None => catalog_example(&client, base, key, event_type).await?,
    };
    let mut body = serde_json::json!({"event_type": event_type, "data": data});
    if let Some(org) = org {
        body["org_id"] = Value::String(org.to_owned());
    }
    let request = client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?);
    let (status, shown) = send(request, key, base).await?;
    if status.is_success() {
        println!("{shown}");
        Ok(())
    } else {
        anyhow::bail!("Herald answered {status}:\n{shown}")
    }
}

/// The `example` of `event_type` in the catalog of the Herald at `base`.
async fn catalog_example(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    event_type: &str,
) -> anyhow::Result<Value> {
    let (status, text) = send(client.get(format!("{base}/v1/webhooks/event-types")), key, base).await?;
    if !status.is_success() {
        anyhow::bail!(
            "cannot read the event-type catalog for {event_type}'s example (pass --data instead); Herald answered {status}:\n{text}"
        );
    }
    let catalog: Value = serde_json::from_str(&text).context("the event-type catalog is not JSON")?;
    let entry = catalog["data"]
        .as_array()
        .and_then(|types| types.iter().find(|t| t["type"] == event_type))
        .with_context(|| {
            format!(
                "`{event_type}` is not an event type in the catalog of Herald at {base} (unknown_event_type); GET /v1/webhooks/event-types lists them"
            )
        })?;
    entry.get("example").cloned().with_context(|| {
        format!("`{event_type}` has no example in the catalog: pass the event's data with --data '{{…}}'")
    })
}

/// Sends `request` with the key; the answer's status and its body (pretty when JSON).
async fn send(
    request: reqwest::RequestBuilder,
    key: &str,
    base: &str,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
    let response = request
        .bearer_auth(key)
        .send()
        .await
        .with_context(|| format!("cannot reach Herald at {base}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let shown = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    Ok((status, shown))
}
