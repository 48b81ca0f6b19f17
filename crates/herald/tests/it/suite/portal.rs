//! The tenant portal (API.md section 12): `POST /v1/portal-sessions` mints a link; opening it
//! signs a browser in to that org alone, read-only when asked, framed only where allowed.
//! Over plain HTTP, as a browser speaks it; the framed flow in Chromium is in
//! `portal_browser.rs`.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use super::dashboard::{Browser, location};
use super::support::receiver::{Reply, TestReceiver};
use super::support::{Settings, TestApp, expect_error, expect_json};

/// Mints a link with `key` and `body`; returns the 201's JSON.
async fn mint(app: &TestApp, key: &str, body: Value) -> Value {
    expect_json(
        app.post("/v1/portal-sessions", key, &body).await,
        StatusCode::CREATED,
    )
    .await
}

/// The link's path on this server (`/portal/<token>`): its host is `HERALD_PUBLIC_URL`'s.
fn path_of(link: &Value) -> String {
    let url = link["url"].as_str().expect("url");
    let at = url.find("/portal/").expect("a portal path");
    url[at..].to_owned()
}

/// A browser that opened `link`: its portal cookie set, as the `Set-Cookie` said it.
async fn opened<'a>(app: &'a TestApp, link: &Value) -> (Browser<'a>, String) {
    let mut browser = Browser::new(app);
    let response = browser.get(&path_of(link)).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "opening a link redirects"
    );
    assert_eq!(location(&response), "/dashboard/webhooks");
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .expect("a portal cookie")
        .to_str()
        .expect("ascii")
        .to_owned();
    browser.cookie = Some(set_cookie.split(';').next().expect("name=value").to_owned());
    (browser, set_cookie)
}

/// The CSRF token the forms of `link`'s session carry (a read-only portal shows no form to
/// read it from).
fn csrf_of(link: &Value) -> String {
    let path = path_of(link);
    let token = path.rsplit('/').next().expect("token");
    herald::dashboard::session::csrf_for(token)
}

fn csp(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A webhook of the org behind `key`, named `name`; its id.
async fn webhook(app: &TestApp, key: &str, name: &str, url: &str) -> String {
    let w = app
        .create_webhook(key, json!({"url": url, "name": name, "event_types": ["order.*"]}))
        .await;
    w["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn a_tenant_mints_a_link_that_opens_its_own_org_and_nothing_else() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        public_url: Some("https://hooks.example.com".into()),
        ..Settings::default()
    })
    .await;
    let (_, tenant) = app.tenant("tenant").await;
    let (_, other) = app.tenant("tenant").await;
    let own = webhook(&app, &tenant, "Ours", "https://example.com/ours").await;
    let theirs = webhook(&app, &other, "Theirs", "https://example.com/theirs").await;
    let their_event = app.publish(&other, "order.filled", json!({})).await;
    let their_delivery = app
        .deliveries_of(&other, their_event["id"].as_str().expect("id"))
        .await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let link = mint(&app, &tenant, json!({})).await;
    assert_eq!(link["object"], "portal_session");
    assert_eq!(link["read_only"], false);
    let url = link["url"].as_str().expect("url");
    let token = url
        .strip_prefix("https://hooks.example.com/portal/")
        .expect("under HERALD_PUBLIC_URL");
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    let expires = link["expires_at"].as_str().expect("expires_at");
    let expires = jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.fZ", expires)
        .or_else(|_| expires.parse::<jiff::Timestamp>())
        .expect("a time");
    let lifetime = expires.as_second() - jiff::Timestamp::now().as_second();
    assert!(
        (880..=900).contains(&lifetime),
        "15 minutes by default: {lifetime}"
    );

    let (browser, cookie) = opened(&app, &link).await;
    for attribute in ["herald_portal=", "HttpOnly", "Path=/dashboard", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let max_age: i64 = cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .expect("Max-Age");
    assert!(
        (900 + 3600 - 20..=900 + 3600).contains(&max_age),
        "the link's 15 minutes and an hour to say it expired: {max_age}"
    );
    let page = browser.get("/dashboard/webhooks").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(csp(&page).contains("frame-ancestors 'none'"), "{}", csp(&page));
    let page = page.text().await.expect("html");
    assert!(page.contains("Ours") && !page.contains("Theirs"));
    assert!(
        !page.contains("API keys") && !page.contains("Switch org"),
        "no admin pages offered"
    );
    assert_eq!(
        browser.get(&format!("/dashboard/webhooks/{own}")).await.status(),
        StatusCode::OK
    );

    // Another org's objects, by any URL: not found.
    for path in [
        format!("/dashboard/webhooks/{theirs}"),
        format!("/dashboard/webhooks/{theirs}/edit"),
        format!("/dashboard/deliveries/{their_delivery}"),
    ] {
        assert_eq!(browser.get(&path).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let log = browser
        .get(&format!("/dashboard/deliveries?webhook_id={theirs}"))
        .await
        .text()
        .await
        .expect("html");
    assert!(!log.contains(&their_delivery));
    // Keys and other orgs are not the portal's.
    for path in ["/dashboard/keys", "/dashboard/orgs"] {
        assert_eq!(browser.get(path).await.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let csrf = csrf_of(&link);
    let other_org = app.tenant("tenant").await.0;
    let switch = browser
        .post(
            "/dashboard/orgs",
            &[("org_id", other_org.as_str()), ("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(switch.status(), StatusCode::FORBIDDEN);
    assert_eq!(location(&browser.get("/dashboard").await), "/dashboard/webhooks");

    // The link is not an API key.
    let as_key = app.get("/v1/webhooks", token).await;
    assert_eq!(as_key.status(), StatusCode::UNAUTHORIZED);
    let cookie_only = app
        .client
        .get(app.url("/v1/webhooks"))
        .header(header::COOKIE, browser.cookie.clone().expect("cookie"))
        .send()
        .await
        .expect("get");
    assert_eq!(cookie_only.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_portal_session_manages_its_webhooks_and_deliveries() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let (_, tenant) = app.tenant("tenant").await;
    let link = mint(&app, &tenant, json!({"expires_in_seconds": 3600})).await;
    let (browser, _) = opened(&app, &link).await;
    let csrf = csrf_of(&link);
    let form = browser
        .get("/dashboard/webhooks/new")
        .await
        .text()
        .await
        .expect("html");
    assert!(form.contains(&csrf), "the forms carry the session's token");
    let url = receiver.url("/portal-hook");
    let created = browser
        .post(
            "/dashboard/webhooks",
            &[
                ("url", url.as_str()),
                ("name", "From the portal"),
                ("csrf", csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::OK);
    let list = expect_json(app.get("/v1/webhooks", &tenant).await, StatusCode::OK).await;
    assert_eq!(
        list["data"][0]["name"], "From the portal",
        "made in the link's org"
    );
    let id = list["data"][0]["id"].as_str().expect("id").to_owned();

    let test = browser
        .post(
            &format!("/dashboard/webhooks/{id}/test"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert!(
        test.status().is_success() || test.status() == StatusCode::SEE_OTHER,
        "{}",
        test.status()
    );
    receiver.wait_for("/portal-hook", 1).await;
    let deliveries = expect_json(app.get("/v1/webhooks/events", &tenant).await, StatusCode::OK).await;
    let delivery = deliveries["data"][0]["id"].as_str().expect("id").to_owned();
    app.wait_status(&tenant, &delivery, "delivered").await;
    let retry = browser
        .post(
            &format!("/dashboard/deliveries/{delivery}/retry"),
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert!(
        retry.status().is_success() || retry.status() == StatusCode::SEE_OTHER,
        "{}",
        retry.status()
    );
    receiver.wait_for("/portal-hook", 2).await;

    // Without the session's CSRF token, nothing happens.
    let forged = browser
        .post(&format!("/dashboard/webhooks/{id}/delete"), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}"), &tenant).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_read_only_link_shows_everything_and_refuses_every_change() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    receiver.always("/failing", Reply::status(500));
    let (_, tenant) = app.tenant("tenant").await;
    let id = webhook(&app, &tenant, "Watched", &receiver.url("/failing")).await;
    let event = app.publish(&tenant, "order.filled", json!({})).await;
    let delivery = app
        .deliveries_of(&tenant, event["id"].as_str().expect("id"))
        .await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.wait_status(&tenant, &delivery, "failed").await;

    let link = mint(&app, &tenant, json!({"read_only": true})).await;
    assert_eq!(link["read_only"], true);
    let (browser, _) = opened(&app, &link).await;
    let list = browser
        .get("/dashboard/webhooks")
        .await
        .text()
        .await
        .expect("html");
    assert!(list.contains("Watched") && list.contains("read-only"));
    assert!(!list.contains("New webhook"), "no way to change is offered");
    let detail = browser.get(&format!("/dashboard/webhooks/{id}")).await;
    assert_eq!(detail.status(), StatusCode::OK);
    let detail = detail.text().await.expect("html");
    assert!(!detail.contains("Send test event") && !detail.contains("Rotate secret"));
    let shown = browser.get(&format!("/dashboard/deliveries/{delivery}")).await;
    assert_eq!(shown.status(), StatusCode::OK);

    let csrf = csrf_of(&link);
    let w = format!("/dashboard/webhooks/{id}");
    let d = format!("/dashboard/deliveries/{delivery}");
    // Valid forms, broken forms, no CSRF token: all refused alike, before any validation.
    let attempts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/dashboard/webhooks".into(),
            vec![("url", "https://example.com/new"), ("csrf", &csrf)],
        ),
        (
            "/dashboard/webhooks".into(),
            vec![("url", "not a url"), ("csrf", &csrf)],
        ),
        (
            format!("{w}/edit"),
            vec![("url", "https://example.com/moved"), ("csrf", &csrf)],
        ),
        (
            format!("{w}/status"),
            vec![("status", "disabled"), ("csrf", &csrf)],
        ),
        (format!("{w}/delete"), vec![("csrf", &csrf)]),
        (format!("{w}/rotate"), vec![("overlap", "0"), ("csrf", &csrf)]),
        (format!("{w}/test"), vec![("csrf", &csrf)]),
        (
            format!("{w}/replay"),
            vec![("since", "2020-01-01 00:00:00"), ("csrf", &csrf)],
        ),
        (format!("{d}/retry"), vec![("csrf", &csrf)]),
        (format!("{d}/retry"), vec![]),
        ("/dashboard/logout".into(), vec![("csrf", &csrf)]),
    ];
    for (path, form) in &attempts {
        let response = browser.post(path, form).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} {form:?}");
    }
    for path in [
        "/dashboard/webhooks/new".to_owned(),
        format!("{w}/edit"),
        format!("{w}/delete"),
    ] {
        assert_eq!(browser.get(&path).await.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let after = expect_json(
        app.get(&format!("/v1/webhooks/{id}"), &tenant).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["status"], "active");
    assert_eq!(after["url"], receiver.url("/failing"));
    let list = expect_json(app.get("/v1/webhooks", &tenant).await, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().expect("data").len(), 1);
    let still = expect_json(
        app.get(&format!("/v1/webhooks/events/{delivery}"), &tenant).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(still["status"], "failed", "not retried");
}

#[tokio::test]
async fn expired_forged_and_erased_links_show_a_page_and_set_no_cookie() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    let store = app.store().await;

    // An expired link, made as the route makes them but an hour ago.
    let token = "expiredexpiredexpiredexpiredexpiredexpired0";
    let now = herald::domain::time::now_ms();
    store
        .create_portal_link(herald::store::PortalLink {
            token_hash: herald::secrets::hash_token(token),
            org_id: herald::domain::ids::OrgId::parse(&org).expect("org id"),
            read_only: false,
            theme: None,
            created_at: now - 3_600_000,
            expires_at: now - 1,
        })
        .await
        .expect("store a link");
    let live = mint(&app, &tenant, json!({})).await;
    let (survivor, _) = opened(&app, &live).await;
    let erased_link = path_of(&live);

    let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let browser = Browser::new(&app);
    for path in [
        format!("/portal/{token}"),
        format!("/portal/{forged}"),
        "/portal/short".to_owned(),
    ] {
        let response = browser.get(&path).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            response.headers().get(header::SET_COOKIE).is_none(),
            "{path}: no session"
        );
        assert!(csp(&response).contains("frame-ancestors 'none'"));
        let page = response.text().await.expect("html");
        assert!(page.contains("expired"), "{page}");
    }

    // A cookie that outlived its link (it is kept an hour longer) shows the same page.
    let mut late = Browser::new(&app);
    late.cookie = Some(format!("herald_portal={token}"));
    let ended = late.get("/dashboard/webhooks").await;
    assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
    assert!(ended.text().await.expect("html").contains("expired"));

    let erase = app.delete(&format!("/v1/orgs/{org}"), &app.admin_key).await;
    assert_eq!(erase.status(), StatusCode::NO_CONTENT);
    let response = browser.get(&erased_link).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "a link of an erased org"
    );
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    // A session opened before the erasure ends with it.
    let ended = survivor.get("/dashboard/webhooks").await;
    assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
    let cleared = ended
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.starts_with("herald_portal=;") && c.contains("Max-Age=0"));
    assert!(cleared, "the cookie is cleared");
}

#[tokio::test]
async fn links_are_minted_for_the_callers_org_unless_an_admin_names_one_and_bad_input_is_refused() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn().await;
    let (org, tenant) = app.tenant("tenant").await;
    let (_, investor) = app.tenant("investor").await;
    let (other_org, _) = app.tenant("tenant").await;

    let admin_link = mint(&app, &app.admin_key, json!({"org_id": org, "read_only": true})).await;
    let (browser, _) = opened(&app, &admin_link).await;
    let page = browser
        .get("/dashboard/webhooks")
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains("tenant org"), "the named org's portal");

    let forbidden = app
        .post("/v1/portal-sessions", &tenant, &json!({"org_id": other_org}))
        .await;
    expect_error(forbidden, StatusCode::FORBIDDEN, "forbidden", Some("org_id")).await;
    let investor = app.post("/v1/portal-sessions", &investor, &json!({})).await;
    assert_eq!(investor.status(), StatusCode::FORBIDDEN);
    let nobody = app.post("/v1/portal-sessions", "key_x:nope", &json!({})).await;
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);

    let refused = [
        (json!({"expires_in_seconds": 59}), "expires_in_seconds"),
        (json!({"expires_in_seconds": 86_401}), "expires_in_seconds"),
        (json!({"theme": {"accent_color": "blue"}}), "theme.accent_color"),
        (json!({"theme": {"accent_color": "#12345"}}), "theme.accent_color"),
        (
            json!({"theme": {"logo_url": "http://cdn.example.com/logo.png"}}),
            "theme.logo_url",
        ),
        (
            json!({"theme": {"logo_url": "javascript:alert(1)"}}),
            "theme.logo_url",
        ),
        (json!({"theme": {"title": ""}}), "theme.title"),
    ];
    for (body, param) in refused {
        let response = app.post("/v1/portal-sessions", &tenant, &body).await;
        expect_error(response, StatusCode::BAD_REQUEST, "invalid_value", Some(param)).await;
    }
    let typo = app
        .post("/v1/portal-sessions", &tenant, &json!({"read_onyl": true}))
        .await;
    let typo = expect_json(typo, StatusCode::BAD_REQUEST).await;
    assert_eq!(typo["error"]["param"], "read_onyl");
    let wrong_type = app
        .post(
            "/v1/portal-sessions",
            &tenant,
            &json!({"expires_in_seconds": "soon"}),
        )
        .await;
    assert_eq!(wrong_type.status(), StatusCode::BAD_REQUEST);
    let at_edges = [60, 86_400];
    for seconds in at_edges {
        mint(&app, &tenant, json!({"expires_in_seconds": seconds})).await;
    }
}

#[tokio::test]
async fn the_theme_and_the_framing_rule_come_from_the_link_and_the_config() {
    skip_if_backend_unavailable!();
    let app = TestApp::spawn_with(Settings {
        portal_frame_ancestors: Some("https://app.example.com http://127.0.0.1:3000".into()),
        ..Settings::default()
    })
    .await;
    let (_, tenant) = app.tenant("tenant").await;
    let theme = json!({"title": "Acme <Markets>", "accent_color": "#0A7CFF", "logo_url": "https://cdn.acme.example/logo.svg"});
    let link = mint(&app, &tenant, json!({"theme": theme})).await;
    let (browser, cookie) = opened(&app, &link).await;
    for attribute in ["SameSite=None", "Secure", "Partitioned", "HttpOnly"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let page = browser.get("/dashboard/webhooks").await;
    let policy = csp(&page);
    assert!(
        policy.contains("frame-ancestors https://app.example.com http://127.0.0.1:3000"),
        "{policy}"
    );
    assert!(page.headers().get("x-frame-options").is_none(), "the CSP decides");
    let html = page.text().await.expect("html");
    assert!(html.contains("Acme &lt;Markets&gt;") && !html.contains("Acme <Markets>"));
    assert!(html.contains("src=\"https://cdn.acme.example/logo.svg\""));
    assert!(html.contains("/dashboard/theme.css"));
    let css = browser
        .get("/dashboard/theme.css")
        .await
        .text()
        .await
        .expect("css");
    assert!(css.contains("--accent: #0a7cff"), "{css}");

    // The dashboard itself is never framed, whatever the portal allows.
    let mut admin = Browser::new(&app);
    let signed_in = admin
        .post("/dashboard/login", &[("key", app.admin_key.as_str())])
        .await;
    let session = signed_in
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_owned();
    admin.cookie = Some(session);
    let dashboard = admin.get("/dashboard/webhooks").await;
    assert!(
        csp(&dashboard).contains("frame-ancestors 'none'"),
        "{}",
        csp(&dashboard)
    );
}

#[tokio::test]
async fn portal_pages_escape_what_tenants_typed_and_receivers_answered() {
    skip_if_backend_unavailable!();
    let app = TestApp::delivering().await;
    let receiver = TestReceiver::start().await;
    let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    receiver.always("/hostile", Reply::status(500).body(hostile));
    let (_, tenant) = app.tenant("tenant").await;
    let w = app
        .create_webhook(
            &tenant,
            json!({"url": format!("{}?q=%22%3E%3Cimg%20onerror%3Dalert(3)%3E", receiver.url("/hostile")), "name": hostile, "description": hostile, "event_types": ["order.*"]}),
        )
        .await;
    let id = w["id"].as_str().expect("id");
    let event = app
        .publish(&tenant, "order.filled", json!({"note": hostile}))
        .await;
    let delivery = app
        .deliveries_of(&tenant, event["id"].as_str().expect("id"))
        .await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.wait_delivery(&tenant, &delivery, |d| d["attempt_count"].as_i64() >= Some(1))
        .await;
    let link = mint(&app, &tenant, json!({})).await;
    let (browser, _) = opened(&app, &link).await;
    for path in [
        "/dashboard/webhooks".to_owned(),
        format!("/dashboard/webhooks/{id}"),
        format!("/dashboard/webhooks/{id}/edit"),
        "/dashboard/deliveries".to_owned(),
        format!("/dashboard/deliveries/{delivery}"),
    ] {
        let page = browser.get(&path).await.text().await.expect("html");
        for raw in ["<script>alert", "<img src=x", "\"><img"] {
            assert!(!page.contains(raw), "{path} shows {raw} unescaped");
        }
        assert!(
            page.contains("&lt;script&gt;") || page.contains("&lt;img"),
            "{path} shows it, escaped"
        );
    }
}
