//! `/v1/webhooks/events`: one delivery event per (event, webhook), its attempts, and retry.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, ErrorBody, Result};
use super::extract::{ApiQuery, NoFields, OptionalJson, OrgQuery, PathId};
use super::pagination::{ListOut, page_request};
use crate::domain::ids::{AttemptId, DeliveryId, EventId, WebhookId};
use crate::domain::time::{format_ms, now_ms, parse_rfc3339};
use crate::store::{Attempt, Delivery, DeliveryFilter, DeliveryStatus, OrgScope, Requeue};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(list_attempts))
        .routes(routes!(retry_delivery))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    pub id: DeliveryId,
    /// Always `delivery_event`.
    pub object: &'static str,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_type: String,
    /// `pending`, `delivered`, `failed` (retries exhausted) or `canceled` (webhook deleted).
    pub status: &'static str,
    pub attempt_count: i64,
    /// When the next attempt is due; only while pending (null while its webhook is disabled).
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    pub last_response_status: Option<i64>,
    /// The last attempt's error class.
    pub last_error: Option<String>,
    /// What went wrong, in words.
    pub last_error_message: Option<String>,
    pub delivered_at: Option<String>,
    /// The JSON body sent.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub created_at: String,
    pub updated_at: String,
}

impl DeliveryOut {
    pub fn from_row(d: Delivery) -> Result<Self> {
        let payload =
            RawValue::from_string(d.payload).map_err(|e| ApiError::internal("a stored payload", e))?;
        Ok(Self {
            id: d.id,
            object: "delivery_event",
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status.as_str(),
            attempt_count: d.attempt_count,
            next_attempt_at: d.next_attempt_at.map(format_ms),
            last_attempt_at: d.last_attempt_at.map(format_ms),
            last_response_status: d.last_response_status,
            last_error: d.last_error.map(|class| class.as_str().to_owned()),
            last_error_message: d.last_error_message,
            delivered_at: d.delivered_at.map(format_ms),
            payload,
            created_at: format_ms(d.created_at),
            updated_at: format_ms(d.updated_at),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    pub id: AttemptId,
    /// Always `delivery_attempt`.
    pub object: &'static str,
    pub attempt_number: i64,
    pub started_at: String,
    pub duration_ms: i64,
    /// Null on a transport error.
    pub response_status: Option<i64>,
    /// The first 16 KiB of the answer.
    pub response_body: Option<String>,
    pub response_body_truncated: bool,
    /// `timeout`, `connect`, `dns`, `tls`, `blocked_address`, `redirect` or `http_status`; null on success.
    pub error: Option<String>,
    /// What went wrong, in words (for `blocked_address`, which setting allows the address).
    pub error_message: Option<String>,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id,
            object: "delivery_attempt",
            attempt_number: a.attempt_number,
            started_at: format_ms(a.started_at),
            duration_ms: a.duration_ms,
            response_status: a.response_status,
            response_body: a.response_body,
            response_body_truncated: a.response_body_truncated,
            error: a.error.map(|class| class.as_str().to_owned()),
            error_message: a.error_message,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
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
    pub webhook_id: Option<String>,
    /// `pending`, `delivered`, `failed` or `canceled`.
    pub status: Option<String>,
    pub event_type: Option<String>,
    /// RFC 3339.
    pub created_after: Option<String>,
    /// RFC 3339.
    pub created_before: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetryOut {
    /// Always `delivery_retry`.
    pub object: &'static str,
    pub id: DeliveryId,
    /// Always `queued`.
    pub status: &'static str,
}

/// An optional RFC 3339 parameter, as epoch milliseconds.
pub fn time_param(raw: Option<&str>, param: &'static str) -> Result<Option<i64>> {
    raw.map(|s| {
        parse_rfc3339(s).ok_or_else(|| {
            ApiError::invalid(
                "invalid_value",
                param,
                format!("{param} must be an RFC 3339 time like 2026-01-31T12:00:00Z"),
            )
        })
    })
    .transpose()
}

pub fn parse_id(raw: &str) -> Result<DeliveryId> {
    DeliveryId::parse(raw).ok_or_else(|| ApiError::not_found("delivery event"))
}

/// List delivery events, newest first.
#[utoipa::path(get, path = "/v1/webhooks/events", operation_id = "list_delivery_events", tag = "deliveries",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "One page of delivery events, newest first", body = ListOut<DeliveryOut>),
        (status = 400, description = "Invalid filter or paging parameter; `param` names it", body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Result<Json<ListOut<DeliveryOut>>> {
    let org_id = caller.org_for(&state, query.org_id.as_deref()).await?;
    let request = page_request(
        query.limit.as_deref(),
        query.cursor.as_deref(),
        query.before.as_deref(),
    )?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "invalid_value",
                    "status",
                    "status must be pending, delivered, failed or canceled",
                )
            })
        })
        .transpose()?;
    let webhook_id = query
        .webhook_id
        .map(|w| {
            WebhookId::parse(&w).map(|id| id.to_string()).ok_or_else(|| {
                ApiError::invalid("invalid_value", "webhook_id", "webhook_id is not a webhook id")
            })
        })
        .transpose()?;
    let filter = DeliveryFilter {
        org_id: Some(org_id),
        event_id: None,
        webhook_id,
        status,
        event_type: query.event_type,
        created_after: time_param(query.created_after.as_deref(), "created_after")?,
        created_before: time_param(query.created_before.as_deref(), "created_before")?,
    };
    let page = state.store().list_deliveries(filter, request).await?;
    Ok(Json(ListOut::try_from_page(page, DeliveryOut::from_row)?))
}

/// Get one delivery event, with the payload sent.
#[utoipa::path(get, path = "/v1/webhooks/events/{id}", operation_id = "get_delivery_event", tag = "deliveries",
    params(("id" = String, Path, description = "Delivery event id"), OrgQuery),
    responses(
        (status = 200, description = "The delivery event", body = DeliveryOut),
        (status = 404, description = "No such delivery event in the caller's org", body = ErrorBody)))]
async fn get_delivery(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> Result<Json<DeliveryOut>> {
    let scope = caller.scope(query.org_id.as_deref())?;
    let delivery = state
        .store()
        .get_delivery(scope, parse_id(&raw)?)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery event"))?;
    Ok(Json(DeliveryOut::from_row(delivery)?))
}

/// A delivery event's attempts, oldest first.
#[utoipa::path(get, path = "/v1/webhooks/events/{id}/attempts", operation_id = "list_delivery_attempts", tag = "deliveries",
    params(("id" = String, Path, description = "Delivery event id"), OrgQuery),
    responses(
        (status = 200, description = "Its attempts, oldest first", body = ListOut<AttemptOut>),
        (status = 404, description = "No such delivery event in the caller's org", body = ErrorBody)))]
async fn list_attempts(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> Result<Json<ListOut<AttemptOut>>> {
    let scope = caller.scope(query.org_id.as_deref())?;
    let id = parse_id(&raw)?;
    state
        .store()
        .get_delivery(scope, id.clone())
        .await?
        .ok_or_else(|| ApiError::not_found("delivery event"))?;
    let attempts = state.store().list_attempts(id).await?;
    Ok(Json(ListOut::all(
        attempts.into_iter().map(AttemptOut::from).collect(),
    )))
}

/// Send a delivery again now, with a fresh retry cycle; a delivered one is sent again.
#[utoipa::path(post, path = "/v1/webhooks/events/{id}/retry", operation_id = "retry_delivery_event", tag = "deliveries",
    params(("id" = String, Path, description = "Delivery event id"), OrgQuery),
    responses(
        (status = 202, description = "Queued for an attempt now", body = RetryOut),
        (status = 404, description = "No such delivery event in the caller's org", body = ErrorBody),
        (status = 409, description = "The delivery is canceled (`delivery_canceled`)", body = ErrorBody),
        (status = 415, description = "A body without `Content-Type: application/json`", body = ErrorBody)))]
async fn retry_delivery(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
    _: OptionalJson<NoFields>,
) -> Result<(StatusCode, Json<RetryOut>)> {
    let scope = caller.scope(query.org_id.as_deref())?;
    let id = retry(&state, scope, &raw).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RetryOut {
            object: "delivery_retry",
            id,
            status: "queued",
        }),
    ))
}

/// Queues a delivery for another attempt now, with a fresh retry cycle.
pub async fn retry(state: &AppState, scope: OrgScope, raw: &str) -> Result<DeliveryId> {
    let id = parse_id(raw)?;
    match state
        .store()
        .requeue_delivery(scope, id.clone(), now_ms())
        .await?
    {
        Requeue::NotFound => Err(ApiError::not_found("delivery event")),
        Requeue::Canceled => Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery_canceled",
            "this delivery was canceled (its webhook was deleted) and cannot be retried",
        )),
        Requeue::Queued => {
            state.wake_dispatcher();
            tracing::info!(delivery.id = %id, "delivery re-queued");
            Ok(id)
        }
    }
}
