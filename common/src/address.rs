//! Where outbound requests may go: the address classifier, the URL check, and the resolver
//! that makes a request connect only to the addresses it vetted.
//!
//! A URL given by a client must not make the service reach what only the service can reach
//! (server-side request forgery): loopback, private networks (RFC 1918), link-local (with
//! the cloud metadata address 169.254.169.254), carrier-grade NAT, multicast, broadcast,
//! unspecified, reserved and documentation ranges: every block of IANA's IPv4 and IPv6
//! Special-Purpose Address Registries that is not globally reachable ([`REFUSED_V4`],
//! [`REFUSED_V6`]). IPv4 addresses wrapped in IPv6 (mapped, SIIT-translated, well-known
//! NAT64, 6to4) are judged by the IPv4 address inside; local-use NAT64 and the deprecated
//! IPv4-compatible form are refused whatever they carry. Hosts an operator lists in
//! `allowed_hosts` are exempt.
//!
//! [`VettedResolver`] resolves a host once and hands the HTTP client only the addresses that
//! pass, so that the connection is made to an address that was checked, not to whatever a
//! second lookup (DNS rebinding) would say.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why `ip` may not be reached from a client's URL, or `None` if it may.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => refusal_v4(ip),
        IpAddr::V6(ip) => refusal_v6(ip),
    }
}

/// The IPv4 ranges a client may not reach: every block of IANA's IPv4 Special-Purpose
/// Address Registry that is not globally reachable (whole /24s where the registry carves a
/// few global addresses out, as in 192.0.0.0/24), the deprecated 6to4 relay anycast block,
/// and multicast. AS112 and AMT blocks are global and pass.
const REFUSED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "an unspecified (0.0.0.0/8) address",
    ),
    (
        Ipv4Addr::new(10, 0, 0, 0),
        8,
        "a private (RFC 1918) address",
    ),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "a carrier-grade NAT (100.64.0.0/10) address",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "a loopback address"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "a link-local address (cloud metadata lives there)",
    ),
    (
        Ipv4Addr::new(172, 16, 0, 0),
        12,
        "a private (RFC 1918) address",
    ),
    (
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "an IETF protocol assignment (192.0.0.0/24)",
    ),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "a documentation address"),
    (
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "a 6to4 relay anycast (192.88.99.0/24) address",
    ),
    (
        Ipv4Addr::new(192, 168, 0, 0),
        16,
        "a private (RFC 1918) address",
    ),
    (
        Ipv4Addr::new(198, 18, 0, 0),
        15,
        "a benchmarking (198.18.0.0/15) address",
    ),
    (
        Ipv4Addr::new(198, 51, 100, 0),
        24,
        "a documentation address",
    ),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "a documentation address"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "a multicast address"),
    (
        Ipv4Addr::new(240, 0, 0, 0),
        4,
        "a reserved (240.0.0.0/4) address or the broadcast address",
    ),
];

/// The IPv6 ranges a client may not reach outright: every block of IANA's IPv6
/// Special-Purpose Address Registry that is not globally reachable, site-local and
/// multicast. Blocks that carry an IPv4 address are judged by it first ([`embedded_v4`]);
/// this list only sees what they leave.
const REFUSED_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "the unspecified address"),
    (Ipv6Addr::LOCALHOST, 128, "a loopback address"),
    (
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        96,
        "an IPv4-compatible (::/96) address",
    ),
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "a local-use NAT64 (64:ff9b:1::/48) address",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "a discard-only (100::/64) address",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0),
        64,
        "a dummy-prefix (100:0:0:1::/64) address",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "an IETF protocol assignment (2001::/23, Teredo included)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "a documentation address",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "a documentation address",
    ),
    (
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "a segment-routing (5f00::/16) address",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "a unique local (fc00::/7) address",
    ),
    (
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "a link-local address",
    ),
    (
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "a site-local address",
    ),
    (
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        "a multicast address",
    ),
];

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    REFUSED_V4
        .iter()
        .find(|(net, len, _)| bits >> (32 - len) == u32::from(*net) >> (32 - len))
        .map(|(.., reason)| *reason)
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4).map(|_| "an IPv6 form of a refused IPv4 address");
    }
    let bits = u128::from(ip);
    REFUSED_V6
        .iter()
        .find(|(net, len, _)| bits >> (128 - len) == u128::from(*net) >> (128 - len))
        .map(|(.., reason)| *reason)
}

/// The IPv4 address an IPv6 address carries, where one of its forms routes to it:
/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated for SIIT (`::ffff:0:a.b.c.d`), the
/// well-known NAT64 prefix (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`). The
/// deprecated IPv4-compatible form and local-use NAT64 are refused whatever they carry.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// The hosts an operator allows although they resolve to refused addresses.
#[derive(Debug, Clone, Default)]
pub struct Allowed(Arc<Vec<String>>);

impl Allowed {
    /// The hosts of `callbacks.allowed_hosts`, compared without case.
    pub fn new(hosts: &[String]) -> Self {
        Self(Arc::new(
            hosts
                .iter()
                .map(|host| host.trim_matches(['[', ']']).to_ascii_lowercase())
                .collect(),
        ))
    }

    /// Whether `host` (as in a URL, IPv6 without brackets) is listed.
    pub fn contains(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']);
        self.0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host))
    }
}

/// The longest URL accepted.
pub const MAX_URL: usize = 2048;

/// Checks a client's URL without resolving it: `http` or `https`, a host, no credentials,
/// at most [`MAX_URL`] bytes, and not plainly internal (an address literal that is refused,
/// or `localhost`) unless allowed. The message never repeats the URL.
pub fn check_url(text: &str, allowed: &Allowed) -> Result<Url, String> {
    let url = check_form(text)?;
    let host = url.host().ok_or_else(|| "the URL has no host".to_owned())?;
    let host_text = url.host_str().unwrap_or_default();
    if allowed.contains(host_text) {
        return Ok(url);
    }
    let refused = match host {
        url::Host::Ipv4(ip) => refusal(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => refusal(IpAddr::V6(ip)),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (name == "localhost" || name.ends_with(".localhost")).then_some("a loopback name")
        }
    };
    match refused {
        Some(reason) => Err(format!("the host is {reason}")),
        None => Ok(url),
    }
}

/// Checks the form of a client's URL only: `http` or `https`, a host, no credentials, at
/// most [`MAX_URL`] bytes. Where it leads is [`check_url`]'s and the resolver's question.
pub fn check_form(text: &str) -> Result<Url, String> {
    if text.len() > MAX_URL {
        return Err(format!("the URL is longer than {MAX_URL} bytes"));
    }
    let url = Url::parse(text).map_err(|error| format!("not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs are allowed".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL with credentials is not allowed".to_owned());
    }
    if url.host().is_none() {
        return Err("the URL has no host".to_owned());
    }
    Ok(url)
}

/// A resolver that resolves each host once and keeps only the addresses [`refusal`] lets
/// through (all of them for an allowed host).
#[derive(Debug, Clone)]
pub struct VettedResolver {
    allowed: Allowed,
}

impl VettedResolver {
    /// A resolver exempting `allowed`.
    pub fn new(allowed: Allowed) -> Self {
        Self { allowed }
    }
}

/// Why a host cannot be reached: every address it resolves to is refused.
#[derive(Debug, thiserror::Error)]
#[error("refused: the host resolves only to addresses a client may not reach ({0})")]
pub struct Refused(pub &'static str);

impl Resolve for VettedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allowed.contains(&host) {
                return Ok(Box::new(found.into_iter()) as Addrs);
            }
            let mut reason = "no address";
            let vetted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| match refusal(address.ip()) {
                    Some(why) => {
                        reason = why;
                        false
                    }
                    None => true,
                })
                .collect();
            if vetted.is_empty() {
                return Err(Box::new(Refused(reason)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(vetted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every special-purpose block of both IANA registries, at its edges, and the public
    /// addresses around them: (address, refused).
    const TABLE: &[(&str, bool)] = &[
        // IPv4 Special-Purpose Address Registry.
        ("0.0.0.0", true),
        ("0.255.255.255", true),
        ("1.0.0.0", false),
        ("9.255.255.255", false),
        ("10.0.0.0", true),
        ("10.255.255.255", true),
        ("11.0.0.0", false),
        ("100.63.255.255", false),
        ("100.64.0.0", true),
        ("100.127.255.255", true),
        ("100.128.0.0", false),
        ("126.255.255.255", false),
        ("127.0.0.1", true),
        ("127.255.255.255", true),
        ("128.0.0.0", false),
        ("169.253.255.255", false),
        ("169.254.0.0", true),
        ("169.254.169.254", true),
        ("169.255.0.0", false),
        ("172.15.255.255", false),
        ("172.16.0.0", true),
        ("172.31.255.255", true),
        ("172.32.0.0", false),
        ("191.255.255.255", false),
        ("192.0.0.0", true),
        ("192.0.0.8", true),
        ("192.0.0.170", true),
        ("192.0.0.255", true),
        ("192.0.1.0", false),
        ("192.0.2.0", true),
        ("192.0.2.255", true),
        ("192.0.3.0", false),
        ("192.31.196.1", false),
        ("192.52.193.1", false),
        ("192.88.98.255", false),
        ("192.88.99.1", true),
        ("192.88.100.0", false),
        ("192.167.255.255", false),
        ("192.168.0.0", true),
        ("192.168.255.255", true),
        ("192.169.0.0", false),
        ("192.175.48.1", false),
        ("198.17.255.255", false),
        ("198.18.0.0", true),
        ("198.19.255.255", true),
        ("198.20.0.0", false),
        ("198.51.100.0", true),
        ("198.51.100.255", true),
        ("203.0.113.0", true),
        ("203.0.113.255", true),
        ("203.0.114.0", false),
        ("223.255.255.255", false),
        ("224.0.0.0", true),
        ("239.255.255.250", true),
        ("240.0.0.0", true),
        ("255.255.255.255", true),
        ("8.8.8.8", false),
        ("93.184.216.34", false),
        // IPv6 Special-Purpose Address Registry.
        ("::", true),
        ("::1", true),
        ("::2", true),
        ("::127.0.0.1", true),
        ("::8.8.8.8", true),
        ("::ffff:127.0.0.1", true),
        ("::ffff:10.0.0.1", true),
        ("::ffff:169.254.169.254", true),
        ("::ffff:8.8.8.8", false),
        ("::ffff:0:10.0.0.1", true),
        ("::ffff:0:169.254.169.254", true),
        ("::ffff:0:8.8.8.8", false),
        ("64:ff9b::a00:1", true),
        ("64:ff9b::7f00:1", true),
        ("64:ff9b::808:808", false),
        ("64:ff9b:1::a00:1", true),
        ("64:ff9b:1::808:808", true),
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", true),
        ("64:ff9b:2::1", false),
        ("100::1", true),
        ("100::ffff:ffff:ffff:ffff", true),
        ("100:0:0:1::1", true),
        ("100:0:0:2::1", false),
        ("2001::1", true),
        ("2001:1::1", true),
        ("2001:1ff:ffff::1", true),
        ("2001:200::1", false),
        ("2001:db8::1", true),
        ("2001:db8:ffff::1", true),
        ("2001:db9::1", false),
        ("2002:a00:1::", true),
        ("2002:7f00:1::1", true),
        ("2002:808:808::", false),
        ("2620:4f:8000::1", false),
        ("3ffe:ffff::1", false),
        ("3fff::1", true),
        ("3fff:fff:ffff::1", true),
        ("3fff:1000::1", false),
        ("5f00::1", true),
        ("5f01::1", false),
        ("fbff:ffff::1", false),
        ("fc00::1", true),
        ("fd12:3456::1", true),
        ("fe80::1", true),
        ("febf::1", true),
        ("fec0::1", true),
        ("feff::1", true),
        ("ff02::1", true),
        ("2606:4700:4700::1111", false),
        ("2a00:1450:4007::200e", false),
    ];

    #[test]
    fn the_special_purpose_registries_are_refused_and_the_rest_passes() {
        for (ip, expected) in TABLE {
            let refused = refusal(ip.parse().unwrap()).is_some();
            assert_eq!(refused, *expected, "{ip}: refused {refused}");
        }
    }

    #[tokio::test]
    async fn the_resolver_hands_out_only_vetted_addresses() {
        // `localhost` resolves from the hosts file, without any traffic.
        let name = || "localhost".parse::<Name>().unwrap();
        let refused = VettedResolver::new(Allowed::default())
            .resolve(name())
            .await
            .err()
            .expect("loopback refused");
        assert!(refused.is::<Refused>(), "{refused}");
        let allowed = VettedResolver::new(Allowed::new(&["LocalHost".to_owned()]))
            .resolve(name())
            .await
            .map_err(|e| e.to_string())
            .unwrap();
        assert!(
            allowed
                .into_iter()
                .all(|address| address.ip().is_loopback())
        );
    }

    #[test]
    fn urls_are_checked_without_resolving() {
        let none = Allowed::default();
        for bad in [
            "ftp://example.org/x",
            "file:///etc/passwd",
            "http://user:pass@example.org/",
            "http://127.0.0.1:8080/hook",
            "http://[::1]/hook",
            "http://[::ffff:7f00:1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://localhost/hook",
            "http://api.localhost./hook",
            "not a url",
        ] {
            assert!(check_url(bad, &none).is_err(), "{bad} should be refused");
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL));
        let message = check_url(&long, &none).unwrap_err();
        assert!(!message.contains("aaaa"), "{message}");
        check_url("https://hooks.example.org/thumbnails?x=1", &none).unwrap();
        let allowed = Allowed::new(&["127.0.0.1".to_owned(), "[::1]".to_owned()]);
        check_url("http://127.0.0.1:9/hook", &allowed).unwrap();
        check_url("http://[::1]:9/hook", &allowed).unwrap();
    }
}
