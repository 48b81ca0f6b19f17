//! The one HTTP client every attempt shares: keep-alive pools, no proxy from the environment,
//! redirects never followed, and an address guard on every connection.
//!
//! Hostnames are resolved by [`GuardedResolver`], which drops every non-public address (unless
//! the operator allowed its network) after resolution, so DNS rebinding cannot reach the
//! platform's own network. IP-literal hosts never reach a resolver; [`check_literal`] judges
//! them before the request is sent.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::net::TargetPolicy;

/// A connection refused because every address of the host is non-public. Its message is what
/// the tenant reads on the attempt, so it names no address: saying what an internal host
/// name resolves to would map the operator's network for anyone who can create a webhook.
/// [`BlockedAddress::log`] gives the operator the detail.
#[derive(Debug, thiserror::Error)]
#[error(
    "the endpoint's address is not public (private, loopback, link-local or otherwise reserved), so Herald does not deliver to it; the operator can allow its network with HERALD_ALLOWED_TARGET_NETWORKS"
)]
pub struct BlockedAddress {
    pub host: String,
    pub addresses: String,
}

impl BlockedAddress {
    /// Tells the operator which host and addresses were refused.
    pub fn log(&self) {
        tracing::warn!(
            target.host = %self.host,
            target.addresses = %self.addresses,
            "delivery refused: the host resolves only to non-public addresses (allow a network with HERALD_ALLOWED_TARGET_NETWORKS)"
        );
    }
}

/// The host name did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {message}")]
pub struct DnsFailure {
    pub host: String,
    pub message: String,
}

pub struct GuardedResolver {
    policy: TargetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| DnsFailure {
                    host: host.clone(),
                    message: e.to_string(),
                })?
                .collect();
            if resolved.is_empty() {
                return Err(Box::new(DnsFailure {
                    host,
                    message: "no addresses".into(),
                }) as Box<dyn std::error::Error + Send + Sync>);
            }
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if allowed.is_empty() {
                let addresses = resolved
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(
                    Box::new(BlockedAddress { host, addresses }) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Judges an IP-literal host (`https://10.0.0.1/`, `https://[::ffff:127.0.0.1]/`).
pub fn check_literal(url: &reqwest::Url, policy: &TargetPolicy) -> Result<(), BlockedAddress> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    if policy.permits(ip) {
        Ok(())
    } else {
        Err(BlockedAddress {
            host: ip.to_string(),
            addresses: ip.to_string(),
        })
    }
}

/// reqwest is built without a default TLS crypto provider (ring keeps the build lean), so
/// one is installed for the process before any client is built; doing it twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the shared client.
pub fn build(policy: &TargetPolicy, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver {
            policy: policy.clone(),
        }))
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        // As many idle connections as attempts can be in flight: fewer, and every attempt
        // beyond them opens (and closes) a connection of its own.
        .pool_max_idle_per_host(super::WINDOW as usize)
        .tcp_nodelay(true)
        .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_are_judged_before_any_connection() {
        let strict = TargetPolicy::default();
        for url in [
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
            "https://10.1.1.1:8443/x",
        ] {
            let url = reqwest::Url::parse(url).expect("url");
            assert!(check_literal(&url, &strict).is_err(), "{url}");
        }
        let url = reqwest::Url::parse("https://93.184.216.34/").expect("url");
        assert!(check_literal(&url, &strict).is_ok());
        let named = reqwest::Url::parse("https://localhost/").expect("url");
        assert!(
            check_literal(&named, &strict).is_ok(),
            "names are the resolver's job"
        );
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_only_to_loopback() {
        let resolver = GuardedResolver {
            policy: TargetPolicy::default(),
        };
        let name: Name = "localhost".parse().expect("name");
        let error = resolver.resolve(name).await.err().expect("refused");
        assert!(error.is::<BlockedAddress>(), "{error}");
        assert!(error.to_string().contains("HERALD_ALLOWED_TARGET_NETWORKS"));

        let allowed = GuardedResolver {
            policy: TargetPolicy {
                allow_http: true,
                allowed_networks: vec![
                    "127.0.0.0/8".parse().expect("cidr"),
                    "::1/128".parse().expect("cidr"),
                ],
            },
        };
        let name: Name = "localhost".parse().expect("name");
        assert!(allowed.resolve(name).await.is_ok());
    }
}
