//! Signing in and out, and (for admins) choosing which org the dashboard shows.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::session::{self, Action, CheckedForm, PublicForm, Viewer};
use super::views::{self, Nav};
use super::{DashError, Result};
use crate::api::AppState;
use crate::api::error::ApiError;
use crate::domain::ids::OrgId;
use crate::store::{PageRequest, Position};

pub fn page(error: Option<&str>) -> Markup {
    views::bare(
        "Sign in",
        html! {
            h1 { "Sign in" }
            p { "Use an API key of your org (tenant or admin). " code { "herald serve" } " prints an admin key on its first start." }
            @if let Some(error) = error {
                p.error #key-error role="alert" { (error) }
            }
            form.stack method="post" action="/dashboard/login" {
                label for="key" { "API key" }
                input #key type="password" name="key" autocomplete="off" required autofocus
                    placeholder="key_…:…" aria-describedby=[error.map(|_| "key-error")];
                button type="submit" { "Sign in" }
            }
            p.muted { "The key is exchanged for a session cookie; it is not kept in the browser." }
        },
    )
}

pub async fn form(viewer: Option<Viewer>) -> Response {
    match viewer {
        Some(_) => Redirect::to("/dashboard").into_response(),
        None => page(None).into_response(),
    }
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    PublicForm(fields): PublicForm,
) -> Result<Response> {
    let key = fields
        .get("key")
        .ok_or_else(|| DashError::sign_in("Paste an API key to sign in."))?;
    let secure = session::came_over_https(&state, &headers);
    let address = client.map(|Extension(ConnectInfo(address))| address.ip());
    let cookie = session::sign_in(&state, key, secure, address).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response())
}

pub async fn sign_out(
    State(state): State<AppState>,
    CheckedForm(viewer, _): CheckedForm,
) -> Result<Response> {
    session::sign_out(&state, &viewer).await?;
    Ok((
        [(header::SET_COOKIE, session::cleared_cookie())],
        Redirect::to("/dashboard/login"),
    )
        .into_response())
}

fn admins_only(viewer: &Viewer) -> Result<()> {
    viewer.may(Action::ManageAccess)?;
    if viewer.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("Only admin keys can switch org.").into())
    }
}

pub async fn orgs(State(state): State<AppState>, viewer: Viewer) -> Result<Markup> {
    admins_only(&viewer)?;
    let orgs = state
        .store()
        .list_orgs(PageRequest {
            limit: 100,
            position: Position::First,
        })
        .await?;
    Ok(views::page(
        &viewer,
        Nav::Orgs,
        "Switch org",
        html! {
            p { "Admin keys can look after every org. The dashboard shows one at a time." }
            form.stack method="post" action="/dashboard/orgs" {
                (views::csrf(&viewer))
                label for="org_id" { "Organization" }
                select #org_id name="org_id" {
                    @for org in &orgs.items {
                        option value=(org.id) selected[org.id == viewer.org.id] { (org.name) " (" (org.id) ")" }
                    }
                }
                button type="submit" { "Switch" }
            }
            @if orgs.has_more {
                p.muted { "Showing the 100 newest orgs." }
            }
        },
    ))
}

pub async fn switch_org(
    State(state): State<AppState>,
    CheckedForm(viewer, fields): CheckedForm,
) -> Result<Response> {
    admins_only(&viewer)?;
    let unknown = || DashError::bad_request("No such org.");
    let org_id = fields.get("org_id").and_then(OrgId::parse).ok_or_else(unknown)?;
    state.store().get_org(org_id.clone()).await?.ok_or_else(unknown)?;
    state
        .store()
        .set_session_org(viewer.token_hash().to_vec(), org_id)
        .await?;
    Ok(Redirect::to("/dashboard/webhooks?done=switched").into_response())
}
