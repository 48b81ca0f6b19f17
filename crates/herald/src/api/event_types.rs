//! `GET /v1/webhooks/event-types`: the catalog tenants subscribe to.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ErrorBody, Result};
use super::pagination::ListOut;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_event_types))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeOut {
    /// Always `event_type`.
    pub object: &'static str,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The first segment of the type.
    pub group: String,
    pub name: String,
    pub description: String,
    /// Published by Herald itself about its delivery system (`webhook.disabled`, …); a
    /// webhook receives these only when its `event_types` name them.
    pub operational: bool,
    /// A realistic `data` for this type (omitted when the catalog has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub example: Option<serde_json::Value>,
    /// The JSON Schema (draft 2020-12) that a published event's `data` must match (omitted
    /// when the type has none: its data is not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
}

/// The event types this deployment publishes.
#[utoipa::path(get, path = "/v1/webhooks/event-types", operation_id = "list_event_types", tag = "webhooks",
    responses(
        (status = 200, description = "The event-type catalog", body = ListOut<EventTypeOut>),
        (status = 401, description = "Missing or invalid credentials", body = ErrorBody),
        (status = 403, description = "The key's role may not do this", body = ErrorBody)))]
async fn list_event_types(
    State(state): State<AppState>,
    TenantCaller(_caller): TenantCaller,
) -> Result<Json<ListOut<EventTypeOut>>> {
    let data = state
        .catalog()
        .types()
        .iter()
        .map(|t| EventTypeOut {
            object: "event_type",
            group: t.group().to_owned(),
            event_type: t.name.clone(),
            name: t.display_name.clone(),
            description: t.description.clone(),
            operational: t.operational,
            example: t.example.clone(),
            schema: t.schema.as_ref().map(|schema| schema.raw().clone()),
        })
        .collect();
    Ok(Json(ListOut::all(data)))
}
