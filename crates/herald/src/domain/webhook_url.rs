//! The URL a webhook delivers to, checked once when it is set.
//!
//! Only what can be known without DNS is checked here: syntax, scheme, length and IP-literal
//! hosts. Hostnames are checked again on every connection, after resolution, by the delivery
//! client, so DNS rebinding cannot reach a private address.

use std::net::IpAddr;

use url::{Host, Url};

use super::net::TargetPolicy;

pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("url must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("url is not a valid absolute URL: {0}")]
    Invalid(String),
    #[error("url must use https:// (plain http:// needs HERALD_ALLOW_HTTP=true)")]
    HttpNotAllowed,
    /// The scheme is missing (`localhost:3000/hook`): said as such, because "must use
    /// https://" for a URL that names no scheme at all sends people looking for the wrong fix.
    #[error("url has no scheme: write it with {}, e.g. {example}", schemes(*.http_allowed))]
    NoScheme { http_allowed: bool, example: String },
    #[error("url must use {}", schemes(*.http_allowed))]
    Scheme { http_allowed: bool },
    #[error("url must name a host")]
    NoHost,
    #[error(
        "url points at {0}, a private or otherwise non-public address; add its network to HERALD_ALLOWED_TARGET_NETWORKS to allow it"
    )]
    BlockedAddress(IpAddr),
}

/// The schemes a URL may have under the policy, for messages.
fn schemes(http_allowed: bool) -> &'static str {
    if http_allowed {
        "https:// (or http://)"
    } else {
        "https://"
    }
}

/// Whether `raw` reads as a host (with an optional port) and a path but no scheme:
/// `example.com/hook`, `localhost:3000/hook`, `127.0.0.1:8080`. The URL parser takes
/// `localhost:` for a scheme there, and `example.com/hook` for a relative URL.
fn lacks_scheme(raw: &str) -> bool {
    if raw.contains("://") {
        return false;
    }
    let authority = raw.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, Some(port)),
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && (host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            || (host.starts_with('[') && host.ends_with(']')));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

impl WebhookUrl {
    pub fn parse(raw: &str, policy: &TargetPolicy) -> Result<Self, UrlError> {
        if raw.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        if raw.trim() != raw || raw.is_empty() {
            return Err(UrlError::Invalid(
                "it has surrounding white space or is empty".into(),
            ));
        }
        let http_allowed = policy.allow_http;
        if lacks_scheme(raw) {
            return Err(UrlError::NoScheme {
                http_allowed,
                example: format!("{}://{raw}", if http_allowed { "http" } else { "https" }),
            });
        }
        let url = Url::parse(raw).map_err(|e| UrlError::Invalid(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if http_allowed => {}
            "http" => return Err(UrlError::HttpNotAllowed),
            _ => return Err(UrlError::Scheme { http_allowed }),
        }
        let ip = match url.host() {
            None => return Err(UrlError::NoHost),
            Some(Host::Domain("")) => return Err(UrlError::NoHost),
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        if let Some(ip) = ip
            && !policy.permits(ip)
        {
            return Err(UrlError::BlockedAddress(ip));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy::default()
    }

    #[test]
    fn https_urls_with_public_or_named_hosts_are_accepted() {
        for ok in [
            "https://example.com/hooks",
            "https://93.184.216.34:8443/x?y=1",
            "https://localhost.example/",
        ] {
            assert!(WebhookUrl::parse(ok, &strict()).is_ok(), "{ok}");
        }
    }

    #[test]
    fn http_needs_the_operator_to_allow_it() {
        assert_eq!(
            WebhookUrl::parse("http://example.com/", &strict()),
            Err(UrlError::HttpNotAllowed)
        );
        let allow = TargetPolicy {
            allow_http: true,
            ..TargetPolicy::default()
        };
        assert!(WebhookUrl::parse("http://example.com/", &allow).is_ok());
    }

    #[test]
    fn ip_literals_in_blocked_ranges_are_refused_in_every_spelling() {
        for bad in [
            "https://127.0.0.1/",
            "https://0x7f.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.8/",
        ] {
            assert!(
                matches!(
                    WebhookUrl::parse(bad, &strict()),
                    Err(UrlError::BlockedAddress(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_and_oversized_urls_are_refused() {
        assert!(matches!(
            WebhookUrl::parse("/relative", &strict()),
            Err(UrlError::Invalid(_))
        ));
        assert!(matches!(
            WebhookUrl::parse(" https://a.com", &strict()),
            Err(UrlError::Invalid(_))
        ));
        assert_eq!(
            WebhookUrl::parse("ftp://a.com/", &strict()),
            Err(UrlError::Scheme { http_allowed: false })
        );
        assert_eq!(
            WebhookUrl::parse("mailto:hooks@example.com", &strict()),
            Err(UrlError::Scheme { http_allowed: false })
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(WebhookUrl::parse(&long, &strict()), Err(UrlError::TooLong));
    }

    #[test]
    fn a_url_without_a_scheme_is_called_that_and_shown_with_one() {
        let dev = TargetPolicy {
            allow_http: true,
            ..TargetPolicy::default()
        };
        let error = WebhookUrl::parse("localhost:3000/hook", &dev).expect_err("no scheme");
        assert_eq!(
            error.to_string(),
            "url has no scheme: write it with https:// (or http://), e.g. http://localhost:3000/hook"
        );
        for raw in ["example.com/hook", "127.0.0.1:8080", "localhost", "[::1]:3000/x"] {
            assert!(
                matches!(
                    WebhookUrl::parse(raw, &strict()),
                    Err(UrlError::NoScheme {
                        http_allowed: false,
                        ..
                    })
                ),
                "{raw}"
            );
        }
        let error = WebhookUrl::parse("example.com/hook", &strict()).expect_err("no scheme");
        assert!(
            error.to_string().ends_with("e.g. https://example.com/hook"),
            "{error}"
        );
    }
}
