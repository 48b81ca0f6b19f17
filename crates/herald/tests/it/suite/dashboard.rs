//! The dashboard over plain HTTP, as a browser would speak it (forms, cookies, redirects not
//! followed): sessions, CSRF, roles and org boundaries. The whole flow in a real browser is in
//! `dashboard_browser.rs`.

use reqwest::{StatusCode, header};
use serde_json::json;

use super::support::receiver::{Reply, TestReceiver};
use super::support::{Settings, TestApp, expect_json};

/// A browser-like client: keeps no cookies by itself and does not follow redirects, so each
/// test sees exactly what the server answered.
pub(super) struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    pub(super) cookie: Option<String>,
}

impl<'a> Browser<'a> {
    pub(super) fn new(app: &'a TestApp) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            app,
            client,
            cookie: None,
        }
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(cookie) => request.header(header::COOKIE, cookie),
            None => request,
        }
    }

    pub(super) async fn get(&self, path: &str) -> reqwest::Response {
        self.with_cookie(self.client.get(self.app.url(path)))
            .send()
            .await
            .expect("get")
    }

    pub(super) async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.with_cookie(self.client.post(self.app.url(path)).form(form))
            .send()
            .await
            .expect("post")
    }

    /// A browser signed in with `key`, and its session's CSRF token.
    async fn signed_in(app: &'a TestApp, key: &str) -> (Self, String) {
        let mut browser = Self::new(app);
        browser.sign_in(key).await;
        let csrf = browser.csrf().await;
        (browser, csrf)
    }

    /// Signs in with `key`; returns the `Set-Cookie` header as sent.
    async fn sign_in(&mut self, key: &str) -> String {
        let response = self.post("/dashboard/login", &[("key", key)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "sign-in redirects");
        assert_eq!(location(&response), "/dashboard");
        let set_cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .expect("a session cookie")
            .to_str()
            .expect("ascii")
            .to_owned();
        self.cookie = Some(set_cookie.split(';').next().expect("name=value").to_owned());
        set_cookie
    }

    /// Submits the webhook form (`id`: the edit form, else the create form) for
    /// `https://example.com/hook` with one more `field`, as a person filling in just that would.
    async fn submit_webhook(
        &self,
        id: Option<&str>,
        csrf: &str,
        field: &str,
        value: &str,
    ) -> reqwest::Response {
        let path = id.map_or_else(
            || "/dashboard/webhooks".to_owned(),
            |id| format!("/dashboard/webhooks/{id}/edit"),
        );
        self.post(
            &path,
            &[
                ("url", "https://example.com/hook"),
                (field, value),
                ("csrf", csrf),
            ],
        )
        .await
    }

    /// Creates a webhook from the form with one more `field` (see [`Self::submit_webhook`]),
    /// which must be accepted; `key` is the session's, to read the webhook back from the API.
    async fn create_webhook(&self, key: &str, csrf: &str, field: &str, value: &str) -> Created {
        let created = self.submit_webhook(None, csrf, field, value).await;
        assert_eq!(created.status(), StatusCode::OK, "{field}: {value}");
        let page = created.text().await.expect("html");
        let list = expect_json(self.app.get("/v1/webhooks", key).await, StatusCode::OK).await;
        let api = list["data"][0].clone();
        let id = api["id"].as_str().expect("id").to_owned();
        Created { id, page, api }
    }

    /// The webhook's edit form, as HTML.
    async fn edit_form(&self, id: &str) -> String {
        let form = self.get(&format!("/dashboard/webhooks/{id}/edit")).await;
        form.text().await.expect("html")
    }

    /// The CSRF token of the session, read off a page's forms.
    pub(super) async fn csrf(&self) -> String {
        let page = self.get("/dashboard/webhooks").await.text().await.expect("page");
        let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[start..].split('"').next().expect("value").to_owned()
    }
}

/// A webhook created from the dashboard's form.
struct Created {
    id: String,
    /// The webhook page the form answered with.
    page: String,
    /// The webhook as the API shows it.
    api: serde_json::Value,
}

/// The webhook as the API shows it now.
async fn api_view(app: &TestApp, key: &str, id: &str) -> serde_json::Value {
    expect_json(app.get(&format!("/v1/webhooks/{id}"), key).await, StatusCode::OK).await
}

/// The first link on `page` whose address contains `needle`, unescaped.
fn link_containing(page: &str, needle: &str) -> Option<String> {
    page.split("href=\"").skip(1).find_map(|rest| {
        let href = rest.split('"').next()?;
        href.contains(needle).then(|| href.replace("&amp;", "&"))
    })
}

/// The API's message, as a page shows it (escaped), for a webhook created with `field` set
/// to `value`, which it must refuse.
async fn apis_message(app: &TestApp, key: &str, field: &str, value: serde_json::Value) -> String {
    let body = json!({"url": "https://example.com/hook", field: value});
    let refused = expect_json(
        app.post("/v1/webhooks", key, &body).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let says = refused["error"]["message"].as_str().expect("message");
    says.replace('&', "&amp;").replace('"', "&quot;")
}

pub(super) fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn signing_in_gives_a_strict_http_only_cookie_and_signing_out_ends_the_session() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let mut browser = Browser::new(&app);

    let signed_out = browser.get("/dashboard").await;
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_out), "/dashboard/login");

    let cookie = browser.sign_in(&key).await;
    assert!(cookie.starts_with("herald_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains(&key), "the API key itself is not the cookie");

    let overview = browser.get("/dashboard").await;
    assert_eq!(overview.status(), StatusCode::OK);
    assert_eq!(
        overview.headers()[header::CACHE_CONTROL],
        "no-store",
        "pages showing secrets are never cached"
    );
    let csp = overview.headers()["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = overview.text().await.expect("html");
    assert!(html.contains("Sign out"));
    assert!(
        html.contains("/dashboard/assets/dashboard.css"),
        "assets are served by Herald itself"
    );

    let csrf = browser.csrf().await;
    let out = browser.post("/dashboard/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), "/dashboard/login");
    // The old cookie is dead on the server, not only forgotten by the browser.
    let after = browser.get("/dashboard").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&after), "/dashboard/login");
}

#[tokio::test]
async fn wrong_and_investor_keys_are_refused_with_a_clear_message() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, investor) = app.tenant("investor").await;
    let browser = Browser::new(&app);

    for (key, expected) in [
        ("key_01m83aaaaaaaaaaaaaaaaaaaaa:nope", "Invalid API key"),
        ("not a key", "not an API key"),
        (investor.as_str(), "Investor keys cannot use the dashboard"),
    ] {
        let response = browser.post("/dashboard/login", &[("key", key)]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key}");
        assert!(response.headers().get(header::SET_COOKIE).is_none(), "{key}");
        let html = response.text().await.expect("html");
        assert!(html.contains("role=\"alert\""), "{html}");
        assert!(html.contains(expected), "{expected} not in {html}");
    }
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_or_from_another_site_are_refused() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let (browser, csrf) = Browser::signed_in(&app, &key).await;
    let form = |csrf: &'static str| vec![("url", "https://example.com/hook"), ("csrf", csrf)];

    let missing = browser
        .post("/dashboard/webhooks", &[("url", "https://example.com/hook")])
        .await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(missing.text().await.expect("html").contains("CSRF"));
    let wrong = browser.post("/dashboard/webhooks", &form("forged")).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);

    let cross_site = browser
        .with_cookie(browser.client.post(app.url("/dashboard/webhooks")))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("url", "https://example.com/hook"), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);

    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(list["data"], json!([]), "no refused form created anything");

    let accepted = browser
        .post(
            "/dashboard/webhooks",
            &[("url", "https://example.com/hook"), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
}

#[tokio::test]
async fn a_webhook_made_in_the_dashboard_follows_the_apis_rules() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let (browser, csrf) = Browser::signed_in(&app, &key).await;

    let refused = browser
        .post(
            "/dashboard/webhooks",
            &[
                ("url", "http://127.0.0.1/hook"),
                ("name", "local"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let html = refused.text().await.expect("html");
    assert!(html.contains("role=\"alert\""), "{html}");
    assert!(html.contains("value=\"local\""), "the form keeps what was typed");
    let unknown = browser
        .post(
            "/dashboard/webhooks",
            &[
                ("url", "https://example.com/hook"),
                ("patterns", "nope.nothing"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);

    let created = browser
        .post(
            "/dashboard/webhooks",
            &[
                ("url", "https://example.com/hook"),
                ("name", "orders"),
                ("event_types", "order.filled"),
                ("event_types", "transfer.*"),
                ("patterns", "account.created"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let html = created.text().await.expect("html");
    let start = html.find("id=\"signing-secret\">").expect("the secret is shown") + 20;
    let secret = html[start..].split('<').next().expect("secret");
    assert!(secret.starts_with("whsec_"), "{secret}");

    let list = expect_json(app.get("/v1/webhooks", &key).await, StatusCode::OK).await;
    let webhook = &list["data"][0];
    assert_eq!(webhook["name"], "orders");
    assert_eq!(
        webhook["event_types"],
        json!(["order.filled", "transfer.*", "account.created"])
    );
    assert_eq!(
        webhook["signing_secret_last4"].as_str(),
        Some(&secret[secret.len() - 4..])
    );
    let id = webhook["id"].as_str().expect("id");
    let page = browser
        .get(&format!("/dashboard/webhooks/{id}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(!page.contains(secret), "the secret is shown only once");
}

#[tokio::test]
async fn a_url_without_a_scheme_is_explained_once_next_to_its_field() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        ..Settings::default()
    })
    .await;
    let (_, key) = app.tenant("tenant").await;
    let (browser, csrf) = Browser::signed_in(&app, &key).await;

    let refused = browser
        .post(
            "/dashboard/webhooks",
            &[("url", "localhost:3000/hook"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let html = refused.text().await.expect("html");
    assert_eq!(html.matches("url has no scheme").count(), 1, "said once: {html}");
    assert!(
        html.contains("e.g. http://localhost:3000/hook"),
        "shows the URL with a scheme: {html}"
    );
    assert!(!html.contains("must use https://"), "{html}");
    assert_eq!(html.matches("role=\"alert\"").count(), 1, "{html}");
    assert!(
        html.contains("aria-describedby=\"url-error\""),
        "the field points at its message: {html}"
    );
}

#[tokio::test]
async fn one_orgs_webhooks_are_out_of_reach_of_another_orgs_session() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (owner_org, owner) = app.tenant("tenant").await;
    let (_, other) = app.tenant("tenant").await;
    let webhook = app
        .create_webhook(&owner, json!({"url": "https://example.com/hook"}))
        .await;
    let id = webhook["id"].as_str().expect("id");
    let (browser, csrf) = Browser::signed_in(&app, &other).await;

    assert_eq!(
        browser.get(&format!("/dashboard/webhooks/{id}")).await.status(),
        StatusCode::NOT_FOUND
    );
    for action in ["rotate", "delete", "test"] {
        let response = browser
            .post(&format!("/dashboard/webhooks/{id}/{action}"), &[("csrf", &csrf)])
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{action}");
    }
    let still = expect_json(
        app.get(&format!("/v1/webhooks/{id}"), &owner).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(still["signing_secret_last4"], webhook["signing_secret_last4"]);
    assert_eq!(still["status"], "active");

    // A tenant may not switch org; an admin may.
    let switch = browser
        .post("/dashboard/orgs", &[("org_id", &app.admin_org), ("csrf", &csrf)])
        .await;
    assert_eq!(switch.status(), StatusCode::FORBIDDEN);
    let (admin, admin_csrf) = Browser::signed_in(&app, &app.admin_key).await;
    let switched = admin
        .post(
            "/dashboard/orgs",
            &[("org_id", &owner_org), ("csrf", &admin_csrf)],
        )
        .await;
    assert_eq!(switched.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        admin.get(&format!("/dashboard/webhooks/{id}")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_webhook_is_edited_paused_resumed_and_deleted_from_its_page() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let webhook = app
        .create_webhook(&key, json!({"url": "https://example.com/a", "name": "before"}))
        .await;
    let id = webhook["id"].as_str().expect("id");
    let (browser, csrf) = Browser::signed_in(&app, &key).await;

    assert!(
        browser.edit_form(id).await.contains("value=\"before\""),
        "the form is filled in"
    );
    let edited = browser
        .post(
            &format!("/dashboard/webhooks/{id}/edit"),
            &[
                ("url", "https://example.com/b"),
                ("name", "after"),
                ("event_types", "order.*"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(edited.status(), StatusCode::SEE_OTHER);
    let now = api_view(&app, &key, id).await;
    assert_eq!(now["url"], "https://example.com/b");
    assert_eq!(now["name"], "after");
    assert_eq!(now["event_types"], json!(["order.*"]));

    let paused = browser
        .post(
            &format!("/dashboard/webhooks/{id}/status"),
            &[("status", "disabled"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    let paused_view = api_view(&app, &key, id).await;
    assert_eq!(paused_view["status"], "disabled");
    assert_eq!(paused_view["disabled_reason"], "disabled in the dashboard");
    let page = browser
        .get(&format!("/dashboard/webhooks/{id}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains(">Enable<"), "a disabled webhook offers Enable");
    browser
        .post(
            &format!("/dashboard/webhooks/{id}/status"),
            &[("status", "active"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(api_view(&app, &key, id).await["status"], "active");

    let confirm = browser.get(&format!("/dashboard/webhooks/{id}/delete")).await;
    assert_eq!(confirm.status(), StatusCode::OK, "deleting asks first");
    assert_eq!(
        api_view(&app, &key, id).await["status"],
        "active",
        "asking deletes nothing"
    );
    let deleted = browser
        .post(&format!("/dashboard/webhooks/{id}/delete"), &[("csrf", &csrf)])
        .await;
    assert_eq!(location(&deleted), "/dashboard/webhooks?done=deleted");
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}"), &key).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_filter_is_set_and_edited_in_the_dashboard_with_the_apis_messages() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let (browser, csrf) = Browser::signed_in(&app, &key).await;

    let Created { id, api, .. } = browser
        .create_webhook(&key, &csrf, "filter", r#"{"symbol": "AAPL"}"#)
        .await;
    assert_eq!(api["filter"], json!({"symbol": "AAPL"}));

    let html = browser.edit_form(&id).await;
    assert!(
        html.contains("&quot;symbol&quot;: &quot;AAPL&quot;"),
        "the form shows the filter: {html}"
    );

    let edit = |filter| browser.submit_webhook(Some(&id), &csrf, "filter", filter);
    for (typed, says) in [
        (r#"{"qty": {"$in": 1}}"#, "filter.qty.$in: $in takes an array"),
        ("symbol = AAPL", "filter is not JSON"),
    ] {
        let refused = edit(typed).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let html = refused.text().await.expect("html");
        assert!(html.contains(says), "{says}: {html}");
        assert!(html.contains("id=\"filter-error\""), "said next to the field");
    }
    assert_eq!(
        api_view(&app, &key, &id).await["filter"],
        json!({"symbol": "AAPL"}),
        "refused edits change nothing"
    );

    assert_eq!(
        edit(r#"{"qty": {"$gte": 10}}"#).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        api_view(&app, &key, &id).await["filter"],
        json!({"qty": {"$gte": 10}})
    );
    assert_eq!(edit("  ").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        api_view(&app, &key, &id).await["filter"],
        serde_json::Value::Null,
        "an empty field removes the filter"
    );
}

#[tokio::test]
async fn custom_headers_are_shown_and_edited_in_the_dashboard_with_the_apis_messages() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let (browser, csrf) = Browser::signed_in(&app, &key).await;

    let Created { id, page, api } = browser
        .create_webhook(
            &key,
            &csrf,
            "headers",
            "X-Api-Key: s3cr3t-value\r\nX-Tenant: acme",
        )
        .await;
    assert!(
        page.contains("X-Api-Key: s3cr3t-value") && page.contains("X-Tenant: acme"),
        "the webhook page shows the headers, names and values: {page}"
    );
    assert_eq!(
        api["headers"],
        json!({"X-Api-Key": "s3cr3t-value", "X-Tenant": "acme"})
    );

    let html = browser.edit_form(&id).await;
    assert!(
        html.contains("X-Api-Key: s3cr3t-value\nX-Tenant: acme"),
        "the form shows the headers as lines: {html}"
    );

    let edit = |headers| browser.submit_webhook(Some(&id), &csrf, "headers", headers);
    // The messages are the API's own for the same headers.
    for (typed, json) in [
        ("X-Bad Name: v", json!({"X-Bad Name": "v"})),
        ("Webhook-Id: mine", json!({"Webhook-Id": "mine"})),
        ("User-Agent: mine", json!({"User-Agent": "mine"})),
    ] {
        let refused = edit(typed).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let html = refused.text().await.expect("html");
        let says = apis_message(&app, &key, "headers", json).await;
        assert!(html.contains(&says), "{says}: {html}");
        assert!(html.contains("id=\"headers-error\""), "said next to the field");
    }
    let refused = edit("X-No-Colon").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.expect("html").contains("has no colon"));
    assert_eq!(
        api_view(&app, &key, &id).await["headers"],
        json!({"X-Api-Key": "s3cr3t-value", "X-Tenant": "acme"}),
        "refused edits change nothing"
    );

    assert_eq!(
        edit("Authorization: Bearer t").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        api_view(&app, &key, &id).await["headers"],
        json!({"Authorization": "Bearer t"}),
        "an edit replaces the whole set"
    );
    assert_eq!(edit("").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        api_view(&app, &key, &id).await["headers"],
        json!({}),
        "an empty field removes them"
    );
    let page = browser.get(&format!("/dashboard/webhooks/{id}")).await;
    assert!(!page.text().await.expect("html").contains("Bearer t"));
}

#[tokio::test]
async fn a_rate_limit_is_shown_and_edited_in_the_dashboard_with_the_apis_messages() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let (browser, csrf) = Browser::signed_in(&app, &key).await;

    let Created { id, page, api } = browser.create_webhook(&key, &csrf, "rate_limit", "50").await;
    assert!(
        page.contains("50 deliveries/s"),
        "the webhook page shows the limit: {page}"
    );
    assert_eq!(api["rate_limit"], 50);

    let html = browser.edit_form(&id).await;
    assert!(
        html.contains(r#"name="rate_limit" value="50""#),
        "the form shows the limit: {html}"
    );

    let edit = |limit| browser.submit_webhook(Some(&id), &csrf, "rate_limit", limit);
    // The messages are the API's own: for a number out of range, and for text.
    for (typed, json) in [("0", json!(0)), ("abc", json!("abc"))] {
        let refused = edit(typed).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{typed}");
        let html = refused.text().await.expect("html");
        let says = apis_message(&app, &key, "rate_limit", json).await;
        assert!(html.contains(&says), "{says}: {html}");
        assert!(html.contains("id=\"rate_limit-error\""), "said next to the field");
    }
    assert_eq!(
        api_view(&app, &key, &id).await["rate_limit"],
        50,
        "refused edits change nothing"
    );
    let page = browser.get(&format!("/dashboard/webhooks/{id}")).await;
    assert!(page.text().await.expect("html").contains("50 deliveries/s"));

    assert_eq!(edit("").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        api_view(&app, &key, &id).await["rate_limit"],
        serde_json::Value::Null,
        "an empty field removes the limit"
    );
    let page = browser.get(&format!("/dashboard/webhooks/{id}")).await;
    let html = page.text().await.expect("html");
    assert!(!html.contains("deliveries/s"), "no limit is shown: {html}");
    assert!(
        html.contains("<dt>Rate limit</dt><dd>none</dd>"),
        "the page says there is none: {html}"
    );
}

#[tokio::test]
async fn fifo_order_is_ticked_shown_and_unticked_in_the_dashboard() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (_, key) = app.tenant("tenant").await;
    let (browser, csrf) = Browser::signed_in(&app, &key).await;

    let Created { id, page, api } = browser.create_webhook(&key, &csrf, "ordering", "fifo").await;
    assert!(
        page.contains("<dt>Order</dt><dd>FIFO, one at a time</dd>"),
        "the webhook page shows the order: {page}"
    );
    assert_eq!(api["ordering"], "fifo");

    let html = browser.edit_form(&id).await;
    assert!(
        html.contains(r#"name="ordering" value="fifo" checked"#),
        "the form has the box ticked: {html}"
    );

    // An unticked box is not sent at all, as a browser does.
    let unticked = browser
        .post(
            &format!("/dashboard/webhooks/{id}/edit"),
            &[("url", "https://example.com/hook"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(unticked.status(), StatusCode::SEE_OTHER);
    assert_eq!(api_view(&app, &key, &id).await["ordering"], "none");
    let page = browser.get(&format!("/dashboard/webhooks/{id}")).await;
    let html = page.text().await.expect("html");
    assert!(
        html.contains("<dt>Order</dt><dd>none</dd>"),
        "the page says there is no order: {html}"
    );
    let html = browser.edit_form(&id).await;
    assert!(
        html.contains(r#"name="ordering" value="fifo" aria-describedby"#),
        "the form has the box unticked: {html}"
    );
}

/// A development app with a fast retry schedule, a tenant's key, and a receiver whose
/// `/hook` answers 500 to everything.
async fn tenant_with_a_failing_receiver() -> (TestApp, String, TestReceiver) {
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("10ms".into()),
        ..Settings::default()
    })
    .await;
    let (_, key) = app.tenant("tenant").await;
    let receiver = TestReceiver::start().await;
    receiver.always("/hook", Reply::status(500));
    (app, key, receiver)
}

#[tokio::test]
async fn the_delivery_log_filters_pages_and_replays_failed_deliveries() {
    skip_if_backend_unavailable!();
    let (app, key, receiver) = tenant_with_a_failing_receiver().await;
    let webhook = app
        .create_webhook(
            &key,
            json!({"url": receiver.url("/hook"), "event_types": ["order.*"]}),
        )
        .await;
    let id = webhook["id"].as_str().expect("id");
    let mut last = String::new();
    for n in 0..55 {
        let event = app.publish(&key, "order.filled", json!({"n": n})).await;
        last = event["id"].as_str().expect("event id").to_owned();
    }
    let newest = app.deliveries_of(&key, &last).await;
    let newest = newest[0]["id"].as_str().expect("delivery id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let failed = expect_json(
            app.get("/v1/webhooks/events?status=failed&limit=100", &key).await,
            StatusCode::OK,
        )
        .await;
        if failed["data"].as_array().is_some_and(|d| d.len() == 55) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every delivery failed: {failed}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut browser = Browser::new(&app);
    browser.sign_in(&key).await;

    let failed = browser
        .get("/dashboard/deliveries?status=failed")
        .await
        .text()
        .await
        .expect("html");
    assert_eq!(
        failed.matches("class=\"delivery-link\"").count(),
        50,
        "a page holds 50"
    );
    assert!(failed.contains(&newest));
    let older_href = link_containing(&failed, "cursor=").expect("an Older link");
    assert!(
        older_href.contains("status=failed"),
        "paging keeps the filter: {older_href}"
    );
    let older = browser.get(&older_href).await.text().await.expect("html");
    assert!(
        older.matches("class=\"delivery-link\"").count() == 5,
        "the rest is on the next page: {older_href} {older}"
    );
    let newer_href = link_containing(&older, "before=").expect("a Newer link");
    let back = browser.get(&newer_href).await.text().await.expect("html");
    assert!(back.contains(&newest), "Newer leads back to the first page");
    let delivered = browser
        .get("/dashboard/deliveries?status=delivered")
        .await
        .text()
        .await
        .expect("html");
    assert!(delivered.contains("No deliveries match this filter."));
    let wrong_type = browser
        .get("/dashboard/deliveries?event_type=account.created")
        .await
        .text()
        .await
        .expect("html");
    assert!(wrong_type.contains("No deliveries match this filter."));

    receiver.always("/hook", Reply::status(204));
    let csrf = browser.csrf().await;
    let replayed = browser
        .post(
            &format!("/dashboard/webhooks/{id}/replay"),
            &[("since", "2020-01-01T00:00"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&replayed).ends_with("done=replayed&queued=55"),
        "{}",
        location(&replayed)
    );
    app.wait_status(&key, &newest, "delivered").await;
}

/// The text of the first `<time>` in the table row that mentions `needle`.
fn time_in_row(page: &str, needle: &str) -> Option<String> {
    let row = page.split("<tr").find(|row| row.contains(needle))?;
    let start = row.find("<time")?;
    let text = row[start..].split('>').nth(1)?;
    Some(text.split('<').next()?.to_owned())
}

#[tokio::test]
async fn a_time_copied_from_the_delivery_log_finds_that_delivery_in_the_filter_and_the_replay() {
    skip_if_backend_unavailable!();
    let (app, key, receiver) = tenant_with_a_failing_receiver().await;
    let webhook = app
        .create_webhook(&key, json!({"url": receiver.url("/hook")}))
        .await;
    let webhook_id = webhook["id"].as_str().expect("id");
    let event = app.publish(&key, "order.filled", json!({"n": 1})).await;
    let delivery = app.deliveries_of(&key, event["id"].as_str().expect("id")).await;
    let delivery = delivery[0]["id"].as_str().expect("delivery id").to_owned();
    app.wait_status(&key, &delivery, "failed").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&key).await;

    let log = browser
        .get("/dashboard/deliveries")
        .await
        .text()
        .await
        .expect("html");
    let shown = time_in_row(&log, &delivery).expect("the row shows when it was created");
    assert!(
        shown.ends_with(" UTC") && shown.len() == "2026-11-23 09:41:03 UTC".len(),
        "a time says its zone: {shown}"
    );
    let query = |from: &str, to: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("from", from)
            .append_pair("to", to)
            .finish()
    };
    let found = browser
        .get(&format!("/dashboard/deliveries?{}", query(&shown, &shown)))
        .await;
    assert_eq!(found.status(), StatusCode::OK);
    let found = found.text().await.expect("html");
    assert!(
        found.contains(&delivery),
        "from = to = the shown time finds the delivery: {found}"
    );
    let before = browser
        .get(&format!(
            "/dashboard/deliveries?{}",
            query("2020-01-01 00:00:00 UTC", "2020-01-01 00:00:01 UTC")
        ))
        .await
        .text()
        .await
        .expect("html");
    assert!(!before.contains(&delivery), "another window does not");

    receiver.always("/hook", Reply::status(204));
    let csrf = browser.csrf().await;
    let replayed = browser
        .post(
            &format!("/dashboard/webhooks/{webhook_id}/replay"),
            &[("since", &shown), ("until", &shown), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&replayed).ends_with("done=replayed&queued=1"),
        "the replay window read the same way: {}",
        location(&replayed)
    );
    app.wait_status(&key, &delivery, "delivered").await;
}

#[tokio::test]
async fn success_rates_read_as_numbers_or_words_and_the_webhook_page_labels_its_rotation_choice() {
    skip_if_backend_unavailable!();
    let (app, key, receiver) = tenant_with_a_failing_receiver().await;
    let failing = app
        .create_webhook(&key, json!({"url": receiver.url("/hook"), "name": "failing"}))
        .await;
    let failing = failing["id"].as_str().expect("id");
    app.create_webhook(
        &key,
        json!({"url": "https://example.com/idle", "name": "idle", "event_types": ["kyc.*"]}),
    )
    .await;
    let event = app.publish(&key, "order.filled", json!({"n": 1})).await;
    let delivery = app.deliveries_of(&key, event["id"].as_str().expect("id")).await;
    let delivery = delivery[0]["id"].as_str().expect("delivery id").to_owned();
    app.wait_status(&key, &delivery, "failed").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&key).await;

    let list = browser
        .get("/dashboard/webhooks")
        .await
        .text()
        .await
        .expect("html");
    let row = |name: &str| {
        list.split("<tr")
            .find(|row| row.contains(&format!(">{name}</a>")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("failing").contains("0\u{a0}%"), "{}", row("failing"));
    assert!(row("idle").contains("no deliveries"), "{}", row("idle"));
    assert!(
        !list.contains("<td class=\"num\"><span class=\"muted\">—"),
        "no bare dash for a rate: {list}"
    );

    let page = browser
        .get(&format!("/dashboard/webhooks/{failing}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains(&delivery), "its recent deliveries are listed");
    assert!(
        !page.contains("scope=\"col\">Webhook<"),
        "no Webhook column on the webhook's own page"
    );
    assert!(
        page.contains("<label for=\"overlap\">old secret:</label>"),
        "the rotation choice has a visible label: {page}"
    );
}

#[tokio::test]
async fn repeated_failed_sign_ins_are_braked_but_a_valid_key_still_signs_in() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        auth_failure_limit: Some(3),
        ..Settings::default()
    })
    .await;
    let mut browser = Browser::new(&app);
    for _ in 0..3 {
        let refused = browser
            .post("/dashboard/login", &[("key", "key_nope:guess")])
            .await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let braked = browser
        .post("/dashboard/login", &[("key", "key_nope:guess")])
        .await;
    assert_eq!(braked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(braked.headers().contains_key(header::RETRY_AFTER));
    assert!(braked.headers().get(header::SET_COOKIE).is_none());
    browser.sign_in(&app.admin_key).await;
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_public_url_is_https() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        public_url: Some("https://hooks.example.com".into()),
        ..Settings::default()
    })
    .await;
    let mut browser = Browser::new(&app);
    let cookie = browser.sign_in(&app.admin_key).await;
    assert!(cookie.contains("; Secure"), "{cookie}");

    let plain = TestApp::spawn().await;
    let mut browser = Browser::new(&plain);
    let cookie = browser.sign_in(&plain.admin_key).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Behind a TLS-terminating proxy that says so in the standard header.
    let forwarded = browser
        .client
        .post(plain.url("/dashboard/login"))
        .header("forwarded", "for=192.0.2.60;proto=https")
        .form(&[("key", plain.admin_key.as_str())])
        .send()
        .await
        .expect("post");
    let cookie = forwarded.headers().get(header::SET_COOKIE).expect("cookie");
    assert!(cookie.to_str().expect("ascii").contains("; Secure"));
}

#[tokio::test]
async fn an_admin_sees_an_orgs_keys_and_revokes_one_but_never_the_last_admin_key() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let named = expect_json(
        app.post(
            "/v1/keys",
            &app.admin_key,
            &json!({"org_id": app.admin_org, "role": "tenant", "name": "<b>ci</b>"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let tenant = named["key"].as_str().expect("key");
    let tenant_id = named["id"].as_str().expect("id");
    let (admin, csrf) = Browser::signed_in(&app, &app.admin_key).await;

    let page = admin.get("/dashboard/keys").await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("page");
    assert!(page.contains(tenant_id), "{page}");
    assert!(page.contains("&lt;b&gt;ci&lt;/b&gt;"), "the name is escaped");
    assert!(!page.contains("<b>ci</b>"));
    assert!(
        !page.contains(tenant.split_once(':').expect("secret").1),
        "no secret"
    );

    let refused = admin
        .post(&format!("/dashboard/keys/{tenant_id}/revoke"), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let revoked = admin
        .post(&format!("/dashboard/keys/{tenant_id}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&revoked), "/dashboard/keys?done=revoked");
    assert_eq!(
        app.get("/v1/webhooks", tenant).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let own = app.admin_key.split_once(':').expect("id").0;
    let last = admin
        .post(&format!("/dashboard/keys/{own}/revoke"), &[("csrf", &csrf)])
        .await;
    assert_eq!(last.status(), StatusCode::CONFLICT);
    assert!(last.text().await.expect("page").contains("last active admin key"));
    assert_eq!(app.get("/v1/keys", &app.admin_key).await.status(), StatusCode::OK);

    // Tenants have no keys page.
    let (_, other) = app.tenant("tenant").await;
    let mut tenant_browser = Browser::new(&app);
    tenant_browser.sign_in(&other).await;
    assert_eq!(
        tenant_browser.get("/dashboard/keys").await.status(),
        StatusCode::FORBIDDEN
    );
}

/// Rollup rows of the webhooks whose ids are listed, in either table.
fn rollup_rows(app: &TestApp, webhooks: &[&str]) -> i64 {
    let ids = webhooks
        .iter()
        .map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(", ");
    super::support::query_number(
        app.dir.path(),
        &format!(
            "SELECT (SELECT COUNT(*) FROM attempt_minutes WHERE webhook_id IN ({ids})) \
             + (SELECT COUNT(*) FROM attempt_20min WHERE webhook_id IN ({ids})) \
             + (SELECT COUNT(*) FROM webhook_minutes WHERE webhook_id IN ({ids}))"
        ),
    )
}

#[tokio::test]
async fn the_dashboard_counts_from_per_minute_rollups_which_go_with_their_org_and_their_age() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        dev: true,
        retry_schedule: Some("10ms".into()),
        // A short lease, so an erased org's data goes a few seconds after the erasure.
        delivery_timeout: Some("1s".into()),
        ..Settings::default()
    })
    .await;
    let (org, key) = app.tenant("tenant").await;
    let receiver = TestReceiver::start().await;
    receiver.always("/ok", Reply::status(204));
    receiver.always("/bad", Reply::status(500));
    let ok = app
        .create_webhook(&key, json!({"url": receiver.url("/ok"), "name": "ok"}))
        .await;
    let bad = app
        .create_webhook(&key, json!({"url": receiver.url("/bad"), "name": "bad"}))
        .await;
    let (ok, bad) = (ok["id"].as_str().expect("id"), bad["id"].as_str().expect("id"));
    // Another org's webhook, whose rollups stay after the tenant is erased.
    let own = app
        .create_webhook(&app.admin_key, json!({"url": receiver.url("/ok")}))
        .await;
    let own = own["id"].as_str().expect("id");
    let event = app.publish(&app.admin_key, "order.filled", json!({})).await;
    let delivery = app
        .deliveries_of(&app.admin_key, event["id"].as_str().expect("id"))
        .await;
    app.wait_status(
        &app.admin_key,
        delivery[0]["id"].as_str().expect("id"),
        "delivered",
    )
    .await;
    for n in 0..3 {
        let event = app.publish(&key, "order.filled", json!({"n": n})).await;
        for delivery in app.deliveries_of(&key, event["id"].as_str().expect("id")).await {
            let status = if delivery["webhook_id"] == ok {
                "delivered"
            } else {
                "failed"
            };
            app.wait_status(&key, delivery["id"].as_str().expect("id"), status)
                .await;
        }
    }
    let mut browser = Browser::new(&app);
    browser.sign_in(&key).await;

    let list = browser
        .get("/dashboard/webhooks")
        .await
        .text()
        .await
        .expect("html");
    let row = |name: &str| {
        list.split("<tr")
            .find(|row| row.contains(&format!(">{name}</a>")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(list.contains("Ended, 24\u{a0}h"), "{list}");
    assert!(
        row("ok").contains("<td class=\"num\">3</td>"),
        "three ended: {}",
        row("ok")
    );
    assert!(row("ok").contains("100\u{a0}%"), "{}", row("ok"));
    assert!(
        row("ok").contains("<code>204</code>"),
        "its last answer: {}",
        row("ok")
    );
    assert!(row("bad").contains("<td class=\"num\">3</td>"), "{}", row("bad"));
    assert!(row("bad").contains("0\u{a0}%"), "{}", row("bad"));
    assert!(row("bad").contains("<code>500</code>"), "{}", row("bad"));

    // Each failed delivery was tried twice: one retry, then failed for good.
    for range in ["hour", "day"] {
        let overview = browser
            .get(&format!("/dashboard?range={range}"))
            .await
            .text()
            .await
            .expect("html");
        assert!(overview.contains("Delivered (3)"), "{range}: {overview}");
        assert!(overview.contains("Error status (6)"), "{range}: {overview}");
    }
    let page = browser
        .get(&format!("/dashboard/webhooks/{bad}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("Delivered (0)") && page.contains("Error status (6)"),
        "{page}"
    );
    assert!(page.contains("0 delivered, 3 failed"), "{page}");

    // The rollups past what any page shows go; a day's worth stays.
    let store = app.store().await;
    assert!(rollup_rows(&app, &[ok, bad]) > 0);
    store
        .purge_rollups(herald::domain::time::now_ms() - herald::store::rollup::KEEP_MS)
        .await
        .expect("purge");
    assert!(rollup_rows(&app, &[ok, bad]) > 0, "recent rollups are kept");
    let erased = app.delete(&format!("/v1/orgs/{org}"), &app.admin_key).await;
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while rollup_rows(&app, &[ok, bad]) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "an erased org's rollups are still stored after a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(rollup_rows(&app, &[own]) > 0, "another org's rollups stay");
    // Rows as old as the cutoff go, the janitor's way.
    store
        .purge_rollups(herald::domain::time::now_ms() + 120_000)
        .await
        .expect("purge");
    assert_eq!(rollup_rows(&app, &[own]), 0);
}

#[tokio::test]
async fn the_webhook_form_shows_each_types_description_and_escaped_example() {
    skip_if_backend_unavailable!();
    let catalog = r#"
[[event_types]]
type = "note.posted"
description = "A note was posted <somewhere>"
example = { id = "note_1", text = "<script>alert(1)</script> & more" }
"#;
    let app = TestApp::spawn_with(Settings {
        catalog: Some(catalog.to_owned()),
        ..Settings::default()
    })
    .await;
    let (browser, _) = Browser::signed_in(&app, &app.admin_key).await;
    let form = browser.get("/dashboard/webhooks/new").await;
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.expect("html");
    assert!(html.contains("A note was posted &lt;somewhere&gt;"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
        "the example, escaped: {html}"
    );
    assert!(!html.contains("<script>alert(1)"), "never raw: {html}");
    assert!(html.contains("<details class=\"example\">"), "{html}");

    // The built-in catalog: every type with its description and a pretty-printed example.
    let app = TestApp::spawn().await;
    let (browser, _) = Browser::signed_in(&app, &app.admin_key).await;
    let html = browser
        .get("/dashboard/webhooks/new")
        .await
        .text()
        .await
        .expect("html");
    assert!(html.contains("Order fully filled"), "{html}");
    assert_eq!(
        html.matches("<details class=\"example\">").count(),
        20,
        "17 built-in types and Herald's 3 operational ones"
    );
    assert!(html.contains("&quot;symbol&quot;: &quot;AAPL&quot;"), "{html}");
}
