//! `/v1/webhooks`: the endpoints a tenant registers, their subscriptions and signing secrets.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::TenantCaller;
use super::deliveries::{DeliveryOut, time_param};
use super::error::{ApiError, ErrorBody, Result};
use super::events;
use super::extract::{ApiJson, ApiQuery, OptionalJson, OrgQuery, PathId};
use super::pagination::{ListOut, page_request};
use crate::domain::event_types::{EventPattern, PatternError, TEST_EVENT_TYPE};
use crate::domain::filter::Filter;
use crate::domain::headers::CustomHeaders;
use crate::domain::ids::{OrgId, WebhookId};
use crate::domain::ordering::DeliveryOrder;
use crate::domain::rate_limit::RateLimit;
use crate::domain::time::{Millis, format_ms, now_ms};
use crate::domain::webhook_url::{UrlError, WebhookUrl};
use crate::secrets::{self, SecretBox};
use crate::store::{
    DeliveryFilter, NewWebhook, OrgScope, PageRequest, Position, Published, SecretRotation, Webhook,
    WebhookChanges, WebhookStatus,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(test_webhook))
        .routes(routes!(replay_webhook))
}

const MAX_NAME: usize = 256;
const MAX_DESCRIPTION: usize = 2048;
const MAX_EVENT_TYPES: usize = 256;
/// Seven days: the longest a rotated-out secret may keep signing.
const MAX_OVERLAP_SECONDS: u64 = 7 * 24 * 3600;

/// Distinguishes an explicit `null` (Some(None)) from an absent field (None).
pub(super) fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// Absolute `https://` URL, at most 2048 characters.
    pub url: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Exact types (`order.filled`) or dot-boundary wildcards (`order.*`, `*`); omitted or
    /// `null` = every type, now and future. Also accepted as `eventTypeNames` or `events`.
    #[serde(default, alias = "eventTypeNames", alias = "events")]
    pub event_types: Option<Vec<String>>,
    /// Matched against each event's `data` at publish time: dot-separated paths, `$and`,
    /// `$or`, `$not`, and the operators `$eq` `$ne` `$in` `$nin` `$gt` `$gte` `$lt` `$lte`
    /// `$exists` `$prefix`. `null`: every event of the subscribed types.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Sent on every delivery, at most 20: names are HTTP tokens other than `webhook-*`,
    /// `content-type`, `content-length`, `host`, `user-agent`, `connection`,
    /// `transfer-encoding`, `te`, `trailer`, `upgrade`; values printable ASCII of at most
    /// 1024 characters. Stored encrypted. Omitted, `null` or `{}`: none.
    #[serde(default)]
    #[schema(value_type = Option<HashMap<String, String>>)]
    pub headers: Option<serde_json::Value>,
    /// Deliveries per second at most (1–10,000), across every node; `null`: no limit.
    /// Deliveries over the limit wait, `pending`, spending no attempt.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    pub rate_limit: Option<serde_json::Value>,
    /// `"none"` (default) or `"fifo"`: one attempt at a time across every node, in the order
    /// the events were accepted; a retrying delivery holds back the rest until it ends.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<OrderingIn>)]
    pub ordering: Option<Option<serde_json::Value>>,
    /// Admin keys only: the org to create the webhook in.
    #[serde(default)]
    pub org_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub url: Option<Option<String>>,
    /// Replaces the whole set; `null` = every type.
    #[serde(
        default,
        deserialize_with = "nullable",
        alias = "eventTypeNames",
        alias = "events"
    )]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    /// Replaces the filter; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Option<serde_json::Value>>,
    /// Replaces the whole set of custom headers; `{}` or `null` removes them.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<HashMap<String, String>>)]
    pub headers: Option<Option<serde_json::Value>>,
    /// Replaces the limit; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    pub rate_limit: Option<Option<serde_json::Value>>,
    /// `"none"` or `"fifo"`; works on a webhook with deliveries pending.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<OrderingIn>)]
    pub ordering: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<StatusIn>)]
    pub status: Option<Option<StatusIn>>,
    #[serde(default)]
    pub org_id: Option<String>,
}

/// How a webhook's deliveries are ordered.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderingIn {
    None,
    Fifo,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusIn {
    Active,
    Disabled,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: WebhookId,
    /// Always `webhook`.
    pub object: &'static str,
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: String,
    /// `active` or `disabled`.
    pub status: &'static str,
    /// `null` = every type, now and future.
    pub event_types: Option<Vec<String>>,
    /// `null` = every event of its types.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// Custom headers sent on every delivery; `{}` = none.
    #[schema(value_type = HashMap<String, String>)]
    pub headers: serde_json::Value,
    /// Deliveries per second at most; `null`: no limit.
    pub rate_limit: Option<u32>,
    /// `none` or `fifo`.
    #[schema(value_type = OrderingIn)]
    pub ordering: &'static str,
    pub has_signing_secret: bool,
    pub signing_secret_last4: String,
    /// Omitted until the first delivery attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_triggered_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Present only while disabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Only in the response that creates the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl WebhookOut {
    /// The webhook as the API shows it, its custom headers opened with `secret_box`.
    pub fn new(w: Webhook, secret_box: &SecretBox) -> Result<Self> {
        let headers = secret_box.open_headers(w.headers_ciphertext.as_deref(), w.id.as_str())?;
        Ok(Self {
            id: w.id,
            object: "webhook",
            name: w.name,
            description: w.description,
            url: w.url,
            status: w.status.as_str(),
            event_types: w.event_types,
            filter: w.filter.map(|f| f.json().clone()),
            headers: headers.to_json(),
            rate_limit: w.rate_limit.map(RateLimit::per_second),
            ordering: w.ordering.as_str(),
            has_signing_secret: !w.secret_last4.is_empty(),
            signing_secret_last4: w.secret_last4,
            last_triggered_at: w.last_triggered_at.map(format_ms),
            created_at: format_ms(w.created_at),
            updated_at: format_ms(w.updated_at),
            disabled_reason: match w.status {
                WebhookStatus::Disabled => Some(w.disabled_reason.unwrap_or_else(|| "disabled".to_owned())),
                WebhookStatus::Active => None,
            },
            signing_secret: None,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    // A string, parsed by `page_request`, so a bad value gets the contract's 400
    // `invalid_limit`; the OpenAPI document shows the integer it must be.
    /// 1–100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// A `next_cursor`: older items.
    pub cursor: Option<String>,
    /// A `prev_cursor`: newer items.
    pub before: Option<String>,
    /// Admin keys only.
    pub org_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// Keep signing with the old secret too for this many seconds (at most 604800).
    #[serde(default)]
    pub expire_previous_in_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningSecretOut {
    /// Always `signing_secret`.
    pub object: &'static str,
    pub signing_secret: String,
}

fn url_error(e: UrlError) -> ApiError {
    let code = match e {
        UrlError::BlockedAddress(_) => "blocked_url",
        _ => "invalid_url",
    };
    ApiError::invalid(code, "url", e.to_string())
}

/// Checks every entry against the catalog and returns the text forms, without duplicates.
fn parse_event_types(state: &AppState, entries: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
    let Some(entries) = entries else {
        return Ok(None);
    };
    if entries.is_empty() {
        return Err(ApiError::invalid(
            "invalid_value",
            "event_types",
            "event_types must list at least one type; omit it (or use \"*\") for every type",
        ));
    }
    if entries.len() > MAX_EVENT_TYPES {
        return Err(ApiError::invalid(
            "invalid_value",
            "event_types",
            format!("at most {MAX_EVENT_TYPES} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(entries.len());
    for entry in &entries {
        let pattern = EventPattern::parse(entry, state.catalog()).map_err(|e| {
            let message = match &e {
                PatternError::Malformed(_) | PatternError::Unknown(_) => e.to_string(),
            };
            ApiError::invalid("unknown_event_type", "event_types", message)
        })?;
        let text = pattern.as_text();
        if !out.contains(&text) {
            out.push(text);
        }
    }
    Ok(Some(out))
}

fn check_text(value: &Option<String>, param: &'static str, max: usize) -> Result<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid(
            "invalid_value",
            param,
            format!("{param} must be at most {max} characters"),
        )),
        _ => Ok(()),
    }
}

/// A filter as the API takes it; `None` (absent or `null`): no filter.
fn parse_filter(value: Option<serde_json::Value>) -> Result<Option<Filter>> {
    value
        .map(|json| {
            Filter::parse(&json).map_err(|e| ApiError::invalid("invalid_value", "filter", e.to_string()))
        })
        .transpose()
}

/// Custom headers as the API takes them; absent or `null`: none.
fn parse_headers(value: Option<serde_json::Value>) -> Result<CustomHeaders> {
    Ok(value
        .as_ref()
        .map(CustomHeaders::parse)
        .transpose()?
        .unwrap_or_default())
}

/// A rate limit as the API takes it; `None` (absent or `null`): no limit.
fn parse_rate_limit(value: Option<serde_json::Value>) -> Result<Option<RateLimit>> {
    match value {
        None => Ok(None),
        Some(json) => {
            RateLimit::parse(&json).map_err(|e| ApiError::invalid("invalid_value", "rate_limit", e))
        }
    }
}

/// An order as the API takes it: a string, `"none"` or `"fifo"` (`null` is refused too).
fn parse_ordering(value: Option<serde_json::Value>) -> Result<DeliveryOrder> {
    DeliveryOrder::parse(&value.unwrap_or(serde_json::Value::Null))
        .map_err(|e| ApiError::invalid("invalid_value", "ordering", e))
}

fn parse_id(raw: &str) -> Result<WebhookId> {
    WebhookId::parse(raw).ok_or_else(|| ApiError::not_found("webhook"))
}

/// Create a webhook; the response carries its signing secret, shown only here.
#[utoipa::path(post, path = "/v1/webhooks", operation_id = "create_webhook", tag = "webhooks",
    request_body = WebhookIn,
    responses(
        (status = 201, description = "The new webhook, with its `signing_secret` (shown only here)", body = WebhookOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "The key's role may not do this", body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(input): ApiJson<WebhookIn>,
) -> Result<(StatusCode, Json<WebhookOut>)> {
    let org_id = caller.org_for(&state, input.org_id.as_deref()).await?;
    let (webhook, secret) = create(&state, org_id, input).await?;
    let mut out = WebhookOut::new(webhook, state.secret_box())?;
    out.signing_secret = Some(secret);
    Ok((StatusCode::CREATED, Json(out)))
}

/// Checks and stores a new webhook; returns it with its signing secret, which is shown to
/// the caller once and never again. (The API and the dashboard both create webhooks here;
/// each decides the org: `input.org_id` is not read.)
pub async fn create(state: &AppState, org_id: OrgId, input: WebhookIn) -> Result<(Webhook, String)> {
    let url = WebhookUrl::parse(&input.url, state.target_policy()).map_err(url_error)?;
    check_text(&input.name, "name", MAX_NAME)?;
    check_text(&input.description, "description", MAX_DESCRIPTION)?;
    let event_types = parse_event_types(state, input.event_types)?;
    let filter = parse_filter(input.filter)?;
    let headers = parse_headers(input.headers)?;
    let rate_limit = parse_rate_limit(input.rate_limit)?;
    let ordering = input
        .ordering
        .map(parse_ordering)
        .transpose()?
        .unwrap_or_default();

    let id = WebhookId::new();
    let secret = secrets::new_signing_secret()?;
    let sealed = state.secret_box().seal(secret.as_bytes(), id.as_str())?;
    let headers_ciphertext = state.secret_box().seal_headers(&headers, id.as_str())?;
    let webhook = state
        .store()
        .create_webhook(NewWebhook {
            id,
            org_id,
            name: input.name,
            description: input.description,
            url: url.into_string(),
            event_types,
            filter,
            headers_ciphertext,
            rate_limit,
            ordering,
            secret_ciphertext: sealed,
            secret_last4: secrets::last4(&secret),
            now: now_ms(),
        })
        .await?;
    tracing::info!(webhook.id = %webhook.id, org.id = %webhook.org_id, "webhook created");
    Ok((webhook, secret))
}

/// List the org's webhooks, newest first; deleted ones are left out.
#[utoipa::path(get, path = "/v1/webhooks", operation_id = "list_webhooks", tag = "webhooks",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of webhooks, newest first", body = ListOut<WebhookOut>),
        (status = 400, description = "Invalid paging parameter; `param` names it", body = ErrorBody),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListOut<WebhookOut>>> {
    let org_id = caller.org_for(&state, query.org_id.as_deref()).await?;
    let request = page_request(
        query.limit.as_deref(),
        query.cursor.as_deref(),
        query.before.as_deref(),
    )?;
    let page = state.store().list_webhooks(org_id, request).await?;
    Ok(Json(ListOut::try_from_page(page, |w| {
        WebhookOut::new(w, state.secret_box())
    })?))
}

/// Get one webhook.
#[utoipa::path(get, path = "/v1/webhooks/{id}", operation_id = "get_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), OrgQuery),
    responses(
        (status = 200, description = "The webhook", body = WebhookOut),
        (status = 404, description = "No such webhook in the caller's org", body = ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> Result<Json<WebhookOut>> {
    let scope = caller.scope(query.org_id.as_deref())?;
    let webhook = state
        .store()
        .get_webhook(scope, parse_id(&raw)?)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(Json(WebhookOut::new(webhook, state.secret_box())?))
}

/// Change some fields of a webhook; `event_types` replaces the whole set.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", operation_id = "update_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), OrgQuery),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The updated webhook", body = WebhookOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 404, description = "No such webhook in the caller's org", body = ErrorBody)))]
async fn update_webhook(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> Result<Json<WebhookOut>> {
    let scope = caller.scope(patch.org_id.as_deref().or(query.org_id.as_deref()))?;
    Ok(Json(
        update(&state, scope, &raw, patch, "disabled through the API").await?,
    ))
}

/// Checks and applies a partial update to a webhook the scope can see; `disabled_reason` is
/// what a webhook disabled by this update says (where it was done).
pub async fn update(
    state: &AppState,
    scope: OrgScope,
    raw: &str,
    patch: WebhookPatch,
    disabled_reason: &str,
) -> Result<WebhookOut> {
    let id = parse_id(raw)?;
    let url = match patch.url {
        None => None,
        Some(None) => return Err(ApiError::invalid("invalid_url", "url", "url cannot be null")),
        Some(Some(raw)) => Some(
            WebhookUrl::parse(&raw, state.target_policy())
                .map_err(url_error)?
                .into_string(),
        ),
    };
    if let Some(name) = &patch.name {
        check_text(name, "name", MAX_NAME)?;
    }
    if let Some(description) = &patch.description {
        check_text(description, "description", MAX_DESCRIPTION)?;
    }
    let event_types = match patch.event_types {
        None => None,
        Some(entries) => Some(parse_event_types(state, entries)?),
    };
    let filter = patch.filter.map(parse_filter).transpose()?;
    let headers_ciphertext = match patch.headers {
        None => None,
        Some(headers) => Some(
            state
                .secret_box()
                .seal_headers(&parse_headers(headers)?, id.as_str())?,
        ),
    };
    let rate_limit = patch.rate_limit.map(parse_rate_limit).transpose()?;
    let ordering = patch.ordering.map(parse_ordering).transpose()?;
    let status = match patch.status {
        None => None,
        Some(None) => {
            return Err(ApiError::invalid(
                "invalid_value",
                "status",
                "status must be active or disabled",
            ));
        }
        Some(Some(StatusIn::Active)) => Some((WebhookStatus::Active, None)),
        Some(Some(StatusIn::Disabled)) => Some((WebhookStatus::Disabled, Some(disabled_reason.to_owned()))),
    };
    let changes = WebhookChanges {
        name: patch.name,
        description: patch.description,
        url,
        event_types,
        filter,
        headers_ciphertext,
        rate_limit,
        ordering,
        status,
        now: now_ms(),
    };
    let webhook = state
        .store()
        .update_webhook(scope, id, changes)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    tracing::info!(webhook.id = %webhook.id, webhook.status = webhook.status.as_str(), "webhook updated");
    WebhookOut::new(webhook, state.secret_box())
}

/// Delete a webhook (soft: its delivery history stays queryable).
#[utoipa::path(delete, path = "/v1/webhooks/{id}", operation_id = "delete_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), OrgQuery),
    responses(
        (status = 204, description = "Deleted; its pending deliveries are canceled"),
        (status = 404, description = "No such webhook in the caller's org", body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> Result<StatusCode> {
    delete(&state, caller.scope(query.org_id.as_deref())?, &raw).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Soft-deletes a webhook; its pending deliveries are canceled.
pub async fn delete(state: &AppState, scope: OrgScope, raw: &str) -> Result<()> {
    let id = parse_id(raw)?;
    if !state.store().delete_webhook(scope, id.clone(), now_ms()).await? {
        return Err(ApiError::not_found("webhook"));
    }
    tracing::info!(webhook.id = %id, "webhook deleted");
    Ok(())
}

/// Replace the signing secret. The old one stops signing at once, or keeps signing beside
/// the new one for `expire_previous_in_seconds`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", operation_id = "rotate_webhook_secret", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), OrgQuery),
    request_body(content = Option<RotateIn>),
    responses(
        (status = 200, description = "The new signing secret (shown only here)", body = SigningSecretOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 404, description = "No such webhook in the caller's org", body = ErrorBody)))]
async fn rotate_webhook_secret(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
    OptionalJson(input): OptionalJson<RotateIn>,
) -> Result<Json<SigningSecretOut>> {
    let scope = caller.scope(query.org_id.as_deref())?;
    let overlap = input.unwrap_or_default().expire_previous_in_seconds.unwrap_or(0);
    let secret = rotate(&state, scope, &raw, overlap).await?;
    Ok(Json(SigningSecretOut {
        object: "signing_secret",
        signing_secret: secret,
    }))
}

/// Replaces a webhook's signing secret and returns the new one (shown only this once); the
/// old one keeps signing for `overlap` seconds.
pub async fn rotate(state: &AppState, scope: OrgScope, raw: &str, overlap: u64) -> Result<String> {
    let id = parse_id(raw)?;
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::invalid(
            "invalid_value",
            "expire_previous_in_seconds",
            format!("expire_previous_in_seconds must be at most {MAX_OVERLAP_SECONDS} (7 days)"),
        ));
    }
    let secret = secrets::new_signing_secret()?;
    let sealed = state.secret_box().seal(secret.as_bytes(), id.as_str())?;
    let now = now_ms();
    let overlap_ms = i64::try_from(overlap).unwrap_or(0) * 1000;
    state
        .store()
        .rotate_webhook_secret(
            scope,
            id.clone(),
            SecretRotation {
                ciphertext: sealed,
                last4: secrets::last4(&secret),
                previous_expires_at: (overlap > 0).then_some(now + overlap_ms),
                now,
            },
        )
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    tracing::info!(webhook.id = %id, rotation.overlap_seconds = overlap, "signing secret rotated");
    Ok(secret)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// RFC 3339: re-queue failed deliveries created at or after this time.
    pub since: String,
    /// RFC 3339, default now: … and before this time.
    #[serde(default)]
    pub until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    /// Always `replay`.
    pub object: &'static str,
    /// How many failed deliveries were re-queued.
    pub queued: u64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    /// A catalog type whose `example` is sent as `data` (with that type as `event`), so the
    /// receiver's handler for it runs; omitted: a `webhook.test` event.
    #[serde(default)]
    pub event_type: Option<String>,
}

/// Send a test event to this webhook alone: `webhook.test`, or a catalog type's example.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", operation_id = "test_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), OrgQuery),
    request_body(content = Option<TestIn>, description = "Optional: `{\"event_type\": \"order.filled\"}` sends that type's catalog example"),
    responses(
        (status = 202, description = "A test delivery queued to this webhook alone (never a published event)", body = DeliveryOut),
        (status = 400, description = "`event_type` is not in the catalog, or has no example; `param` is `event_type`", body = ErrorBody),
        (status = 404, description = "No such webhook in the caller's org", body = ErrorBody),
        (status = 415, description = "A body without `Content-Type: application/json`", body = ErrorBody)))]
async fn test_webhook(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
    OptionalJson(input): OptionalJson<TestIn>,
) -> Result<(StatusCode, Json<DeliveryOut>)> {
    let scope = caller.scope(query.org_id.as_deref())?;
    let event_type = input.unwrap_or_default().event_type;
    Ok((
        StatusCode::ACCEPTED,
        Json(send_test(&state, scope, &raw, event_type.as_deref()).await?),
    ))
}

/// What a test send carries: `webhook.test` with a note, or a catalog type with its example.
/// A type without an example is refused rather than sent with made-up data: the point is to
/// run the receiver's handler on a realistic payload (and one that would pass the schema).
fn test_payload(
    state: &AppState,
    webhook_id: &WebhookId,
    event_type: Option<&str>,
) -> Result<(String, Value)> {
    let Some(name) = event_type.filter(|name| *name != TEST_EVENT_TYPE) else {
        let data = serde_json::json!({
            "message": "This is a test event from Herald.",
            "webhook_id": webhook_id,
        });
        return Ok((TEST_EVENT_TYPE.to_owned(), data));
    };
    let info = state
        .catalog()
        .get(name)
        .ok_or_else(|| events::unknown_event_type("event_type", name))?;
    let example = info.example.clone().ok_or_else(|| {
        ApiError::invalid(
            "invalid_value",
            "event_type",
            format!(
                "`{name}` has no example in the catalog to send: give it an `example` in HERALD_CATALOG, or send a test without `event_type`"
            ),
        )
    })?;
    Ok((info.name.clone(), example))
}

/// Publishes a test event to this webhook alone and returns its delivery.
pub async fn send_test(
    state: &AppState,
    scope: OrgScope,
    raw: &str,
    event_type: Option<&str>,
) -> Result<DeliveryOut> {
    let webhook = state
        .store()
        .get_webhook(scope, parse_id(raw)?)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    let (event_type, data) = test_payload(state, &webhook.id, event_type)?;
    let data =
        serde_json::value::to_raw_value(&data).map_err(|e| ApiError::internal("encoding a test event", e))?;
    let published = events::publish(
        state,
        webhook.org_id.clone(),
        &event_type,
        &data,
        None,
        Some(webhook.id.clone()),
    )
    .await?;
    let event = match published {
        Published::Created(event) | Published::Duplicate(event) => event,
    };
    let filter = DeliveryFilter {
        org_id: Some(webhook.org_id),
        event_id: Some(event.id.to_string()),
        ..DeliveryFilter::default()
    };
    let page = state
        .store()
        .list_deliveries(
            filter,
            PageRequest {
                limit: 1,
                position: Position::First,
            },
        )
        .await?;
    let delivery = page
        .items
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("test event", "no delivery was created"))?;
    DeliveryOut::from_row(delivery)
}

/// Re-queue this webhook's failed deliveries created in `[since, until)`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", operation_id = "replay_webhook", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), OrgQuery),
    request_body = ReplayIn,
    responses(
        (status = 202, description = "How many failed deliveries were queued again", body = ReplayOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 404, description = "No such webhook in the caller's org", body = ErrorBody)))]
async fn replay_webhook(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
    ApiJson(input): ApiJson<ReplayIn>,
) -> Result<(StatusCode, Json<ReplayOut>)> {
    let scope = caller.scope(query.org_id.as_deref())?;
    let now = now_ms();
    let since = time_param(Some(&input.since), "since")?.unwrap_or(now);
    let until = time_param(input.until.as_deref(), "until")?;
    let queued = replay(&state, scope, &raw, since, until).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayOut {
            object: "replay",
            queued,
        }),
    ))
}

/// Re-queues the webhook's failed deliveries created in `[since, until)` (`until` defaults
/// to now) and says how many.
pub async fn replay(
    state: &AppState,
    scope: OrgScope,
    raw: &str,
    since: Millis,
    until: Option<Millis>,
) -> Result<u64> {
    let id = parse_id(raw)?;
    let now = now_ms();
    let until = until.unwrap_or(now + 1);
    if since >= until {
        return Err(ApiError::invalid(
            "invalid_value",
            "since",
            "since must be before until",
        ));
    }
    let queued = state
        .store()
        .replay_failed(scope, id.clone(), since, until, now)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    if queued > 0 {
        state.wake_dispatcher();
    }
    tracing::info!(webhook.id = %id, replay.queued = queued, "failed deliveries re-queued");
    Ok(queued)
}
