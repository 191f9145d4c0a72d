//! Where the control plane may send requests a user configured (webhooks): public addresses
//! only, unless the operator allows private ones (`WEBHOOK_ALLOW_PRIVATE`, for local development;
//! off by default, `make run` included). A target is checked when it is created and again at
//! every delivery, after DNS resolution, and the connection goes to the addresses that passed:
//! a name that resolves to a public address at creation and to `127.0.0.1` later (DNS
//! rebinding) is refused at delivery. Redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Whether `ip` is on the public internet: not loopback, private, link-local (cloud metadata
/// services live at 169.254.169.254 and fd00:ec2::254), shared (carrier NAT), unique-local,
/// unspecified, broadcast, multicast or documentation, nor an IPv4 address in IPv6 clothing
/// that is one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| v6.to_ipv4().filter(|_| v6.segments()[..6] == [0; 6])) {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240) // reserved
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 among them)
        || (first & 0xffc0) == 0xfe80 // link-local
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

/// The address `url`'s host spells, when it is an IP literal (`[…]` for IPv6). Such hosts
/// never reach a resolver, so they are checked on their own.
pub fn literal_ip(url: &reqwest::Url) -> Option<IpAddr> {
    url.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Why `url` may not be a target, if it may not: its host is, or resolves to, a non-public
/// address. `None` when every address it resolves to is public.
pub async fn refusal(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match literal_ip(url) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => match tokio::net::lookup_host((host, port)).await {
            Ok(a) => a.collect(),
            Err(e) => return Some(format!("`{host}` does not resolve: {e}")),
        },
    };
    match addrs.iter().find(|a| !is_public(a.ip())) {
        Some(a) => Some(format!(
            "`{host}` is a private, loopback, link-local or metadata address ({}): webhooks go to public addresses only (an operator may allow private ones with WEBHOOK_ALLOW_PRIVATE=true)",
            a.ip()
        )),
        None if addrs.is_empty() => Some(format!("`{host}` does not resolve")),
        None => None,
    }
}

/// A resolver for reqwest that only ever hands out public addresses: the connection is made to
/// what was checked, so a rebinding name cannot slip a private address in between.
#[derive(Clone, Default)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = format!("`{host}` resolves to no public address").into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The HTTP client webhooks are sent with: no redirects, and (unless `allow_private`) public
/// addresses only, for names and IP literals alike.
pub fn client(timeout: std::time::Duration, allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().timeout(timeout).redirect(reqwest::redirect::Policy::none());
    if allow_private { builder.build() } else { builder.dns_resolver(Arc::new(PublicOnly)).build() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
            "0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "192.0.2.1", "198.51.100.7", "240.0.0.1", "192.0.0.8",
            "::1", "::", "fd00:ec2::254", "fc00::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
            "::127.0.0.1", "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().expect(ip)), "{ip} passed as public");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().expect(ip)), "{ip} refused");
        }
    }

    #[tokio::test]
    async fn targets_are_checked_by_address_without_sending_anything() {
        // IP literals and `localhost` (from /etc/hosts): nothing here leaves the machine.
        for url in ["http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[fd00:ec2::254]/", "http://localhost:8000/", "http://10.1.2.3/", "https://[::ffff:192.168.0.1]/"] {
            let parsed = reqwest::Url::parse(url).expect(url);
            assert!(refusal(&parsed).await.is_some(), "{url} accepted");
        }
        assert_eq!(refusal(&reqwest::Url::parse("https://8.8.8.8/hook").expect("url")).await, None);
    }
}
