//! Which addresses Herald may deliver to.
//!
//! Webhook URLs come from tenants, so every connection is a potential SSRF into the
//! platform's own network. Only public unicast addresses are allowed, unless the operator
//! exempts a network with `HERALD_ALLOWED_TARGET_NETWORKS` (or runs with `HERALD_DEV`, which
//! exempts loopback). The check runs on the address actually connected to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use ipnet::IpNet;

/// Ranges that are never public: private, loopback, link-local, shared (CGNAT), multicast,
/// documentation, benchmarking and reserved space, in both families.
static NON_PUBLIC: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/8",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ]
    .iter()
    .filter_map(|net| net.parse().ok())
    .collect()
});

/// The IPv4 address hidden inside an IPv6 one (v4-mapped `::ffff:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:ab:cd::`), so that it is judged as the IPv4 address it
/// reaches.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let o = ip.octets();
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Normalises an address to the one it really reaches.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Is this a public unicast address?
pub fn is_public(ip: IpAddr) -> bool {
    let ip = canonical(ip);
    !NON_PUBLIC.iter().any(|net| net.contains(&ip))
}

/// What the operator allows as delivery targets.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    /// Plain `http://` URLs are accepted.
    pub allow_http: bool,
    /// Non-public networks that are allowed anyway.
    pub allowed_networks: Vec<IpNet>,
}

impl TargetPolicy {
    pub fn permits(&self, ip: IpAddr) -> bool {
        let canon = canonical(ip);
        is_public(canon)
            || self
                .allowed_networks
                .iter()
                .any(|net| net.contains(&ip) || net.contains(&canon))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn private_loopback_and_special_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip(s)), "{s} should not be public");
        }
    }

    #[test]
    fn ordinary_internet_addresses_are_public() {
        for s in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip(s)), "{s} should be public");
        }
    }

    #[test]
    fn allowed_networks_exempt_their_addresses_including_v4_mapped_forms() {
        let policy = TargetPolicy {
            allow_http: false,
            allowed_networks: vec!["127.0.0.0/8".parse().expect("cidr")],
        };
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(ip("10.0.0.1")));
    }
}
