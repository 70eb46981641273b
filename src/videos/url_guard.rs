//! Which URLs chatapi may fetch on a caller's behalf (a video to ingest, a callback to notify):
//! `http`/`https` only, and by default no address that reaches inside the host's network —
//! loopback, private, link-local (which holds the cloud metadata endpoints), carrier-grade NAT,
//! multicast, unspecified or reserved. The host is resolved here and the connection is pinned
//! to the addresses checked, so a DNS answer cannot change between the check and the connect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refused {
    #[error("`{0}` is not a valid URL")]
    Invalid(String),
    #[error("only http and https URLs can be fetched, not `{0}:`")]
    Scheme(String),
    #[error("`{host}` could not be resolved: {detail}")]
    Unresolved { host: String, detail: String },
    #[error("`{host}` resolves to {ip}, a {range} address; this server does not fetch from inside its own network (an operator can allow it with videos.allow_private_urls)")]
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
            .map_err(|e| Refused::Unresolved {
                host: host.clone(),
                detail: e.to_string(),
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
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        return inside_v4(Ipv4Addr::new(a, b, c, d));
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
        ] {
            assert!(
                inside(ip.parse().unwrap()).is_some(),
                "{ip} should be refused"
            );
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "151.101.1.69"] {
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
