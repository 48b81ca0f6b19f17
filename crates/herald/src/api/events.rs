//! `POST /v1/events` and `GET /v1/events/{id}`: publishing. An event and all its deliveries
//! are written in one transaction, and the 202 is sent only after that commit is durable.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, ErrorBody, Result};
use super::extract::{ApiJson, ApiQuery, OrgQuery, PathId};
use crate::domain::event_types::{EventTypeInfo, TEST_EVENT_TYPE, is_operational};
use crate::domain::ids::{EventId, OrgId, WebhookId};
use crate::domain::json;
use crate::domain::time::{format_ms, now_ms};
use crate::store::{Event, NewEvent, Published};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_event))
        .routes(routes!(publish_batch))
        .routes(routes!(get_event))
}

/// Caller-side event ids are remembered this long.
const DEDUP_WINDOW_MS: i64 = 24 * 3_600_000;
const MAX_SOURCE_ID: usize = 255;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// A catalog type, e.g. `order.filled`.
    pub event_type: String,
    /// The event's data: a JSON object, at most `HERALD_MAX_PAYLOAD_BYTES`.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Admin keys only: the org the event belongs to.
    #[serde(default)]
    pub org_id: Option<String>,
    /// Your own id for this event; a repeat within 24 h returns the original event.
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    pub id: EventId,
    /// Always `event`.
    pub object: &'static str,
    pub event_type: String,
    pub created_at: String,
    /// How many deliveries the event fanned out to.
    pub deliveries: i64,
    /// The `id` you gave when publishing, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// The event's data (on `GET` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Box<RawValue>>,
}

impl EventOut {
    fn new(event: Event, with_data: bool) -> Self {
        let data = with_data.then(|| data_of(&event.payload)).flatten();
        Self {
            id: event.id,
            object: "event",
            event_type: event.event_type,
            created_at: format_ms(event.created_at),
            deliveries: event.delivery_count,
            source_id: event.source_id,
            data,
        }
    }
}

/// The `data` member of a stored wire payload.
fn data_of(payload: &str) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct Wire {
        data: Box<RawValue>,
    }
    serde_json::from_str::<Wire>(payload).ok().map(|w| w.data)
}

/// The exact body every delivery of this event sends.
fn wire_payload(id: &EventId, event_type: &str, created_at: i64, data: &RawValue) -> Result<String> {
    let event_type =
        serde_json::to_string(event_type).map_err(|e| ApiError::internal("encoding an event", e))?;
    Ok(format!(
        r#"{{"id":"{id}","event":{event_type},"timestamp":"{}","data":{}}}"#,
        format_ms(created_at),
        data.get()
    ))
}

/// The event as stored: its wire payload made once, here.
fn new_event(
    state: &AppState,
    org_id: OrgId,
    event_type: &str,
    data: &RawValue,
    source_id: Option<String>,
    only_webhook: Option<WebhookId>,
) -> Result<NewEvent> {
    let id = EventId::new();
    let now = now_ms();
    let payload = wire_payload(&id, event_type, now, data)?;
    Ok(NewEvent {
        id,
        org_id,
        event_type: event_type.to_owned(),
        payload,
        source_id,
        dedup_after: now - DEDUP_WINDOW_MS,
        only_webhook,
        now,
        lease: Some(state.engine().offer()),
    })
}

/// Counts what was stored. (The store told the delivery engine at the commit.)
fn published(published: &[Published]) {
    let created = published
        .iter()
        .filter(|one| matches!(one, Published::Created(_)))
        .count();
    metrics::counter!("herald_events_published_total").increment(created as u64);
}

/// Stores an event with its deliveries (the store hands them to the delivery engine). Shared
/// by publishing and the webhook test route.
pub async fn publish(
    state: &AppState,
    org_id: OrgId,
    event_type: &str,
    data: &RawValue,
    source_id: Option<String>,
    only_webhook: Option<WebhookId>,
) -> Result<Published> {
    let event = new_event(state, org_id, event_type, data, source_id, only_webhook)?;
    let stored = state.store().publish(event).await?;
    published(std::slice::from_ref(&stored));
    Ok(stored)
}

/// 400 `unknown_event_type` for `name` in `param`: publishing and test sends say it alike.
pub(super) fn unknown_event_type(param: impl Into<String>, name: &str) -> ApiError {
    ApiError::invalid(
        "unknown_event_type",
        param,
        format!("`{name}` is not an event type in the catalog (see GET /v1/webhooks/event-types)"),
    )
}

/// Checks one event of a request against the contract; `at` prefixes every `param` (`""`, or
/// `events[3].` in a batch). The org is resolved by the caller.
fn check(state: &AppState, input: &EventIn, at: &str) -> Result<()> {
    if is_operational(&input.event_type) {
        return Err(ApiError::invalid(
            "reserved_event_type",
            format!("{at}event_type"),
            format!(
                "`{}` is an operational event type: only Herald publishes it",
                input.event_type
            ),
        ));
    }
    let Some(event_type) = state.catalog().get(&input.event_type) else {
        return Err(unknown_event_type(format!("{at}event_type"), &input.event_type));
    };
    if !input.data.get().trim_start().starts_with('{') {
        return Err(ApiError::invalid(
            "invalid_value",
            format!("{at}data"),
            "data must be a JSON object",
        ));
    }
    let limit = state.config().max_payload_bytes;
    if input.data.get().len() > limit {
        return Err(ApiError::payload_too_large(limit).with_param(format!("{at}data")));
    }
    if json::depth(input.data.get()) > json::MAX_DEPTH {
        return Err(ApiError::invalid(
            "invalid_value",
            format!("{at}data"),
            format!(
                "data is nested more than {} levels deep (objects and arrays inside each other)",
                json::MAX_DEPTH
            ),
        ));
    }
    if event_type.has_schema() {
        check_schema(event_type, &input.data, at)?;
    }
    if let Some(id) = &input.id
        && (id.is_empty() || id.chars().count() > MAX_SOURCE_ID)
    {
        return Err(ApiError::invalid(
            "invalid_value",
            format!("{at}id"),
            format!("id must be 1 to {MAX_SOURCE_ID} characters"),
        ));
    }
    Ok(())
}

/// Checks `data` against its type's schema (the caller knows there is one: only then is
/// `data` parsed). The `param` is the failing path in dot form, array items by their index:
/// `data.items.0.price`, or `events[3].data.amount` in a batch.
fn check_schema(event_type: &EventTypeInfo, data: &RawValue, at: &str) -> Result<()> {
    let parsed: serde_json::Value = serde_json::from_str(data.get())
        .map_err(|e| ApiError::internal("reading event data already parsed once", e))?;
    event_type.check(&parsed).map_err(|violation| {
        let param = format!("{at}{}", violation.path_under("data"));
        ApiError::invalid(
            "invalid_payload",
            param.clone(),
            format!(
                "`{param}` does not match the schema of `{}`: {}",
                event_type.name, violation.message
            ),
        )
    })
}

/// Publish an event to every subscribed, active webhook of the org.
#[utoipa::path(post, path = "/v1/events", operation_id = "create_event", tag = "events",
    request_body = EventIn,
    responses(
        (status = 202, description = "Stored with its deliveries", body = EventOut),
        (status = 200, description = "A repeat of a caller id: the original event", body = EventOut),
        (status = 400, description = "Invalid event, e.g. an unknown event type; `param` names the field. `data` failing its type's schema: `invalid_payload`, `param` the failing path (`data.amount`)", body = ErrorBody),
        (status = 413, description = "`data` is larger than `HERALD_MAX_PAYLOAD_BYTES`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: the database cannot take the write now (its disk full, read-only, unreachable); retry after `Retry-After` seconds", body = ErrorBody)))]
async fn publish_event(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(input): ApiJson<EventIn>,
) -> Result<(StatusCode, Json<EventOut>)> {
    let org_id = caller.org_for(&state, input.org_id.as_deref()).await?;
    check(&state, &input, "")?;
    match publish(&state, org_id, &input.event_type, &input.data, input.id, None).await? {
        Published::Created(event) => {
            tracing::debug!(event.id = %event.id, event.type = %event.event_type, deliveries = event.delivery_count, "event published");
            Ok((StatusCode::ACCEPTED, Json(EventOut::new(event, false))))
        }
        Published::Duplicate(event) => Ok((StatusCode::OK, Json(EventOut::new(event, false)))),
    }
}

/// The path of a batch publish, which takes a larger body than any other route.
pub const BATCH_PATH: &str = "/v1/events/batch";
/// The largest batch body.
pub const BATCH_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The most events in one batch.
const MAX_BATCH: usize = 1_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    /// 1 to 1,000 events, each of the single publish's shape.
    pub events: Vec<EventIn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchOut {
    /// Always `list`.
    pub object: &'static str,
    /// One event per item, in order; a repeated caller id gives the original event.
    pub data: Vec<EventOut>,
}

/// Publish up to 1,000 events in one durable commit: all are stored, or none.
#[utoipa::path(post, path = "/v1/events/batch", operation_id = "create_event_batch", tag = "events",
    request_body = BatchIn,
    responses((status = 202, description = "Every event stored, with its deliveries, in one commit", body = BatchOut),
        (status = 400, description = "An invalid item (`param` names it, e.g. `events[3].event_type`, or `events[3].data.amount` for `invalid_payload`), or not 1 to 1,000 events; nothing was stored", body = ErrorBody),
        (status = 413, description = "The body is over 16 MiB, or an item's `data` over the payload limit", body = ErrorBody),
        (status = 503, description = "`store_unavailable`: the database cannot take the write now (its disk full, read-only, unreachable); retry after `Retry-After` seconds", body = ErrorBody)))]
async fn publish_batch(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    ApiJson(input): ApiJson<BatchIn>,
) -> Result<(StatusCode, Json<BatchOut>)> {
    if input.events.is_empty() || input.events.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "invalid_value",
            "events",
            format!(
                "events must hold 1 to {MAX_BATCH} events; it holds {}",
                input.events.len()
            ),
        ));
    }
    // Each org named is resolved once, however many items name it.
    let mut orgs: HashMap<Option<String>, OrgId> = HashMap::new();
    let mut stored = Vec::with_capacity(input.events.len());
    for (index, item) in input.events.iter().enumerate() {
        let at = format!("events[{index}].");
        let org_id = match orgs.get(&item.org_id) {
            Some(org) => org.clone(),
            None => {
                let org = caller
                    .org_for(&state, item.org_id.as_deref())
                    .await
                    .map_err(|e| match e.param {
                        Some(_) => e.with_param(format!("{at}org_id")),
                        None => e,
                    })?;
                orgs.insert(item.org_id.clone(), org.clone());
                org
            }
        };
        check(&state, item, &at)?;
        stored.push(new_event(
            &state,
            org_id,
            &item.event_type,
            &item.data,
            item.id.clone(),
            None,
        )?);
    }
    let answers = state.store().publish_batch(stored).await?;
    published(&answers);
    tracing::debug!(events = answers.len(), "event batch published");
    let data = answers
        .into_iter()
        .map(|answer| match answer {
            Published::Created(event) | Published::Duplicate(event) => EventOut::new(event, false),
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(BatchOut { object: "list", data })))
}

/// Get an event, with its data.
#[utoipa::path(get, path = "/v1/events/{id}", operation_id = "get_event", tag = "events",
    params(("id" = String, Path, description = "Event id"), OrgQuery),
    responses(
        (status = 200, description = "The event", body = EventOut),
        (status = 404, description = "No such event in the caller's org", body = ErrorBody)))]
async fn get_event(
    State(state): State<AppState>,
    TenantCaller(caller): TenantCaller,
    PathId(raw): PathId,
    ApiQuery(query): ApiQuery<OrgQuery>,
) -> Result<Json<EventOut>> {
    let scope = caller.scope(query.org_id.as_deref())?;
    let id = EventId::parse(&raw).ok_or_else(|| ApiError::not_found("event"))?;
    let event = state
        .store()
        .get_event(scope, id)
        .await?
        // A test send is no published event (its row is stored as `webhook.test`).
        .filter(|event| event.event_type != TEST_EVENT_TYPE)
        .ok_or_else(|| ApiError::not_found("event"))?;
    Ok(Json(EventOut::new(event, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_payload_has_id_event_timestamp_and_the_data_verbatim() {
        let id = EventId::parse("evt_01jd5k3m6x7y8z9a0b1c2d3e4f").expect("id");
        let data = RawValue::from_string(r#"{"qty": 1.50, "sym":"AAPL"}"#.to_owned()).expect("raw");
        let wire = wire_payload(&id, "order.filled", 1_614_265_330_000, &data).expect("payload");
        assert_eq!(
            wire,
            r#"{"id":"evt_01jd5k3m6x7y8z9a0b1c2d3e4f","event":"order.filled","timestamp":"2021-02-25T15:02:10.000Z","data":{"qty": 1.50, "sym":"AAPL"}}"#
        );
        assert_eq!(
            data_of(&wire).map(|d| d.get().to_owned()),
            Some(data.get().to_owned())
        );
    }
}
