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
    #[error("url must use https://")]
    Scheme,
    #[error("url must name a host")]
    NoHost,
    #[error(
        "url points at {0}, a private or otherwise non-public address; add its network to HERALD_ALLOWED_TARGET_NETWORKS to allow it"
    )]
    BlockedAddress(IpAddr),
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
        let url = Url::parse(raw).map_err(|e| UrlError::Invalid(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            "http" => return Err(UrlError::HttpNotAllowed),
            _ => return Err(UrlError::Scheme),
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
            Err(UrlError::Scheme)
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(WebhookUrl::parse(&long, &strict()), Err(UrlError::TooLong));
    }
}
