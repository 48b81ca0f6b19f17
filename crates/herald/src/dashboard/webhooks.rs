//! Webhooks: the list with their health, one webhook's page, and every change a tenant makes
//! to one. Changes go through the same functions as `/v1/webhooks`, so the rules (URL checks,
//! catalog, secrets sealed) are the API's own.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::charts::{self, Range};
use super::deliveries;
use super::overview;
use super::session::{Action, CheckedForm, Fields, Viewer};
use super::views::{self, Nav, label};
use super::{DashError, Result};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::pagination::page_request;
use crate::api::webhooks::{self as api, StatusIn, WebhookIn, WebhookPatch};
use crate::domain::event_types::EventTypeInfo;
use crate::domain::headers::CustomHeaders;
use crate::domain::ids::WebhookId;
use crate::domain::time::now_ms;
use crate::store::{DeliveryFilter, PageRequest, Position, Webhook, WebhookHealth, WebhookStatus};

const DAY_MS: i64 = 24 * 3600 * 1000;
/// The `disabled_reason` of a webhook paused here.
const DISABLED_HERE: &str = "disabled in the dashboard";

fn event_types_text(types: &Option<Vec<String>>) -> String {
    match types {
        None => "every type".to_owned(),
        Some(types) => types.join(", "),
    }
}

async fn find(state: &AppState, viewer: &Viewer, raw: &str) -> Result<Webhook> {
    let id = WebhookId::parse(raw).ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(state
        .store()
        .get_webhook(viewer.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?)
}

/// Delivered out of finished (delivered or failed), said in words when nothing finished: a
/// dash there read as "no data" next to deliveries that were all still pending.
fn success_rate(h: &WebhookHealth) -> Markup {
    let finished = h.delivered + h.failed;
    if finished == 0 {
        let none = if h.pending == 0 {
            "no deliveries"
        } else {
            "none finished"
        };
        return html! { span.muted { (none) } };
    }
    let rate = h.delivered as f64 * 100.0 / finished as f64;
    let class = if rate >= 99.0 {
        "good"
    } else if rate >= 90.0 {
        "fair"
    } else {
        "poor"
    };
    html! { span class={ "rate " (class) } { (rate_text(h.delivered, finished)) } }
}

/// `0 %` and `100 %` only when exactly so; otherwise one decimal, rounded towards 50 % so
/// that one failure in thousands never reads as `100.0 %`.
fn rate_text(delivered: u64, finished: u64) -> String {
    if delivered == 0 {
        return "0\u{a0}%".to_owned();
    }
    if delivered == finished {
        return "100\u{a0}%".to_owned();
    }
    let tenths = (delivered as f64 * 1000.0 / finished as f64).clamp(1.0, 999.0);
    let tenths = if tenths >= 500.0 {
        tenths.floor()
    } else {
        tenths.ceil()
    };
    format!("{:.1}\u{a0}%", tenths / 10.0)
}

fn last_response(h: &WebhookHealth) -> Markup {
    html! {
        @match (h.last_response_status, &h.last_error, h.last_attempt_at) {
            (Some(status), _, Some(at)) => { code { (status) } " " (views::time(at)) }
            (None, Some(error), Some(at)) => { code { (error) } " " (views::time(at)) }
            _ => span.muted { "—" },
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    fields: Fields,
) -> Result<Markup> {
    let request = page_request(Some("25"), fields.get("cursor"), fields.get("before"))?;
    let page = state
        .store()
        .list_webhooks(viewer.org.id.clone(), request)
        .await?;
    let health = state
        .store()
        .webhook_health(viewer.org.id.clone(), now_ms() - DAY_MS)
        .await?;
    let paged = fields.get("cursor").is_some() || fields.get("before").is_some();
    Ok(views::page(
        &viewer,
        Nav::Webhooks,
        "Webhooks",
        html! {
            (views::notice(fields.get("done")))
            @if viewer.can_change() {
                p.actions { a.button href="/dashboard/webhooks/new" { "New webhook" } }
            }
            @if page.items.is_empty() && !paged {
                @if viewer.is_portal() {
                    p.empty-line { "No webhooks yet." }
                } @else {
                    (overview::first_webhook_hint(&headers))
                }
            } @else {
                table {
                    caption.visually-hidden { "Webhooks of " (viewer.org.name) ", with the last 24 hours" }
                    thead { tr {
                        th scope="col" { "Webhook" }
                        th scope="col" { "Status" }
                        th scope="col" { "Event types" }
                        th scope="col" class="num" { "Ended, 24\u{a0}h" }
                        th scope="col" class="num" { "Pending" }
                        th scope="col" class="num" { "Success, 24\u{a0}h" }
                        th scope="col" { "Last response" }
                    } }
                    tbody {
                        @for w in &page.items {
                            @let h = health.get(&w.id).cloned().unwrap_or_default();
                            tr {
                                td.label {
                                    a href={ "/dashboard/webhooks/" (w.id) } { (label(w)) }
                                    @if w.name.is_some() { br; span.muted.small { (w.url) } }
                                }
                                td {
                                    (views::badge(w.status.as_str()))
                                    @if let Some(reason) = &w.disabled_reason {
                                        @if w.status == WebhookStatus::Disabled { br; span.small { (reason) } }
                                    }
                                }
                                td.small { (event_types_text(&w.event_types)) }
                                td.num { (h.delivered + h.failed) }
                                td.num { (h.pending) }
                                td.num { (success_rate(&h)) }
                                td { (last_response(&h)) }
                            }
                        }
                    }
                }
                (views::pager("/dashboard/webhooks?", &page))
            }
        },
    ))
}

/// What the create and edit forms hold.
#[derive(Debug, Default)]
struct FormValues {
    url: String,
    name: String,
    description: String,
    /// Catalog types and wildcards that are checked.
    checked: Vec<String>,
    /// Anything else typed in "More patterns".
    more: String,
    /// The filter as JSON text; empty: none.
    filter: String,
    /// Custom headers as `Name: value` lines; empty: none.
    headers: String,
    /// Deliveries per second as typed; empty: no limit.
    rate_limit: String,
    /// Delivered one at a time, in order.
    fifo: bool,
}

impl FormValues {
    fn from_webhook(w: &Webhook, state: &AppState) -> Result<Self> {
        let types = w.event_types.clone().unwrap_or_default();
        let (checked, more): (Vec<String>, Vec<String>) =
            types.into_iter().partition(|t| is_offered(state, t));
        Ok(Self {
            url: w.url.clone(),
            name: w.name.clone().unwrap_or_default(),
            description: w.description.clone().unwrap_or_default(),
            checked,
            more: more.join(", "),
            filter: w
                .filter
                .as_ref()
                .and_then(|f| serde_json::to_string_pretty(f.json()).ok())
                .unwrap_or_default(),
            headers: opened_headers(state, w)?.to_lines(),
            rate_limit: w
                .rate_limit
                .map(|r| r.per_second().to_string())
                .unwrap_or_default(),
            fifo: w.ordering.is_fifo(),
        })
    }

    fn from_fields(fields: &Fields) -> Self {
        Self {
            url: fields.get("url").unwrap_or_default().to_owned(),
            name: fields.get("name").unwrap_or_default().to_owned(),
            description: fields.get("description").unwrap_or_default().to_owned(),
            checked: fields.all("event_types").map(str::to_owned).collect(),
            more: fields.get("patterns").unwrap_or_default().to_owned(),
            filter: fields.get("filter").unwrap_or_default().to_owned(),
            headers: fields.get("headers").unwrap_or_default().to_owned(),
            rate_limit: fields.get("rate_limit").unwrap_or_default().trim().to_owned(),
            fifo: fields.get("ordering") == Some("fifo"),
        }
    }

    /// The headers field as the API takes it (`{}`: none), checked by the API's own rules
    /// first so a bad line gets the API's message.
    fn headers(&self) -> Result<serde_json::Value, ApiError> {
        Ok(CustomHeaders::parse_lines(&self.headers)?.to_json())
    }

    /// The filter field as the API takes it: blank is no filter; text that is not JSON gets
    /// the API's own error for the field.
    fn filter(&self) -> Result<Option<serde_json::Value>, ApiError> {
        if self.filter.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&self.filter)
            .map(Some)
            .map_err(|e| ApiError::invalid("invalid_value", "filter", format!("filter is not JSON: {e}")))
    }

    /// The rate limit field as the API takes it: blank is none; a number is sent as one, and
    /// anything else as the text it is, for the API's own message about it.
    fn rate_limit(&self) -> Option<serde_json::Value> {
        if self.rate_limit.is_empty() {
            return None;
        }
        Some(
            serde_json::from_str::<serde_json::Number>(&self.rate_limit).map_or_else(
                |_| serde_json::Value::String(self.rate_limit.clone()),
                serde_json::Value::Number,
            ),
        )
    }

    /// The order box as the API takes it.
    fn ordering(&self) -> serde_json::Value {
        serde_json::Value::from(if self.fifo { "fifo" } else { "none" })
    }

    /// Checked boxes and typed patterns; none at all means every type.
    fn event_types(&self) -> Option<Vec<String>> {
        let mut all: Vec<String> = self.checked.clone();
        all.extend(
            self.more
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        if all.is_empty() || all.iter().any(|t| t == "*") {
            None
        } else {
            Some(all)
        }
    }

    fn optional(text: &str) -> Option<String> {
        (!text.is_empty()).then(|| text.to_owned())
    }
}

/// The catalog by group: `order` → its types.
fn groups(state: &AppState) -> BTreeMap<&str, Vec<&EventTypeInfo>> {
    let mut groups: BTreeMap<&str, Vec<&EventTypeInfo>> = BTreeMap::new();
    for t in state.catalog().types() {
        groups.entry(t.group()).or_default().push(t);
    }
    groups
}

/// One type of the picker: its checkbox, what triggers it, and its example `data` (folded),
/// so a tenant sees the shape before subscribing. (The description stays outside the label:
/// the checkbox's accessible name is the type alone.)
fn type_choice(t: &EventTypeInfo, checked: bool) -> Markup {
    let described = format!("type-{}", t.name);
    let example = t
        .example
        .as_ref()
        .and_then(|example| serde_json::to_string_pretty(example).ok());
    html! {
        div.type {
            label.check.indent {
                input type="checkbox" name="event_types" value=(t.name) checked[checked] aria-describedby=(described);
                code { (t.name) }
            }
            span.muted.small id=(described) { (t.description) }
            @if let Some(example) = example {
                details.example {
                    summary { "Example" }
                    pre { code { (example) } }
                }
            }
        }
    }
}

/// Whether the picker has a checkbox for this pattern.
fn is_offered(state: &AppState, pattern: &str) -> bool {
    state.catalog().contains(pattern)
        || pattern
            .strip_suffix(".*")
            .is_some_and(|group| state.catalog().types().iter().any(|t| t.group() == group))
}

/// The form a 400 from the API is shown on: its message, next to the field at fault.
struct FormError {
    message: String,
    param: Option<String>,
}

/// The fields of the webhook form that show their own error.
const FIELDS: [&str; 8] = [
    "url",
    "name",
    "description",
    "event_types",
    "filter",
    "headers",
    "rate_limit",
    "ordering",
];

/// The form field an error's `param` is about: `headers.<name>` is the headers field's.
fn field_of(param: &str) -> &str {
    if param.starts_with("headers.") {
        "headers"
    } else {
        param
    }
}

/// A webhook's custom headers, opened to be shown to its org.
fn opened_headers(state: &AppState, w: &Webhook) -> Result<CustomHeaders> {
    Ok(state
        .secret_box()
        .open_headers(w.headers_ciphertext.as_deref(), w.id.as_str())?)
}

fn form(
    state: &AppState,
    viewer: &Viewer,
    action: &str,
    submit: &str,
    values: &FormValues,
    error: Option<&FormError>,
) -> Markup {
    let error_field = error.and_then(|e| e.param.as_deref()).map(field_of);
    let invalid = |param: &str| error_field == Some(param);
    // The message is said once: next to its field when the form has one, else above the form.
    let field_error = |param: &str| {
        html! {
            @if let Some(e) = error.filter(|_| invalid(param)) {
                p.field-error id={ (param) "-error" } role="alert" { (e.message) }
            }
        }
    };
    let at_a_field = error_field.is_some_and(|p| FIELDS.contains(&p));
    html! {
        @if let Some(e) = error.filter(|_| !at_a_field) {
            p.error role="alert" { (e.message) }
        }
        form.stack method="post" action=(action) {
            (views::csrf(viewer))
            label for="url" { "Endpoint URL" }
            // Text, not `type="url"`: the browser's own check would answer a URL without a
            // scheme with a vaguer message of its own; Herald's says what is missing.
            input #url type="text" inputmode="url" autocomplete="url" spellcheck="false" name="url" required
                value=(values.url) placeholder="https://example.com/webhooks"
                aria-invalid=[invalid("url").then_some("true")]
                aria-describedby=[invalid("url").then_some("url-error")];
            (field_error("url"))
            label for="name" { "Name" }
            input #name type="text" name="name" value=(values.name) maxlength="256"
                aria-invalid=[invalid("name").then_some("true")]
                aria-describedby=[invalid("name").then_some("name-error")];
            (field_error("name"))
            label for="description" { "Description" }
            input #description type="text" name="description" value=(values.description) maxlength="2048"
                aria-invalid=[invalid("description").then_some("true")]
                aria-describedby=[invalid("description").then_some("description-error")];
            (field_error("description"))
            fieldset.event-types {
                legend { "Event types" }
                p.muted.small {
                    "Leave everything unchecked to receive every type, now and future, except Herald's own "
                    code { "webhook.*" } " and " code { "delivery.*" } " events, which come only when checked."
                }
                @for (group, types) in groups(state) {
                    @let wildcard = format!("{group}.*");
                    div.group {
                        label.check {
                            input type="checkbox" name="event_types" value=(wildcard) checked[values.checked.contains(&wildcard)];
                            code { (wildcard) }
                        }
                        @for t in types {
                            (type_choice(t, values.checked.contains(&t.name)))
                        }
                    }
                }
                label for="patterns" { "More patterns" }
                input #patterns type="text" name="patterns" value=(values.more) placeholder="transfer.*, account.created"
                    aria-invalid=[invalid("event_types").then_some("true")]
                    aria-describedby=[invalid("event_types").then_some("event_types-error")];
                (field_error("event_types"))
            }
            label for="filter" { "Filter" }
            p.muted.small #filter-help {
                "Only events whose data matches, e.g. "
                code { r#"{"symbol": {"$in": ["AAPL", "MSFT"]}, "quantity": {"$gte": 100}}"# }
                ". Leave empty for every event of the types above."
            }
            textarea #filter name="filter" rows="4" spellcheck="false"
                aria-invalid=[invalid("filter").then_some("true")]
                aria-describedby=(if invalid("filter") { "filter-help filter-error" } else { "filter-help" }) {
                (values.filter)
            }
            (field_error("filter"))
            label for="headers" { "Custom headers" }
            p.muted.small #headers-help {
                "Sent on every delivery, one per line as " code { "Name: value" } ", e.g. "
                code { "X-Api-Key: 3f9a…" } ". At most 20; Herald's own headers ("
                code { "webhook-*" } ", " code { "content-type" } ", " code { "user-agent" } "…) cannot be set. Stored encrypted."
            }
            textarea #headers name="headers" rows="3" spellcheck="false" autocomplete="off"
                aria-invalid=[invalid("headers").then_some("true")]
                aria-describedby=(if invalid("headers") { "headers-help headers-error" } else { "headers-help" }) {
                (values.headers)
            }
            (field_error("headers"))
            label for="rate_limit" { "Rate limit" }
            p.muted.small #rate_limit-help {
                "At most this many deliveries a second (1–10,000), across every node. Leave empty for no limit."
            }
            input #rate_limit type="text" inputmode="numeric" name="rate_limit" value=(values.rate_limit)
                aria-invalid=[invalid("rate_limit").then_some("true")]
                aria-describedby=(if invalid("rate_limit") { "rate_limit-help rate_limit-error" } else { "rate_limit-help" });
            (field_error("rate_limit"))
            label.check {
                input #ordering type="checkbox" name="ordering" value="fifo" checked[values.fifo]
                    aria-describedby="ordering-help";
                "Deliver in order (FIFO)"
            }
            p.muted.small #ordering-help {
                "One attempt at a time, in the order events were accepted; a delivery waiting for its retry holds back the rest."
            }
            (field_error("ordering"))
            button type="submit" { (submit) }
        }
    }
}

fn form_error(e: ApiError) -> std::result::Result<FormError, DashError> {
    if e.status == StatusCode::BAD_REQUEST {
        Ok(FormError {
            message: e.message,
            param: e.param,
        })
    } else {
        Err(e.into())
    }
}

pub async fn new_form(State(state): State<AppState>, viewer: Viewer) -> Result<Markup> {
    viewer.may(Action::Change)?;
    let body = form(
        &state,
        &viewer,
        "/dashboard/webhooks",
        "Create webhook",
        &FormValues::default(),
        None,
    );
    Ok(views::page(&viewer, Nav::Webhooks, "New webhook", body))
}

pub async fn create(
    State(state): State<AppState>,
    CheckedForm(viewer, fields): CheckedForm,
) -> Result<Response> {
    let values = FormValues::from_fields(&fields);
    let created = async {
        let input = WebhookIn {
            url: values.url.clone(),
            name: FormValues::optional(&values.name),
            description: FormValues::optional(&values.description),
            event_types: values.event_types(),
            filter: values.filter()?,
            headers: Some(values.headers()?),
            rate_limit: values.rate_limit(),
            ordering: Some(Some(values.ordering())),
            org_id: None,
        };
        api::create(&state, viewer.org.id.clone(), input).await
    }
    .await;
    match created {
        Ok((webhook, secret)) => Ok(detail_page(
            &state,
            &viewer,
            webhook,
            charts::HOUR,
            None,
            Some(("created", &secret)),
        )
        .await?
        .into_response()),
        Err(e) => {
            let error = form_error(e)?;
            let body = form(
                &state,
                &viewer,
                "/dashboard/webhooks",
                "Create webhook",
                &values,
                Some(&error),
            );
            Ok((
                StatusCode::BAD_REQUEST,
                views::page(&viewer, Nav::Webhooks, "New webhook", body),
            )
                .into_response())
        }
    }
}

pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
    fields: Fields,
) -> Result<Markup> {
    let webhook = find(&state, &viewer, &raw).await?;
    let range = Range::parse(fields.get("range"));
    let notice = fields.get("done").map(|done| {
        let queued = fields.get("queued").and_then(|q| q.parse::<u64>().ok());
        (done.to_owned(), queued)
    });
    detail_page(&state, &viewer, webhook, range, notice, None).await
}

/// One webhook's page. `secret` is `(why, value)` right after it was made or rotated: the
/// only time it is shown.
async fn detail_page(
    state: &AppState,
    viewer: &Viewer,
    webhook: Webhook,
    range: Range,
    notice: Option<(String, Option<u64>)>,
    secret: Option<(&str, &str)>,
) -> Result<Markup> {
    let health: HashMap<_, _> = state
        .store()
        .webhook_health(viewer.org.id.clone(), now_ms() - DAY_MS)
        .await?;
    let h = health.get(&webhook.id).cloned().unwrap_or_default();
    let recent = state
        .store()
        .list_deliveries(
            DeliveryFilter {
                org_id: Some(viewer.org.id.clone()),
                webhook_id: Some(webhook.id.to_string()),
                ..DeliveryFilter::default()
            },
            PageRequest {
                limit: 10,
                position: Position::First,
            },
        )
        .await?;
    let base = format!("/dashboard/webhooks/{}", webhook.id);
    let charts = overview::chart_section(state, viewer, Some(webhook.id.clone()), range, &base).await?;
    let id = webhook.id.as_str();
    let headers = opened_headers(state, &webhook)?;
    Ok(views::page(
        viewer,
        Nav::Webhooks,
        label(&webhook),
        html! {
            @if let Some((done, queued)) = &notice {
                (views::notice(Some(done)))
                @if let Some(n) = queued { p.notice role="status" { (n) " failed deliveries queued again." } }
            }
            @if let Some((why, value)) = secret {
                section.secret aria-labelledby="secret-title" {
                    h2 #secret-title { @if why == "created" { "Webhook created — its signing secret" } @else { "New signing secret" } }
                    p { strong { "Copy it now: it is shown only this once." } " Your receiver verifies every delivery's "
                        code { "webhook-signature" } " with it." }
                    div.copyable {
                        pre { code #signing-secret { (value) } }
                        button.secondary type="button" data-copy="signing-secret" { "Copy" }
                    }
                }
            }
            @if viewer.can_change() { div.actions {
                (views::post_button(viewer, &format!("{base}/test"), "Send test event", "secondary"))
                @if webhook.status == WebhookStatus::Active {
                    form.inline method="post" action={ (base) "/status" } {
                        (views::csrf(viewer))
                        input type="hidden" name="status" value="disabled";
                        button.secondary type="submit" { "Disable" }
                    }
                } @else {
                    form.inline method="post" action={ (base) "/status" } {
                        (views::csrf(viewer))
                        input type="hidden" name="status" value="active";
                        button type="submit" { "Enable" }
                    }
                }
                // The overlap choice belongs to Rotate: one framed group, its label in sight.
                form.inline.group method="post" action={ (base) "/rotate" } {
                    (views::csrf(viewer))
                    button.secondary type="submit" { "Rotate secret" }
                    label for="overlap" { "old secret:" }
                    select #overlap name="overlap" {
                        option value="0" { "stops at once" }
                        option value="3600" { "signs 1 more hour" }
                        option value="86400" { "signs 24 more hours" }
                        option value="604800" { "signs 7 more days" }
                    }
                }
                a.button.secondary href={ (base) "/edit" } { "Edit" }
                a.button.danger href={ (base) "/delete" } { "Delete" }
            } }
            dl.facts {
                dt { "Status" } dd {
                    (views::badge(webhook.status.as_str()))
                    @if webhook.status == WebhookStatus::Disabled {
                        @if let Some(reason) = &webhook.disabled_reason { " " (reason) }
                    }
                }
                dt { "URL" } dd { code { (webhook.url) } }
                @if let Some(d) = &webhook.description { dt { "Description" } dd { (d) } }
                dt { "Event types" } dd { (event_types_text(&webhook.event_types)) }
                dt { "Custom headers" } dd {
                    @if headers.is_empty() {
                        span.muted { "none" }
                    } @else {
                        ul.plain #custom-headers {
                            @for (name, value) in headers.iter() { li { code { (name) ": " (value) } } }
                        }
                    }
                }
                dt { "Order" } dd {
                    @if webhook.ordering.is_fifo() { "FIFO, one at a time" } @else { "none" }
                }
                dt { "Rate limit" } dd {
                    @match webhook.rate_limit {
                        Some(limit) => { (limit.per_second()) " deliveries/s" }
                        None => { "none" }
                    }
                }
                dt { "Signing secret" } dd { code { "whsec_…" (webhook.secret_last4) } }
                dt { "Id" } dd { code { (id) } }
                dt { "Created" } dd { (views::time(webhook.created_at)) }
                dt { "Last attempt" } dd { (views::maybe_time(webhook.last_triggered_at)) }
                dt { "Last 24 hours" } dd {
                    (h.delivered) " delivered, " (h.failed) " failed; success rate "
                    (success_rate(&h)) "; last response " (last_response(&h))
                }
                dt { "Pending now" } dd { (h.pending) }
            }
            (charts)
            h2 { "Recent deliveries" }
            @if recent.items.is_empty() {
                p.empty-line { "Nothing delivered to this webhook yet. Use " strong { "Send test event" } " above to try it." }
            } @else {
                (deliveries::table(&recent.items, None))
                p { a href={ "/dashboard/deliveries?webhook_id=" (id) } { "Every delivery of this webhook →" } }
            }
            @if viewer.can_change() {
                h2 { "Replay failed deliveries" }
                form.filters method="post" action={ (base) "/replay" } {
                    (views::csrf(viewer))
                    (views::time_input("since", "From (UTC)", None, true))
                    (views::time_input("until", "To (UTC)", None, false))
                    button.secondary type="submit" { "Replay failed" }
                }
                p.muted.small { "Sends every failed delivery created in that window again, with a fresh retry schedule. Leave “To” empty for “until now”. " (views::TIME_HINT) }
            }
        },
    ))
}

pub async fn edit_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> Result<Markup> {
    viewer.may(Action::Change)?;
    let webhook = find(&state, &viewer, &raw).await?;
    let values = FormValues::from_webhook(&webhook, &state)?;
    let action = format!("/dashboard/webhooks/{}/edit", webhook.id);
    let body = form(&state, &viewer, &action, "Save", &values, None);
    Ok(views::page(
        &viewer,
        Nav::Webhooks,
        &format!("Edit {}", label(&webhook)),
        body,
    ))
}

pub async fn edit(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CheckedForm(viewer, fields): CheckedForm,
) -> Result<Response> {
    let webhook = find(&state, &viewer, &raw).await?;
    let values = FormValues::from_fields(&fields);
    let updated = async {
        let patch = WebhookPatch {
            name: Some(FormValues::optional(&values.name)),
            description: Some(FormValues::optional(&values.description)),
            url: Some(Some(values.url.clone())),
            event_types: Some(values.event_types()),
            filter: Some(values.filter()?),
            headers: Some(Some(values.headers()?)),
            rate_limit: Some(values.rate_limit()),
            ordering: Some(Some(values.ordering())),
            status: None,
            org_id: None,
        };
        api::update(&state, viewer.scope(), webhook.id.as_str(), patch, DISABLED_HERE).await
    }
    .await;
    match updated {
        Ok(_) => {
            Ok(Redirect::to(&format!("/dashboard/webhooks/{}?done=updated", webhook.id)).into_response())
        }
        Err(e) => {
            let error = form_error(e)?;
            let action = format!("/dashboard/webhooks/{}/edit", webhook.id);
            let body = form(&state, &viewer, &action, "Save", &values, Some(&error));
            let title = format!("Edit {}", label(&webhook));
            Ok((
                StatusCode::BAD_REQUEST,
                views::page(&viewer, Nav::Webhooks, &title, body),
            )
                .into_response())
        }
    }
}

pub async fn set_status(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CheckedForm(viewer, fields): CheckedForm,
) -> Result<Redirect> {
    let (status, done) = match fields.get("status") {
        Some("active") => (StatusIn::Active, "enabled"),
        Some("disabled") => (StatusIn::Disabled, "disabled"),
        _ => return Err(DashError::bad_request("status must be active or disabled")),
    };
    let patch = WebhookPatch {
        name: None,
        description: None,
        url: None,
        event_types: None,
        filter: None,
        headers: None,
        rate_limit: None,
        ordering: None,
        status: Some(Some(status)),
        org_id: None,
    };
    let webhook = api::update(&state, viewer.scope(), &raw, patch, DISABLED_HERE).await?;
    if matches!(status, StatusIn::Active) {
        state.wake_dispatcher();
    }
    Ok(Redirect::to(&format!(
        "/dashboard/webhooks/{}?done={done}",
        webhook.id
    )))
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(raw): Path<String>,
) -> Result<Markup> {
    viewer.may(Action::Change)?;
    let webhook = find(&state, &viewer, &raw).await?;
    let base = format!("/dashboard/webhooks/{}", webhook.id);
    Ok(views::page(
        &viewer,
        Nav::Webhooks,
        &format!("Delete {}?", label(&webhook)),
        html! {
            p { "Deleting " code { (webhook.url) } " stops every delivery to it: pending ones are canceled. "
                "Its delivery history stays in the log. This cannot be undone." }
            div.actions {
                (views::post_button(&viewer, &format!("{base}/delete"), "Delete webhook", "danger"))
                a.button.secondary href=(base) { "Cancel" }
            }
        },
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CheckedForm(viewer, _): CheckedForm,
) -> Result<Redirect> {
    api::delete(&state, viewer.scope(), &raw).await?;
    Ok(Redirect::to("/dashboard/webhooks?done=deleted"))
}

pub async fn rotate(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CheckedForm(viewer, fields): CheckedForm,
) -> Result<Markup> {
    let overlap = fields
        .get("overlap")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| DashError::bad_request("overlap must be a number of seconds"))
        })
        .transpose()?
        .unwrap_or(0);
    let secret = api::rotate(&state, viewer.scope(), &raw, overlap).await?;
    let webhook = find(&state, &viewer, &raw).await?;
    detail_page(
        &state,
        &viewer,
        webhook,
        charts::HOUR,
        None,
        Some(("rotated", &secret)),
    )
    .await
}

pub async fn send_test(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CheckedForm(viewer, _): CheckedForm,
) -> Result<Redirect> {
    let delivery = api::send_test(&state, viewer.scope(), &raw, None).await?;
    Ok(Redirect::to(&format!(
        "/dashboard/deliveries/{}?done=test-sent",
        delivery.id
    )))
}

pub async fn replay(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CheckedForm(viewer, fields): CheckedForm,
) -> Result<Redirect> {
    let since = fields
        .time("since")?
        .ok_or_else(|| DashError::bad_request("Say from when to replay."))?
        .start;
    // A typed time covers its whole second, as in the delivery log's filter.
    let until = fields.time("until")?.map(|span| span.end);
    let queued = api::replay(&state, viewer.scope(), &raw, since, until).await?;
    Ok(Redirect::to(&format!(
        "/dashboard/webhooks/{raw}?done=replayed&queued={queued}"
    )))
}

#[cfg(test)]
mod tests {
    use super::rate_text;

    #[test]
    fn a_success_rate_reads_0_or_100_only_when_exactly_so() {
        assert_eq!(rate_text(0, 3), "0\u{a0}%");
        assert_eq!(rate_text(3, 3), "100\u{a0}%");
        assert_eq!(rate_text(9999, 10000), "99.9\u{a0}%");
        assert_eq!(rate_text(1, 10000), "0.1\u{a0}%");
        assert_eq!(rate_text(1, 3), "33.4\u{a0}%");
        assert_eq!(rate_text(2, 3), "66.6\u{a0}%");
    }
}
