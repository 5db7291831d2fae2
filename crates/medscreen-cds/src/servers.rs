//! Which FHIR servers may receive a client's access token: the policy against server-side request
//! forgery through `fhirServer` (the design is in [`crate::fetch`]).
//!
//! It is its own module because three steps consult it and none owns it: the trust file lists
//! [`Origin`]s ([`crate::auth`]), a request's `fhirServer` is checked before anything is sent
//! ([`crate::service`]), and every address a name resolves to is checked as the client connects
//! ([`crate::fetch`]).

use std::net::{IpAddr, Ipv4Addr};

use reqwest::Url;

/// An origin (`scheme://host:port`) of the trust file's `fhirServers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parse `https://fhir.example.org` or `https://10.1.2.3:8443` (a trailing `/` is allowed, a
    /// path, query, user or password is not). The token goes only over https, or plain http to
    /// loopback.
    pub fn parse(s: &str) -> Result<Origin, String> {
        let url = Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("an origin has no user or password".into());
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err("an origin has no path, query or fragment".into());
        }
        let origin = Origin::of(&url).ok_or("not an http(s) URL with a host")?;
        if origin.scheme != "https" && !(origin.scheme == "http" && is_loopback_host(&origin.host))
        {
            return Err("not https (plain http only to loopback)".into());
        }
        Ok(origin)
    }

    fn of(url: &Url) -> Option<Origin> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Where the service may send a client's FHIR access token. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct FhirServers {
    allowed: Vec<Origin>,
    loopback: bool,
}

impl FhirServers {
    /// With an allow-list (from the trust file): when it is not empty only its origins are used,
    /// and they may be on any address; when it is empty any origin on a public address is.
    pub fn new(allowed: Vec<Origin>) -> FhirServers {
        FhirServers {
            allowed,
            loopback: false,
        }
    }

    /// Development (`--insecure-no-auth`): any public origin, and loopback.
    pub fn development() -> FhirServers {
        FhirServers {
            allowed: Vec::new(),
            loopback: true,
        }
    }

    /// Whether the token may be sent to `url`, judged before any connection: the scheme, the
    /// allow-list, and the address when the host is one. A name (`localhost` included) is judged by
    /// the addresses it resolves to, when the client connects ([`FhirServers::address_allowed`]).
    pub fn check(&self, url: &Url) -> Result<(), String> {
        let Some(origin) = Origin::of(url) else {
            return Err("`fhirServer` is not an http(s) URL with a host".into());
        };
        let loopback_host = is_loopback_host(&origin.host);
        if origin.scheme != "https" && !(origin.scheme == "http" && loopback_host) {
            return Err("`fhirServer` is not https, so the access token is not sent to it".into());
        }
        if self.allowed.contains(&origin) {
            return Ok(());
        }
        if !self.allowed.is_empty() {
            return Err(
                "`fhirServer` is not one of the origins in the trust file's `fhirServers`".into(),
            );
        }
        match origin.host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => self.ip(ip),
            // A name: judged by what it resolves to.
            Err(_) => Ok(()),
        }
    }

    fn ip(&self, ip: IpAddr) -> Result<(), String> {
        match special(ip) {
            None => Ok(()),
            Some("loopback") if self.loopback => Ok(()),
            Some(what) => Err(refused_message(what)),
        }
    }

    /// Whether an address that `host` resolved to may be connected to.
    pub fn address_allowed(&self, host: &str, ip: IpAddr) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed.iter().any(|o| o.host == host) || self.ip(ip).is_ok()
    }
}

fn refused_message(what: &str) -> String {
    format!(
        "`fhirServer` is on a {what} address, where the service does not send access tokens; list \
         its origin in the trust file's `fhirServers` to allow it"
    )
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What kind of non-public address `ip` is, if it is one.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private")
            } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
                Some("link-local")
            } else if s[0] & 0xff00 == 0xff00 {
                Some("multicast")
            } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0, 0, 0, 0, 0, 0] {
                // NAT64 and the deprecated IPv4-compatible form carry an IPv4 address.
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                special_v4(Ipv4Addr::new(a, b, c, d))
            } else {
                None
            }
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_link_local_and_loopback_addresses_are_special() {
        for (a, what) in [
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("127.0.0.1", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fe80::1", "link-local"),
            ("::1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
        ] {
            assert_eq!(special(ip(a)), Some(what), "{a}");
        }
        // The edges of the ranges are public.
        for a in [
            "172.15.255.255",
            "172.32.0.1",
            "11.0.0.1",
            "8.8.8.8",
            "2001:4860::8888",
            "fbff::1",
        ] {
            assert_eq!(special(ip(a)), None, "{a}");
        }
    }

    #[test]
    fn the_allow_list_admits_its_origins_only() {
        let url = |s: &str| Url::parse(s).unwrap();
        let open = FhirServers::new(Vec::new());
        assert!(open.check(&url("https://fhir.example.org/r4")).is_ok());
        assert!(open.check(&url("https://10.0.0.5/fhir")).is_err());
        assert!(open.check(&url("https://[fe80::1]/fhir")).is_err());
        assert!(open.check(&url("http://127.0.0.1:8080/fhir")).is_err());
        assert!(open.check(&url("http://fhir.example.org/r4")).is_err());
        let dev = FhirServers::development();
        assert!(dev.check(&url("http://127.0.0.1:8080/fhir")).is_ok());
        assert!(dev.check(&url("http://localhost:8080/fhir")).is_ok());
        assert!(dev.address_allowed("localhost", ip("127.0.0.1")));
        assert!(!open.address_allowed("localhost", ip("127.0.0.1")));
        assert!(!open.address_allowed("rebind.example", ip("10.0.0.1")));
        assert!(open.address_allowed("fhir.example.org", ip("93.184.216.34")));
        assert!(dev.check(&url("https://192.168.0.2/fhir")).is_err());
        let listed = FhirServers::new(vec![Origin::parse("https://10.0.0.5:8443").unwrap()]);
        assert!(listed.check(&url("https://10.0.0.5:8443/fhir/r4")).is_ok());
        assert!(listed.check(&url("https://10.0.0.5/fhir")).is_err());
        assert!(listed.check(&url("https://fhir.example.org/r4")).is_err());
        assert!(listed.address_allowed("10.0.0.5", ip("10.0.0.5")));
        assert!(!listed.address_allowed("other.example", ip("10.0.0.5")));
        assert!(Origin::parse("https://a.example/path").is_err());
        assert!(Origin::parse("http://a.example").is_err());
        assert!(Origin::parse("http://127.0.0.1:9000/").is_ok());
    }
}
