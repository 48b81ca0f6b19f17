//! The delivery log with its filters, one delivery with everything that was sent and every
//! attempt, and Retry.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use maud::{Markup, html};

use super::session::{CheckedForm, Fields, Viewer};
use super::views::{self, Nav};
use super::{DashError, Result};
use crate::api::AppState;
use crate::api::deliveries::{self as api, parse_id};
use crate::api::error::ApiError;
use crate::api::pagination::page_request;
use crate::domain::ids::WebhookId;
use crate::store::{Attempt, Delivery, DeliveryFilter, DeliveryStatus};

const STATUSES: [&str; 4] = ["pending", "delivered", "failed", "canceled"];

fn outcome(d: &Delivery) -> Markup {
    html! {
        @match (d.last_response_status, &d.last_error) {
            (Some(status), _) => code { (status) },
            (None, Some(error)) => code { (error) },
            (None, None) => span.muted { "—" },
        }
    }
}

/// A table of deliveries. `names` labels their webhooks in a column of their own; `None` (on
/// one webhook's page, where every row is that webhook) leaves the column out.
pub fn table(items: &[Delivery], names: Option<&HashMap<WebhookId, String>>) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "Delivery" }
                th scope="col" { "Event type" }
                @if names.is_some() { th scope="col" { "Webhook" } }
                th scope="col" { "Status" }
                th scope="col" class="num" { "Attempts" }
                th scope="col" { "Last response" }
                th scope="col" { "Created" }
            } }
            tbody {
                @for d in items {
                    tr data-status=(d.status.as_str()) {
                        td { a.delivery-link href={ "/dashboard/deliveries/" (d.id) } { code { (d.id) } } }
                        td.type { code { (views::dotted(&d.event_type)) } }
                        @if let Some(names) = names {
                            td.label {
                                a href={ "/dashboard/webhooks/" (d.webhook_id) } {
                                    (names.get(&d.webhook_id).map_or(d.webhook_id.as_str(), String::as_str))
                                }
                            }
                        }
                        td { (views::badge(d.status.as_str())) }
                        td.num { (d.attempt_count) }
                        td { (outcome(d)) }
                        td { (views::time(d.created_at)) }
                    }
                }
            }
        }
    }
}

/// Labels for the org's webhooks, for tables and the filter.
async fn webhook_names(state: &AppState, viewer: &Viewer) -> Result<Vec<(WebhookId, String)>> {
    Ok(viewer
        .newest_webhooks(state)
        .await?
        .iter()
        .map(|w| (w.id.clone(), views::label(w).to_owned()))
        .collect())
}

/// The filter as a query string, to keep it while paging.
fn filter_query(fields: &Fields) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for name in ["status", "event_type", "webhook_id", "from", "to"] {
        if let Some(value) = fields.get(name) {
            out.append_pair(name, value);
        }
    }
    out.finish()
}

pub async fn log(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Markup> {
    let status = match fields.get("status") {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            DashError::bad_request("status must be pending, delivered, failed or canceled")
        })?),
    };
    let webhook_id = match fields.get("webhook_id") {
        None => None,
        Some(raw) => Some(
            WebhookId::parse(raw)
                .ok_or_else(|| DashError::bad_request("That is not a webhook id."))?
                .to_string(),
        ),
    };
    let filter = DeliveryFilter {
        org_id: Some(viewer.org.id.clone()),
        event_id: None,
        webhook_id,
        status,
        event_type: fields.get("event_type").map(str::to_owned),
        // The store's bounds are exclusive; a typed time covers its whole second.
        created_after: fields.time("from")?.map(|span| span.start - 1),
        created_before: fields.time("to")?.map(|span| span.end),
    };
    let filtered = filter.status.is_some()
        || filter.webhook_id.is_some()
        || filter.event_type.is_some()
        || filter.created_after.is_some()
        || filter.created_before.is_some();
    let request = page_request(Some("50"), fields.get("cursor"), fields.get("before"))?;
    let paged = fields.get("cursor").is_some() || fields.get("before").is_some();
    let page = state.store().list_deliveries(filter, request).await?;
    let webhooks = webhook_names(&state, &viewer).await?;
    let names: HashMap<WebhookId, String> = webhooks.iter().cloned().collect();
    let base = format!("/dashboard/deliveries?{}&", filter_query(&fields));
    let host = views::host(&headers);
    Ok(views::page(
        &viewer,
        Nav::Deliveries,
        "Deliveries",
        html! {
            form.filters method="get" action="/dashboard/deliveries" {
                span.field {
                    label for="status" { "Status" }
                    select #status name="status" {
                        option value="" { "any" }
                        @for s in STATUSES {
                            option value=(s) selected[fields.get("status") == Some(s)] { (s) }
                        }
                    }
                }
                span.field {
                    label for="event_type" { "Event type" }
                    input #event_type type="text" name="event_type" value=(fields.get("event_type").unwrap_or_default()) placeholder="order.filled";
                }
                span.field {
                    label for="webhook_id" { "Webhook" }
                    select #webhook_id name="webhook_id" {
                        option value="" { "any" }
                        @for (id, name) in &webhooks {
                            option value=(id) selected[fields.get("webhook_id") == Some(id.as_str())] { (name) }
                        }
                    }
                }
                (views::time_input("from", "From (UTC)", fields.get("from"), false))
                (views::time_input("to", "To (UTC)", fields.get("to"), false))
                button type="submit" { "Filter" }
                @if filtered { a href="/dashboard/deliveries" { "Clear" } }
            }
            p.muted.small.hint { (views::TIME_HINT) }
            @if page.items.is_empty() {
                div.empty {
                    @if filtered || paged {
                        p { "No deliveries match this filter." }
                    } @else {
                        h2 { "No deliveries yet" }
                        p { "Deliveries appear here when your platform publishes an event that a webhook subscribes to. Publish one with:" }
                        (views::copyable("publish-curl", &format!(
                            "curl -s http://{host}/v1/events \\\n  -H \"Authorization: Bearer $HERALD_KEY\" \\\n  \
                             -H 'Content-Type: application/json' \\\n  \
                             -d '{{\"event_type\": \"order.filled\", \"data\": {{\"order_id\": \"o_1\"}}}}'"
                        )))
                        p { "or open a webhook and use " strong { "Send test event" } "." }
                    }
                }
            } @else {
                (table(&page.items, Some(&names)))
                (views::pager(&base, &page))
            }
        },
    ))
}

/// The headers an attempt sent, as the receiver saw them (the signature is what was sent;
/// the id and timestamp follow from the event and the attempt).
fn headers_sent(d: &Delivery, a: &Attempt) -> Markup {
    html! {
        pre.headers {
            "content-type: application/json\n"
            "webhook-id: " (d.event_id) "\n"
            "webhook-timestamp: " (a.started_at / 1000) "\n"
            "webhook-signature: " (a.signature.as_deref().unwrap_or("(nothing was sent)"))
        }
    }
}

fn attempt_item(d: &Delivery, a: &Attempt) -> Markup {
    let state = if a.error.is_none() { "delivered" } else { "failed" };
    html! {
        li class=(state) {
            div.when {
                strong { "Attempt " (a.attempt_number) } " · " (views::time(a.started_at))
            }
            div.what {
                (views::badge(state))
                @if let Some(status) = a.response_status { " HTTP " code { (status) } }
                " · " (a.duration_ms) " ms"
                @if let Some(error) = &a.error { " · error " code { (error) } }
            }
            @if let Some(message) = &a.error_message { p.small { (message) } }
            @if let Some(body) = a.response_body.as_deref().filter(|b| !b.is_empty()) {
                details {
                    summary { "Response body" @if a.response_body_truncated { " (first 16 KiB)" } }
                    pre { (body) }
                }
            }
            details {
                summary { "Request headers" }
                (headers_sent(d, a))
            }
        }
    }
}

pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    fields: Fields,
) -> Result<Markup> {
    let id = parse_id(&raw)?;
    let d = state
        .store()
        .get_delivery(viewer.scope(), id.clone())
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let attempts = state.store().list_attempts(id).await?;
    let webhook = state
        .store()
        .get_webhook(viewer.scope(), d.webhook_id.clone())
        .await?;
    let webhook_label = webhook
        .as_ref()
        .map(|w| {
            w.name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| w.url.clone())
        })
        .unwrap_or_else(|| format!("{} (deleted)", d.webhook_id));
    let base = format!("/dashboard/deliveries/{}", d.id);
    Ok(views::page(
        &viewer,
        Nav::Deliveries,
        &format!("Delivery {}", d.event_type),
        html! {
            (views::notice(fields.get("done")))
            div.actions {
                @if d.status != DeliveryStatus::Canceled && viewer.can_change() {
                    (views::post_button(&viewer, &format!("{base}/retry"), "Retry", ""))
                }
                a.button.secondary href={ "/dashboard/deliveries?webhook_id=" (d.webhook_id) } { "More of this webhook" }
            }
            dl.facts {
                dt { "Status" } dd #delivery-status { (views::badge(d.status.as_str())) }
                dt { "Webhook" } dd { a href={ "/dashboard/webhooks/" (d.webhook_id) } { (webhook_label) } }
                dt { "Event" } dd { code { (d.event_type) } " " code.muted { (d.event_id) } }
                dt { "Delivery id" } dd { code { (d.id) } }
                dt { "Created" } dd { (views::time(d.created_at)) }
                dt { "Attempts" } dd { (d.attempt_count) }
                @if let Some(at) = d.delivered_at { dt { "Delivered" } dd { (views::time(at)) } }
                @if d.status == DeliveryStatus::Pending {
                    dt { "Next attempt" } dd {
                        @match d.next_attempt_at {
                            Some(at) => (views::time(at)),
                            None => "parked until the webhook is enabled",
                        }
                    }
                }
                @if let Some(message) = &d.last_error_message { dt { "Last error" } dd { (message) } }
            }
            section aria-labelledby="payload-title" {
                h2 #payload-title { "Payload" }
                (views::copyable("payload", &views::pretty_json(&d.payload)))
            }
            section aria-labelledby="headers-title" {
                h2 #headers-title { "Headers sent" }
                @match attempts.last() {
                    Some(last) => {
                        p.muted.small { "By the latest attempt. Each attempt signs again with its own timestamp." }
                        (headers_sent(&d, last))
                    }
                    None => p.muted { "No attempt yet." },
                }
            }
            section aria-labelledby="attempts-title" {
                h2 #attempts-title { "Attempts" }
                @if attempts.is_empty() {
                    p.muted { "No attempt yet." }
                } @else {
                    ol.timeline {
                        @for a in &attempts { (attempt_item(&d, a)) }
                    }
                }
            }
        },
    ))
}

pub async fn retry(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CheckedForm(viewer, _): CheckedForm,
) -> Result<Redirect> {
    let id = api::retry(&state, viewer.scope(), &raw).await?;
    Ok(Redirect::to(&format!("/dashboard/deliveries/{id}?done=retried")))
}
