//! Admin routes for provisioning tenants over HTTP, the same operations as
//! `herald orgs …` and `herald keys …`: a platform adds, lists, changes and erases tenants
//! and their keys from its own back office, not from a shell on the Herald host.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::AdminCaller;
use super::error::{ApiError, ErrorBody, Result};
use super::extract::{ApiJson, ApiQuery, PathId};
use super::pagination::{ListOut, page_request};
use crate::accounts::{self, AccountError, CreatedKey, KeyOut, OrgPatch};
use crate::domain::ids::OrgId;
use crate::domain::time::{format_ms, now_ms};
use crate::store::{Org, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org, list_orgs))
        .routes(routes!(get_org, update_org, erase_org))
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Store(e) => e.into(),
            AccountError::Secrets(e) => e.into(),
            AccountError::UnknownOrg(raw) => {
                ApiError::invalid("unknown_org", "org_id", format!("no org `{raw}`"))
            }
            AccountError::InvalidName | AccountError::InvalidKeyName => {
                ApiError::invalid("invalid_value", "name", e.to_string())
            }
            AccountError::InvalidRetention => ApiError::invalid("invalid_value", "retention", e.to_string()),
            AccountError::UnknownKey(_) => ApiError::not_found("API key"),
            AccountError::LastAdminKey(_) => {
                ApiError::new(StatusCode::CONFLICT, "last_admin_key", e.to_string())
            }
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgIn {
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatchIn {
    #[serde(default)]
    pub name: Option<String>,
    /// A duration of at least `1s` (`"90s"`, `"12h"`, `"7d"`); `null` = `HERALD_RETENTION`.
    #[serde(default, deserialize_with = "super::webhooks::nullable")]
    #[schema(value_type = Option<String>)]
    pub retention: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgOut {
    pub id: OrgId,
    /// Always `org`.
    pub object: &'static str,
    pub name: String,
    /// How long finished events are kept (`"7d"`); `null` = `HERALD_RETENTION`.
    pub retention: Option<String>,
    pub created_at: String,
}

impl From<Org> for OrgOut {
    fn from(o: Org) -> Self {
        Self {
            id: o.id,
            object: "org",
            name: o.name,
            retention: o.retention_ms.map(accounts::show_retention),
            created_at: format_ms(o.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrgListQuery {
    // A string, parsed by `page_request`, so a bad value gets the contract's 400
    // `invalid_limit`; the OpenAPI document shows the integer it must be.
    /// 1–100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// A `next_cursor`: older items.
    pub cursor: Option<String>,
    /// A `prev_cursor`: newer items.
    pub before: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleIn {
    Admin,
    Tenant,
    Investor,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIn {
    pub org_id: String,
    pub role: RoleIn,
    /// What the key is for, 1 to 200 characters.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeyListQuery {
    /// Only this org's keys.
    pub org_id: Option<String>,
    /// 1–100, default 20.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// A `next_cursor`: older items.
    pub cursor: Option<String>,
    /// A `prev_cursor`: newer items.
    pub before: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyOut {
    /// Always `api_key`.
    pub object: &'static str,
    #[serde(flatten)]
    pub key: CreatedKey,
}

/// Create an org (admin).
#[utoipa::path(post, path = "/v1/orgs", operation_id = "create_org", tag = "admin",
    request_body = OrgIn,
    responses(
        (status = 201, description = "The new org", body = OrgOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 403, description = "The key's role may not do this", body = ErrorBody)))]
async fn create_org(
    State(state): State<AppState>,
    AdminCaller(_caller): AdminCaller,
    ApiJson(input): ApiJson<OrgIn>,
) -> Result<(StatusCode, Json<OrgOut>)> {
    let org = accounts::create_org(state.store(), &input.name).await?;
    tracing::info!(org.id = %org.id, "org created");
    Ok((StatusCode::CREATED, Json(org.into())))
}

/// List orgs, newest first (admin).
#[utoipa::path(get, path = "/v1/orgs", operation_id = "list_orgs", tag = "admin",
    params(OrgListQuery),
    responses(
        (status = 200, description = "One page of orgs, newest first", body = ListOut<OrgOut>),
        (status = 403, description = "The key's role may not do this", body = ErrorBody)))]
async fn list_orgs(
    State(state): State<AppState>,
    AdminCaller(_caller): AdminCaller,
    ApiQuery(query): ApiQuery<OrgListQuery>,
) -> Result<Json<ListOut<OrgOut>>> {
    let request = page_request(
        query.limit.as_deref(),
        query.cursor.as_deref(),
        query.before.as_deref(),
    )?;
    let page = state.store().list_orgs(request).await?;
    Ok(Json(ListOut::from_page(page, OrgOut::from)))
}

/// Get an org (admin).
#[utoipa::path(get, path = "/v1/orgs/{id}", operation_id = "get_org", tag = "admin",
    params(("id" = String, Path, description = "Org id")),
    responses(
        (status = 200, description = "The org", body = OrgOut),
        (status = 404, description = "No such org", body = ErrorBody)))]
async fn get_org(
    State(state): State<AppState>,
    AdminCaller(_caller): AdminCaller,
    PathId(raw): PathId,
) -> Result<Json<OrgOut>> {
    let id = OrgId::parse(&raw).ok_or_else(|| ApiError::not_found("org"))?;
    let org = state
        .store()
        .get_org(id)
        .await?
        .ok_or_else(|| ApiError::not_found("org"))?;
    Ok(Json(org.into()))
}

/// Create an API key for an org (admin). The secret is in this response only.
#[utoipa::path(post, path = "/v1/keys", operation_id = "create_key", tag = "admin",
    request_body = KeyIn,
    responses(
        (status = 201, description = "The new key, with its secret (shown only here)", body = CreatedKeyOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 403, description = "The key's role may not do this", body = ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(input): ApiJson<KeyIn>,
) -> Result<(StatusCode, Json<CreatedKeyOut>)> {
    let role = match input.role {
        RoleIn::Admin => Role::Admin,
        RoleIn::Tenant => Role::Tenant,
        RoleIn::Investor => Role::Investor,
    };
    let key = accounts::create_key(state.store(), &input.org_id, role, input.name.as_deref()).await?;
    tracing::info!(key.id = %key.id, org.id = %key.org_id, key.role = key.role, by = %caller.key_id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyOut {
            object: "api_key",
            key,
        }),
    ))
}

/// Change an org's name or retention (admin).
#[utoipa::path(patch, path = "/v1/orgs/{id}", operation_id = "update_org", tag = "admin",
    params(("id" = String, Path, description = "Org id")),
    request_body = OrgPatchIn,
    responses(
        (status = 200, description = "The org as changed", body = OrgOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 403, description = "The key's role may not do this", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody)))]
async fn update_org(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    PathId(raw): PathId,
    ApiJson(input): ApiJson<OrgPatchIn>,
) -> Result<Json<OrgOut>> {
    let changes = OrgPatch {
        name: input.name.as_deref(),
        retention: input.retention.as_ref().map(Option::as_deref),
    }
    .parse()?;
    let id = OrgId::parse(&raw).ok_or_else(|| ApiError::not_found("org"))?;
    let org = state
        .store()
        .update_org(id, changes)
        .await?
        .ok_or_else(|| ApiError::not_found("org"))?;
    tracing::info!(org.id = %org.id, by = %caller.key_id, "org updated");
    Ok(Json(org.into()))
}

/// Erase an org (admin): its keys stop working and everything in it answers 404 at once;
/// its rows are deleted in the background.
#[utoipa::path(delete, path = "/v1/orgs/{id}", operation_id = "erase_org", tag = "admin",
    params(("id" = String, Path, description = "Org id")),
    responses(
        (status = 204, description = "Erased"),
        (status = 403, description = "The key's role may not do this", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 409, description = "`org_in_use`: the org holds the caller's own key", body = ErrorBody)))]
async fn erase_org(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    PathId(raw): PathId,
) -> Result<StatusCode> {
    let id = OrgId::parse(&raw).ok_or_else(|| ApiError::not_found("org"))?;
    if id == caller.org_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "org_in_use",
            "this org holds the key making the request; erase it with an admin key of another org",
        ));
    }
    if !state.store().erase_org(id.clone(), now_ms()).await? {
        return Err(ApiError::not_found("org"));
    }
    state.key_cache().forget_org(&id);
    tracing::info!(org.id = %id, by = %caller.key_id, "org erased");
    Ok(StatusCode::NO_CONTENT)
}

/// List API keys, newest first (admin). Revoked keys are not listed; secrets never are.
#[utoipa::path(get, path = "/v1/keys", operation_id = "list_keys", tag = "admin",
    params(KeyListQuery),
    responses(
        (status = 200, description = "One page of keys, newest first", body = ListOut<KeyOut>),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 403, description = "The key's role may not do this", body = ErrorBody)))]
async fn list_keys(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiQuery(query): ApiQuery<KeyListQuery>,
) -> Result<Json<ListOut<KeyOut>>> {
    let request = page_request(
        query.limit.as_deref(),
        query.cursor.as_deref(),
        query.before.as_deref(),
    )?;
    let org = match query.org_id.as_deref() {
        Some(raw) => Some(caller.org_for(&state, Some(raw)).await?),
        None => None,
    };
    let page = state.store().list_api_keys(org, request).await?;
    Ok(Json(ListOut::from_page(page, KeyOut::from)))
}

/// Revoke an API key (admin): it is refused within a second on every node.
#[utoipa::path(delete, path = "/v1/keys/{id}", operation_id = "revoke_key", tag = "admin",
    params(("id" = String, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "The key's role may not do this", body = ErrorBody),
        (status = 404, description = "No such active key", body = ErrorBody),
        (status = 409, description = "`last_admin_key`: the last active admin key", body = ErrorBody)))]
async fn revoke_key(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    PathId(raw): PathId,
) -> Result<StatusCode> {
    let id = accounts::revoke_key(state.store(), &raw, now_ms()).await?;
    state.key_cache().forget(std::slice::from_ref(&id));
    tracing::info!(key.id = %id, by = %caller.key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
