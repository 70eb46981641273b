//! Which URLs chatapi may fetch on a caller's behalf (a video to ingest, a callback to notify):
//! `http`/`https` only, and by default no address that reaches inside the host's network —
//! loopback, private, link-local (which holds the cloud metadata endpoints), carrier-grade NAT,
//! multicast, unspecified or reserved — also when an IPv6 address carries such an IPv4 address
//! inside it (mapped, NAT64, 6to4). The host is resolved here and the connection is pinned to the
//! addresses checked, so a DNS answer cannot change between the check and the connect; and the
//! client never goes through an `HTTP(S)_PROXY`, which would resolve the name again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("`{0}` is not a valid URL")]
    Invalid(String),
    #[error("only http and https URLs can be fetched, not `{0}:`")]
    Scheme(String),
    // The resolver's own words and the address a name resolves to stay in the log: a caller
    // must not learn what the server's network holds.
    #[error("`{host}` could not be resolved")]
    Unresolved { host: String, detail: String },
    #[error("`{host}` reaches a {range} address; this server does not fetch from inside its own network (an operator can allow it with videos.allow_private_urls)")]
    Private {
        host: String,
        ip: IpAddr,
        range: &'static str,
    },
}

/// A URL that passed the guard, with the addresses to connect to.
#[derive(Debug)]
pub struct Checked {
    pub url: Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

pub async fn check(raw: &str, allow_private: bool) -> Result<Checked, Refused> {
    let url = Url::parse(raw).map_err(|_| Refused::Invalid(raw.chars().take(200).collect()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Scheme(url.scheme().to_string()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Refused::Invalid(raw.chars().take(200).collect()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| {
                tracing::info!(%host, error = %e, "url guard: name not resolved");
                Refused::Unresolved {
                    host: host.clone(),
                    detail: e.to_string(),
                }
            })?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Refused::Unresolved {
            host,
            detail: "no addresses".into(),
        });
    }
    if !allow_private {
        // Every address must pass: a name with one public and one private address is refused,
        // or a client's happy-eyeballs could pick the private one.
        for addr in &addrs {
            if let Some(range) = inside(addr.ip()) {
                tracing::info!(%host, ip = %addr.ip(), range, "url guard: refused an inner address");
                return Err(Refused::Private {
                    host,
                    ip: addr.ip(),
                    range,
                });
            }
        }
    }
    Ok(Checked { url, host, addrs })
}

impl Checked {
    /// The HTTP client for this URL alone: connected to the checked addresses only, never
    /// through a proxy (whatever `HTTP_PROXY`/`HTTPS_PROXY` say), never following a redirect
    /// by itself (each hop is checked again by the caller).
    pub fn client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&self.host, &self.addrs)
            .user_agent(concat!("chatapi/", env!("CARGO_PKG_VERSION")))
    }
}

/// The name of the inner range `ip` lies in, if it does.
pub fn inside(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => inside_v4(v4),
        IpAddr::V6(v6) => inside_v6(v6),
    }
}

fn inside_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local (cloud metadata)"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "carrier-grade NAT"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_unspecified() || o[0] == 0 {
        "unspecified"
    } else if ip.is_broadcast() || o[0] >= 240 {
        "reserved"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        "IETF protocol assignment"
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        "benchmarking"
    } else {
        return None;
    })
}

fn inside_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return inside_v4(v4);
    }
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| {
        let ([a, b], [c, d]) = (hi.to_be_bytes(), lo.to_be_bytes());
        Ipv4Addr::new(a, b, c, d)
    };
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits; so may a network's own
    // NAT64 prefix in the local-use 64:ff9b:1::/48, wherever it puts the address (RFC 6052
    // allows several spots): any such address is refused, its inner range named when it is
    // in the last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        return inside_v4(v4(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return Some(inside_v4(v4(s[6], s[7])).unwrap_or("local-use NAT64"));
    }
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48, which a 6to4 relay reaches.
    if s[0] == 0x2002 {
        return inside_v4(v4(s[1], s[2]));
    }
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "private (unique local, holds cloud metadata)"
    } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        "link-local"
    } else if ip.is_multicast() {
        "multicast"
    } else if s[0] == 0 {
        "reserved (IPv4-compatible)"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_ranges_are_named() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "224.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "ff02::1",
            "::127.0.0.1",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "64:ff9b:1::a00:1",
            "64:ff9b:1:a00:1::",
        ] {
            assert!(
                inside(ip.parse().unwrap()).is_some(),
                "{ip} should be refused"
            );
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "151.101.1.69",
            "2002:808:808::1",
        ] {
            assert_eq!(inside(ip.parse().unwrap()), None, "{ip} should be allowed");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_unless_allowed() {
        let refused = check("http://127.0.0.1:9/x.mp4", false).await.unwrap_err();
        assert!(
            matches!(
                refused,
                Refused::Private {
                    range: "loopback",
                    ..
                }
            ),
            "{refused}"
        );
        let refused = check("http://localhost:9/x.mp4", false).await.unwrap_err();
        assert!(matches!(refused, Refused::Private { .. }), "{refused}");
        assert!(check("http://[::ffff:7f00:1]/", false).await.is_err());
        assert!(check("http://127.0.0.1:9/x.mp4", true).await.is_ok());
        assert!(matches!(
            check("file:///etc/passwd", true).await,
            Err(Refused::Scheme(_))
        ));
        assert!(matches!(
            check("gopher://x", true).await,
            Err(Refused::Scheme(_))
        ));
    }
}
