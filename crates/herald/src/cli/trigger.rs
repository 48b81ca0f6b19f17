//! `herald trigger`: publishes a sample event through the API, as an application would.

use anyhow::Context as _;

pub async fn trigger(
    base: &str,
    key: &str,
    event_type: &str,
    data: Option<&str>,
    org: Option<&str>,
) -> anyhow::Result<()> {
    let data: serde_json::Value = match data {
        Some(raw) => serde_json::from_str(raw).context("--data is not valid JSON")?,
        None => serde_json::json!({
            "sample": true,
            "note": format!("a sample {event_type} sent by `herald trigger`"),
        }),
    };
    let mut body = serde_json::json!({"event_type": event_type, "data": data});
    if let Some(org) = org {
        body["org_id"] = serde_json::Value::String(org.to_owned());
    }
    crate::delivery::client::install_crypto_provider();
    let client = reqwest::Client::builder().build()?;
    let url = format!("{}/v1/events", base.trim_end_matches('/'));
    let response = client
        .post(&url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)
        .send()
        .await
        .with_context(|| format!("cannot reach Herald at {base}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let shown = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    if status.is_success() {
        println!("{shown}");
        Ok(())
    } else {
        anyhow::bail!("Herald answered {status}:\n{shown}")
    }
}
