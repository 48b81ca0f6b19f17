//! Admin routes for provisioning tenants over HTTP, the same operations as
//! `herald orgs create` and `herald keys create`: a platform adds tenants from its own
//! back office, not from a shell on the Herald host.

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
use crate::accounts::{self, AccountError, CreatedKey};
use crate::domain::ids::OrgId;
use crate::domain::time::format_ms;
use crate::store::{Org, Role};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_org, list_orgs))
        .routes(routes!(get_org))
        .routes(routes!(create_key))
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Store(e) => e.into(),
            AccountError::Secrets(e) => e.into(),
            AccountError::UnknownOrg(raw) => {
                ApiError::invalid("unknown_org", "org_id", format!("no org `{raw}`"))
            }
            AccountError::InvalidName => ApiError::invalid("invalid_value", "name", e.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgIn {
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgOut {
    pub id: OrgId,
    /// Always `org`.
    pub object: &'static str,
    pub name: String,
    pub created_at: String,
}

impl From<Org> for OrgOut {
    fn from(o: Org) -> Self {
        Self {
            id: o.id,
            object: "org",
            name: o.name,
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
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyOut {
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
        (status = 201, description = "The new key, with its secret (shown only here)", body = KeyOut),
        (status = 400, description = "Invalid request; `param` names the field", body = ErrorBody),
        (status = 403, description = "The key's role may not do this", body = ErrorBody)))]
async fn create_key(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    ApiJson(input): ApiJson<KeyIn>,
) -> Result<(StatusCode, Json<KeyOut>)> {
    let role = match input.role {
        RoleIn::Admin => Role::Admin,
        RoleIn::Tenant => Role::Tenant,
        RoleIn::Investor => Role::Investor,
    };
    let key = accounts::create_key(state.store(), &input.org_id, role).await?;
    tracing::info!(key.id = %key.id, org.id = %key.org_id, key.role = key.role, by = %caller.key_id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(KeyOut {
            object: "api_key",
            key,
        }),
    ))
}
