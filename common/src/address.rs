//! Where outbound requests may go: the address classifier, the URL check, and the resolver
//! that makes a request connect only to the addresses it vetted.
//!
//! A URL given by a client must not make the service reach what only the service can reach
//! (server-side request forgery): loopback, private networks (RFC 1918), link-local (with
//! the cloud metadata address 169.254.169.254), carrier-grade NAT, multicast, broadcast,
//! unspecified, reserved and documentation ranges; in IPv6 the same, ULA and link-local, and
//! IPv4 addresses wrapped in IPv6 (mapped, compatible, NAT64, 6to4) are judged by the IPv4
//! address inside. Hosts an operator lists in `allowed_hosts` are exempt.
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

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() || a == 0 => "an unspecified (0.0.0.0/8) address",
        _ if ip.is_loopback() => "a loopback address",
        _ if ip.is_private() => "a private (RFC 1918) address",
        _ if ip.is_link_local() => "a link-local address (cloud metadata lives there)",
        (100, 64..=127, _) => "a carrier-grade NAT (100.64.0.0/10) address",
        (192, 0, 0) => "an IETF protocol assignment (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking (198.18.0.0/15) address",
        _ if ip.is_broadcast() => "the broadcast address",
        _ if ip.is_multicast() => "a multicast address",
        (240..=255, _, _) => "a reserved (240.0.0.0/4) address",
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4).map(|_| "an IPv6 form of a refused IPv4 address");
    }
    Some(match segments[0] {
        _ if ip.is_unspecified() => "the unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        0xfc00..=0xfdff => "a unique local (fc00::/7) address",
        0xfe80..=0xfebf => "a link-local address",
        0xfec0..=0xfeff => "a site-local address",
        0xff00..=0xffff => "a multicast address",
        0x2001 if segments[1] == 0 => "a Teredo (2001::/32) address",
        0x2001 if segments[1] == 0x0db8 => "a documentation address",
        0x0100 if segments[1..4] == [0, 0, 0] => "a discard-only (100::/64) address",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // ::a.b.c.d, but not :: and ::1 themselves.
        [0, 0, 0, 0, 0, 0, _, _] if s[6] != 0 => Some(low),
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

    fn refused(text: &str) -> bool {
        refusal(text.parse().unwrap()).is_some()
    }

    #[test]
    fn internal_ranges_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "2002:7f00:1::1",
            "2001::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "198.17.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4007::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert!(!refused(ip), "{ip} should pass");
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
