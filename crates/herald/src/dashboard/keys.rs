//! An org's API keys, for admins: who can call Herald for it, and when they last did; a key
//! can be revoked here under the same rules as `DELETE /v1/keys/{id}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::session::{Action, CheckedForm, Fields, Viewer};
use super::views::{self, Nav};
use super::{DashError, Result};
use crate::accounts::{self, AccountError};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::domain::time::now_ms;
use crate::store::{PageRequest, Position};

fn admins_only(viewer: &Viewer) -> Result<()> {
    viewer.may(Action::ManageAccess)?;
    if viewer.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("Only admin keys can see and revoke API keys.").into())
    }
}

/// The page, with `error` (a refused revocation) shown above the table.
async fn keys_page(
    state: &AppState,
    viewer: &Viewer,
    done: Option<&str>,
    error: Option<&str>,
) -> Result<Markup> {
    let keys = state
        .store()
        .list_api_keys(
            Some(viewer.org.id.clone()),
            PageRequest {
                limit: 100,
                position: Position::First,
            },
        )
        .await?;
    Ok(views::page(
        viewer,
        Nav::Keys,
        "API keys",
        html! {
            (views::notice(done))
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            p { "The active keys of " (viewer.org.name) ". Secrets are shown only when a key is made ("
                code { "herald keys create" } " or " code { "POST /v1/keys" } ")." }
            @if keys.items.is_empty() {
                p.muted { "This org has no active keys." }
            } @else {
                table {
                    caption.visually-hidden { "API keys of " (viewer.org.name) }
                    thead { tr {
                        th scope="col" { "Key" }
                        th scope="col" { "Name" }
                        th scope="col" { "Role" }
                        th scope="col" { "Created" }
                        th scope="col" { "Last used" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for key in &keys.items {
                            tr {
                                td { code { (key.id) } }
                                td { @if let Some(name) = &key.name { (name) } @else { span.muted { "—" } } }
                                td { (key.role.as_str()) }
                                td { (views::time(key.created_at)) }
                                td { @if let Some(at) = key.last_used_at { (views::time(at)) } @else { span.muted { "never" } } }
                                td { (views::post_button(viewer, &format!("/dashboard/keys/{}/revoke", key.id), "Revoke", "danger")) }
                            }
                        }
                    }
                }
                @if keys.has_more {
                    p.muted { "Showing the 100 newest keys." }
                }
            }
        },
    ))
}

pub async fn list(State(state): State<AppState>, viewer: Viewer, fields: Fields) -> Result<Markup> {
    admins_only(&viewer)?;
    keys_page(&state, &viewer, fields.get("done"), None).await
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    CheckedForm(viewer, _): CheckedForm,
) -> Result<Response> {
    admins_only(&viewer)?;
    match accounts::revoke_key(state.store(), &raw, now_ms()).await {
        Ok(id) => {
            state.key_cache().forget(std::slice::from_ref(&id));
            tracing::info!(key.id = %id, by = %viewer.actor(), "API key revoked from the dashboard");
            Ok(Redirect::to("/dashboard/keys?done=revoked").into_response())
        }
        Err(e @ AccountError::LastAdminKey(_)) => {
            let page = keys_page(&state, &viewer, None, Some(&e.to_string())).await?;
            Ok((StatusCode::CONFLICT, page).into_response())
        }
        Err(e) => Err(DashError::from(ApiError::from(e))),
    }
}
