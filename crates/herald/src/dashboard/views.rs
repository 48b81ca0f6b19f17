//! The page frame and the small pieces every page shares. `maud` escapes everything
//! interpolated, so payloads and response bodies from endpoints are shown, never run.

use maud::{DOCTYPE, Markup, html};

use super::session::Viewer;
use super::when;
use crate::api::pagination::encode;
use crate::domain::time::{Millis, format_ms};
use crate::store::Page;

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Webhooks,
    Deliveries,
    Keys,
    Orgs,
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `site`: what the tab says after the page's title ("Herald", or a portal's own title);
/// `themed`: the portal's accent colour stylesheet is linked.
fn head(title: &str, site: &str, themed: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (site) }
            // No favicon request: there is nothing to fetch.
            link rel="icon" href="data:,";
            link rel="stylesheet" href={ "/dashboard/assets/dashboard.css?v=" (VERSION) };
            @if themed {
                link rel="stylesheet" href="/dashboard/theme.css";
            }
            script src={ "/dashboard/assets/dashboard.js?v=" (VERSION) } defer {}
        }
    }
}

/// A whole page for a signed-in viewer. The portal shows its theme and only its own pages.
pub fn page(viewer: &Viewer, nav: Nav, title: &str, body: Markup) -> Markup {
    let link = |target: Nav, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(nav == target).then_some("page")] { (label) }
        }
    };
    let theme = viewer.theme();
    let site = theme
        .and_then(|t| t.title.as_deref())
        .unwrap_or(if viewer.is_portal() { "Webhooks" } else { "Herald" });
    let themed = theme.is_some_and(|t| t.accent_color.is_some());
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, site, themed))
            body.portal[viewer.is_portal()] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    @if let Some(theme) = theme {
                        span.brand {
                            @if let Some(logo) = &theme.logo_url {
                                img.logo src=(logo) alt="" referrerpolicy="no-referrer";
                            }
                            (site)
                        }
                    } @else {
                        a.brand href="/dashboard" { "Herald" }
                    }
                    nav aria-label="Main" {
                        @if !viewer.is_portal() {
                            (link(Nav::Overview, "/dashboard", "Overview"))
                        }
                        (link(Nav::Webhooks, "/dashboard/webhooks", "Webhooks"))
                        (link(Nav::Deliveries, "/dashboard/deliveries", "Deliveries"))
                        @if viewer.is_admin() {
                            (link(Nav::Keys, "/dashboard/keys", "API keys"))
                            (link(Nav::Orgs, "/dashboard/orgs", "Switch org"))
                        }
                    }
                    div.who {
                        span.org title=(viewer.org.id) { (viewer.org.name) }
                        span.role { (viewer.role_label()) }
                        @if !viewer.is_portal() {
                            form method="post" action="/dashboard/logout" {
                                (csrf(viewer))
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page of the portal without a session (an ended link): no way into the dashboard.
pub fn bare_portal(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, "Webhooks", false))
            body.bare {
                main #main { (body) }
            }
        }
    }
}

/// A page without a session (sign-in, errors).
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, "Herald", false))
            body.bare {
                main #main {
                    p.brand-line { a.brand href="/dashboard" { "Herald" } }
                    (body)
                }
            }
        }
    }
}

/// An error page.
pub fn problem(title: &str, message: &str) -> Markup {
    bare(
        title,
        html! {
            h1 { (title) }
            p role="alert" { (message) }
            p { a href="/dashboard" { "Back to the dashboard" } }
        },
    )
}

/// This server's address as the browser reached it, for copy-paste commands.
pub fn host(headers: &axum::http::HeaderMap) -> &str {
    headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost:8080")
}

pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// A one-button form that POSTs to `action`.
pub fn post_button(viewer: &Viewer, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(viewer))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// "Newer" / "Older" links for a page; the store only names an id to page from when there are
/// items beyond it.
pub fn pager<T>(base: &str, page: &Page<T>) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if let Some(before) = &page.prev_before { a href={ (base) "before=" (encode(before)) } { "← Newer" } }
            @if let Some(after) = &page.next_after { a href={ (base) "cursor=" (encode(after)) } { "Older →" } }
        }
    }
}

/// A time as `2026-11-23 09:41:03 UTC`, exactly what the time filters accept (see `when`).
/// The script adds the viewer's own clock as a tooltip; the text stays UTC.
pub fn time(ms: Millis) -> Markup {
    html! { time datetime=(format_ms(ms)) { (when::shown(ms)) } }
}

/// How the time inputs read what is typed, said under each form that has them.
pub const TIME_HINT: &str = "Times are UTC, as every table shows them: paste one from a table. \
     A time covers its whole second; a date alone, its whole day.";

/// A labelled text input for a time in the tables' own format (see `when`). Not
/// `datetime-local`: that one shows the browser's locale (often a 12-hour clock) and has no
/// zone, so what it shows would not match the tables.
pub fn time_input(name: &str, label: &str, value: Option<&str>, required: bool) -> Markup {
    html! {
        span.field {
            label for=(name) { (label) }
            input id=(name) type="text" name=(name) value=(value.unwrap_or_default())
                placeholder=(when::FORMAT) size="22" autocomplete="off" spellcheck="false"
                required[required];
        }
    }
}

pub fn maybe_time(ms: Option<Millis>) -> Markup {
    match ms {
        Some(ms) => time(ms),
        None => html! { span.muted { "—" } },
    }
}

/// A dotted name (`transfer.withdrawal.initiated`) that may wrap after its dots, and only
/// there, so a narrow column breaks it where it reads well.
pub fn dotted(name: &str) -> Markup {
    html! {
        @for (i, part) in name.split('.').enumerate() {
            @if i > 0 { "." wbr; }
            (part)
        }
    }
}

/// A status word in a coloured pill (the colour repeats the word; it never replaces it).
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

/// A message after an action, from a fixed list so no text can be injected through the URL.
pub fn notice(code: Option<&str>) -> Markup {
    let message = match code {
        Some("created") => "Webhook created.",
        Some("updated") => "Webhook saved.",
        Some("enabled") => "Webhook enabled: its parked deliveries go out now.",
        Some("disabled") => "Webhook disabled: new deliveries wait until it is enabled again.",
        Some("deleted") => "Webhook deleted. Its delivery history stays in the log.",
        Some("retried") => "Retry queued: the delivery goes out again now.",
        Some("test-sent") => "Test event sent.",
        Some("replayed") => "Replay queued.",
        Some("switched") => "Switched org.",
        Some("revoked") => "API key revoked: every node refuses it within a second.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (message) } }
}

/// A copyable command or value.
pub fn copyable(id: &str, text: &str) -> Markup {
    html! {
        div.copyable {
            pre { code id=(id) { (text) } }
            button.secondary type="button" data-copy=(id) { "Copy" }
        }
    }
}

/// Indents JSON for reading without parsing it: keys keep their order and numbers their
/// exact text (`1.50` stays `1.50`), so what is shown is what was sent. Text that is not
/// JSON comes out with at most some extra line breaks.
pub fn pretty_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if chars.peek() == Some(&close) {
                    out.push(close);
                    chars.next();
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// What a webhook is called on screen: its name, or its URL when it has none.
pub fn label(w: &crate::store::Webhook) -> &str {
    w.name.as_deref().filter(|n| !n.is_empty()).unwrap_or(&w.url)
}

#[cfg(test)]
mod tests {
    use super::pretty_json;

    #[test]
    fn pretty_json_keeps_key_order_and_number_text() {
        let shown = pretty_json(r#"{"id":"e","data":{"qty": 1.50,"tags":[],"s":"a,b:{c}\"d"}}"#);
        assert_eq!(
            shown,
            "{\n  \"id\": \"e\",\n  \"data\": {\n    \"qty\": 1.50,\n    \"tags\": [],\n    \"s\": \"a,b:{c}\\\"d\"\n  }\n}"
        );
    }
}
