//! The first page after sign-in: how deliveries are going, in charts, for the org or for one
//! webhook; and for admins, the queue of the whole installation.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::Result;
use super::charts::{self, Range, Series};
use super::session::{Fields, Viewer};
use super::views::{self, Nav};
use crate::api::AppState;
use crate::domain::ids::WebhookId;
use crate::domain::time::now_ms;
use crate::store::StatsQuery;

/// The attempt charts of the org or of one webhook, with the range switch.
pub async fn chart_section(
    state: &AppState,
    viewer: &Viewer,
    webhook: Option<WebhookId>,
    range: Range,
    base_href: &str,
) -> Result<Markup> {
    let now = now_ms();
    let since = range.since(now);
    let counts = state
        .store()
        .attempt_counts(StatsQuery {
            org_id: viewer.org.id.clone(),
            webhook_id: webhook,
            since,
            bucket_ms: range.bucket_ms,
        })
        .await?;
    let series = Series::new(range, since, &counts);
    let separator = if base_href.contains('?') { '&' } else { '?' };
    Ok(html! {
        section.charts aria-label="Charts" {
            nav.tabs aria-label="Time range" {
                @for r in [charts::HOUR, charts::DAY] {
                    a href={ (base_href) (separator) "range=" (r.name) }
                        aria-current=[(r.name == range.name).then_some("true")] { (r.label) }
                }
            }
            div.chart-grid {
                (charts::outcomes(&series))
                (charts::latency(&series))
            }
        }
    })
}

/// Admins: what waits in the queue, across every org.
async fn queue_card(state: &AppState) -> Result<Markup> {
    let stats = state.store().queue_stats().await?;
    let oldest = stats
        .oldest_pending_created_at
        .map(|at| (now_ms() - at).max(0) / 1000);
    Ok(html! {
        section.cards aria-label="Queue" {
            div.card {
                h2 { "Queue depth" }
                p.big { (stats.pending) }
                p.muted { "pending deliveries, every org" }
            }
            div.card {
                h2 { "Oldest pending" }
                p.big {
                    @match oldest {
                        Some(s) if s >= 3600 => { (s / 3600) " h " ((s % 3600) / 60) " min" }
                        Some(s) if s >= 60 => { (s / 60) " min " (s % 60) " s" }
                        Some(s) => { (s) " s" }
                        None => "—",
                    }
                }
                p.muted { "age of the oldest delivery not yet done" }
            }
        }
    })
}

/// The curl that makes a first webhook, with this server's address in it.
pub fn first_webhook_hint(headers: &HeaderMap) -> Markup {
    let host = views::host(headers);
    let curl = format!(
        "curl -s http://{host}/v1/webhooks \\\n  -H \"Authorization: Bearer $HERALD_KEY\" \\\n  \
         -H 'Content-Type: application/json' \\\n  \
         -d '{{\"url\": \"https://example.com/webhooks\", \"event_types\": [\"order.*\"]}}'"
    );
    html! {
        div.empty {
            h2 { "No webhooks yet" }
            p { "A webhook is an HTTPS endpoint of yours that receives signed events. "
                a href="/dashboard/webhooks/new" { "Create your first webhook" } ", or with the API:" }
            (views::copyable("first-webhook-curl", &curl))
        }
    }
}

pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Response> {
    // The portal shows webhooks and deliveries only; this page is the dashboard's.
    if viewer.is_portal() {
        return Ok(Redirect::to(super::portal::HOME).into_response());
    }
    let range = Range::parse(fields.get("range"));
    let webhooks = viewer.newest_webhooks(&state).await?;
    let chosen = fields
        .get("webhook")
        .and_then(WebhookId::parse)
        .filter(|id| webhooks.iter().any(|w| &w.id == id));
    let base = match &chosen {
        Some(id) => format!("/dashboard?webhook={id}"),
        None => "/dashboard".to_owned(),
    };
    let charts = chart_section(&state, &viewer, chosen.clone(), range, &base).await?;
    let queue = if viewer.is_admin() {
        Some(queue_card(&state).await?)
    } else {
        None
    };
    Ok(views::page(
        &viewer,
        Nav::Overview,
        "Overview",
        html! {
            @if let Some(queue) = queue { (queue) }
            @if webhooks.is_empty() {
                (first_webhook_hint(&headers))
            } @else {
                form.filters method="get" action="/dashboard" {
                    input type="hidden" name="range" value=(range.name);
                    label for="webhook" { "Show" }
                    select #webhook name="webhook" {
                        option value="" { "Every webhook of " (viewer.org.name) }
                        @for w in &webhooks {
                            option value=(w.id) selected[chosen.as_ref() == Some(&w.id)] {
                                (views::label(w))
                            }
                        }
                    }
                    button.secondary type="submit" { "Show" }
                }
            }
            (charts)
        },
    )
    .into_response())
}
