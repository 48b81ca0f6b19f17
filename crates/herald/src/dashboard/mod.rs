//! The dashboard at `/dashboard`: server-rendered HTML over the same checks and store calls
//! as the JSON API, so a webhook made here is exactly one made with `curl`. No front-end
//! build: pages are `maud` templates, charts are SVG drawn here, the stylesheet and the one
//! small script are compiled into the binary (nothing is fetched from anywhere else).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::secrets::SecretsError;
use crate::store::StoreError;

mod charts;
mod deliveries;
mod keys;
mod overview;
mod portal;
pub mod session;
mod sign_in;
mod views;
mod webhooks;
mod when;

/// Everything a dashboard page can fail with, answered once, as a page.
#[derive(Debug)]
pub enum DashError {
    /// No valid session: go and sign in.
    NotSignedIn,
    /// The sign-in form was refused, with why.
    SignIn(String),
    /// A form without the right CSRF token, or posted from another site.
    Csrf,
    /// A portal session whose link expired, never existed, or whose org was erased.
    PortalEnded,
    /// Anything else, as the API would answer it (status and a message fit for users).
    Api(ApiError),
}

impl DashError {
    pub fn sign_in(message: &str) -> Self {
        Self::SignIn(message.to_owned())
    }

    pub fn bad_request(message: &str) -> Self {
        Self::Api(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message))
    }
}

impl From<ApiError> for DashError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<StoreError> for DashError {
    fn from(e: StoreError) -> Self {
        Self::Api(e.into())
    }
}

impl From<SecretsError> for DashError {
    fn from(e: SecretsError) -> Self {
        Self::Api(e.into())
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        match self {
            Self::NotSignedIn => {
                let mut response = Redirect::to("/dashboard/login").into_response();
                if let Ok(value) = HeaderValue::from_str(&session::cleared_cookie()) {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
                response
            }
            Self::PortalEnded => {
                let mut response = (StatusCode::UNAUTHORIZED, portal::ended_page()).into_response();
                // Both kinds: a partitioned cookie is only cleared by a partitioned one.
                for cookie in [
                    session::cleared_portal_cookie(true),
                    session::cleared_portal_cookie(false),
                ] {
                    if let Ok(value) = HeaderValue::from_str(&cookie) {
                        response.headers_mut().append(header::SET_COOKIE, value);
                    }
                }
                response
            }
            Self::SignIn(message) => {
                (StatusCode::UNAUTHORIZED, sign_in::page(Some(&message))).into_response()
            }
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                views::problem(
                    "Form refused",
                    "This form was refused: its CSRF token was missing or wrong, or it was sent \
                     from another site. Reload the page and try again.",
                ),
            )
                .into_response(),
            Self::Api(e) => {
                let title = match e.status.as_u16() {
                    404 => "Not found",
                    403 => "Not allowed",
                    429 => "Too many attempts",
                    400..=499 => "That did not work",
                    _ => "Something went wrong",
                };
                let mut response = (e.status, views::problem(title, &e.message)).into_response();
                if let Some(value) = e.retry_after_header() {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
        }
    }
}

pub type Result<T, E = DashError> = std::result::Result<T, E>;

const CSS: &str = include_str!("../../assets/dashboard.css");
const JS: &str = include_str!("../../assets/dashboard.js");

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                views::problem("Not found", "No such file."),
            )
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        views::problem("Not found", "There is no dashboard page here."),
    )
        .into_response()
}

/// Pages are never cached (they show secrets once and live data), load nothing from
/// anywhere but here (a portal's logo aside), and may not be framed: the portal's pages only
/// by the origins in `HERALD_PORTAL_FRAME_ANCESTORS`.
async fn page_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let portal =
        req.uri().path().starts_with(crate::portal::PATH) || session::has_portal_cookie(req.headers());
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    let ancestors = &state.config().portal_frame_ancestors;
    if portal {
        let framing = if ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            ancestors.join(" ")
        };
        let policy = format!(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data: https:; \
             connect-src 'self'; form-action 'self'; frame-ancestors {framing}; base-uri 'none'"
        );
        if let Ok(value) = HeaderValue::from_str(&policy) {
            headers.insert("content-security-policy", value);
        }
        if ancestors.is_empty() {
            set(headers, "x-frame-options", "DENY");
        }
    } else {
        set(
            headers,
            "content-security-policy",
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        );
        set(headers, "x-frame-options", "DENY");
    }
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
    response
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/portal/{token}", get(portal::open))
        .route("/dashboard/theme.css", get(portal::theme_css))
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard/login", get(sign_in::form).post(sign_in::submit))
        .route("/dashboard/logout", post(sign_in::sign_out))
        .route("/dashboard/orgs", get(sign_in::orgs).post(sign_in::switch_org))
        .route("/dashboard/keys", get(keys::list))
        .route("/dashboard/keys/{id}/revoke", post(keys::revoke))
        .route("/dashboard/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/dashboard/webhooks/new", get(webhooks::new_form))
        .route("/dashboard/webhooks/{id}", get(webhooks::detail))
        .route(
            "/dashboard/webhooks/{id}/edit",
            get(webhooks::edit_form).post(webhooks::edit),
        )
        .route("/dashboard/webhooks/{id}/status", post(webhooks::set_status))
        .route(
            "/dashboard/webhooks/{id}/delete",
            get(webhooks::confirm_delete).post(webhooks::delete),
        )
        .route("/dashboard/webhooks/{id}/rotate", post(webhooks::rotate))
        .route("/dashboard/webhooks/{id}/test", post(webhooks::send_test))
        .route("/dashboard/webhooks/{id}/replay", post(webhooks::replay))
        .route("/dashboard/deliveries", get(deliveries::log))
        .route("/dashboard/deliveries/{id}", get(deliveries::detail))
        .route("/dashboard/deliveries/{id}/retry", post(deliveries::retry))
        .route("/dashboard/assets/{file}", get(asset))
        .route("/dashboard/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::from_fn_with_state(state, page_headers))
}
