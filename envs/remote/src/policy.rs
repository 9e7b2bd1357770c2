//! Which servers a remote env may reach.
//!
//! A run spec that names a URL makes the process that runs it open a
//! connection: on a shared server, a request forgery risk. `rl-lab run`
//! may reach anything (the user runs it on their own behalf); `rl-lab
//! serve` reaches loopback only, unless `--allow-remote-env` widens it.
//!
//! A pattern is `HOST[:PORT]`:
//! - `HOST` is a name or an IP address, compared without case; a leading
//!   `*.` matches any name under that domain (`*.example.org` matches
//!   `a.example.org` and `b.a.example.org`, not `example.org`); `*` alone
//!   matches every host;
//! - `PORT` is a number, or `*` for every port; without it every port of
//!   the host is allowed.
//!
//! The check is on the host as written in the URL: a name is not resolved,
//! so allowing a name allows whatever it resolves to.

use std::net::IpAddr;

/// One `--allow-remote-env` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    host: String,
    port: Option<u16>,
}

impl std::str::FromStr for HostPattern {
    type Err = String;

    /// Reads `HOST`, `HOST:PORT`, `HOST:*`, `[IPV6]:PORT`, `*.domain`, `*`.
    fn from_str(text: &str) -> Result<HostPattern, String> {
        let text = text.trim();
        let (host, port) = split_host_port(text)
            .ok_or_else(|| format!("'{text}' is not HOST[:PORT] (PORT a number or *)"))?;
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(format!("'{text}' is not HOST[:PORT]"));
        }
        let port = match port {
            None | Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("'{p}' in '{text}' is not a port number or *"))?,
            ),
        };
        Ok(HostPattern {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.host),
            None => write!(f, "{}:*", self.host),
        }
    }
}

impl HostPattern {
    fn matches(&self, host: &str, port: u16) -> bool {
        let host_matches = if self.host == "*" {
            true
        } else if let Some(domain) = self.host.strip_prefix("*.") {
            host.strip_suffix(domain)
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
        } else {
            normalize_ip(&self.host) == normalize_ip(host)
        };
        host_matches && self.port.is_none_or(|p| p == port)
    }
}

/// Which URLs a remote env may be made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlPolicy {
    /// Any URL: the command line, where the user acts for themselves.
    Any,
    /// Loopback hosts (`localhost`, `127.0.0.0/8`, `::1`), and these.
    LoopbackAnd(Vec<HostPattern>),
}

impl Default for UrlPolicy {
    /// Loopback only, the server's default.
    fn default() -> Self {
        UrlPolicy::LoopbackAnd(Vec::new())
    }
}

impl UrlPolicy {
    /// Whether `url` may be reached, or the message that says why not and
    /// how to allow it.
    pub fn check(&self, url: &str) -> Result<(), String> {
        let (_, host, port) = parse_url(url)?;
        match self {
            UrlPolicy::Any => Ok(()),
            UrlPolicy::LoopbackAnd(patterns) => {
                if is_loopback(&host) || patterns.iter().any(|p| p.matches(&host, port)) {
                    Ok(())
                } else {
                    Err(format!(
                        "this server reaches remote envs on loopback only{}; '{host}:{port}' is not allowed: start `rl-lab serve` with `--allow-remote-env {host}:{port}` (or `--allow-remote-env {host}` for every port) to allow it",
                        if patterns.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " and on {}",
                                patterns
                                    .iter()
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    ))
                }
            }
        }
    }
}

fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            a => Some((host, Some(a.strip_prefix(':')?))),
        };
    }
    match text.rsplit_once(':') {
        // Two colons or more without brackets: a bare IPv6 address.
        Some((host, _)) if host.contains(':') => Some((text, None)),
        Some((host, port)) => Some((host, Some(port))),
        None => Some((text, None)),
    }
}

/// `(scheme, host, port)` of an `http(s)://host[:port][/path]` URL.
pub fn parse_url(url: &str) -> Result<(String, String, u16), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("'{url}' is not a URL such as http://127.0.0.1:5000"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "'{url}': only http:// and https:// URLs are accepted"
        ));
    }
    // The protocol's paths are appended to the URL: a query or fragment
    // would swallow them and point the calls at any path of the host.
    if rest.contains(['?', '#', '\\']) {
        return Err(format!(
            "'{url}': a query, fragment or backslash is not accepted; give the server's base URL"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("'{url}': credentials in the URL are not accepted"));
    }
    let (host, port) =
        split_host_port(authority).ok_or_else(|| format!("'{url}' has a malformed host"))?;
    if host.is_empty() {
        return Err(format!("'{url}' names no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("'{url}' has a malformed port '{p}'"))?,
        None if scheme == "https" => 443,
        None => 80,
    };
    Ok((scheme, host.to_ascii_lowercase(), port))
}

fn normalize_ip(host: &str) -> String {
    host.parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|_| host.to_string())
}

fn is_loopback(host: &str) -> bool {
    // Not `*.localhost`: a resolver may send those names to DNS.
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(patterns: &[&str]) -> UrlPolicy {
        UrlPolicy::LoopbackAnd(patterns.iter().map(|p| p.parse().unwrap()).collect())
    }

    #[test]
    fn queries_fragments_and_other_schemes_are_refused() {
        let policy = UrlPolicy::default();
        for url in [
            "http://127.0.0.1:9000/admin?x=",
            "http://127.0.0.1:9000/#",
            "http://127.0.0.1:9000\\@evil.example",
            "ftp://127.0.0.1/",
            "http://app.localhost:5000",
            "http://127.0.0.1@evil.example",
        ] {
            assert!(policy.check(url).is_err(), "{url}");
        }
    }

    #[test]
    fn loopback_is_allowed_by_default_and_nothing_else() {
        let policy = UrlPolicy::default();
        for url in [
            "http://127.0.0.1:5000",
            "http://localhost/",
            "http://[::1]:80/v1",
            "http://127.1.2.3",
        ] {
            assert!(policy.check(url).is_ok(), "{url}");
        }
        let err = policy.check("http://10.0.0.5:5000/").unwrap_err();
        assert!(err.contains("--allow-remote-env 10.0.0.5:5000"), "{err}");
        assert!(policy.check("file:///etc/passwd").is_err());
        assert!(policy.check("http://user:pw@127.0.0.1/").is_err());
        assert!(UrlPolicy::Any.check("http://example.org").is_ok());
    }

    #[test]
    fn patterns_match_hosts_ports_and_wildcards() {
        let policy = allow(&[
            "sim.lab.org:5000",
            "*.farm.org",
            "10.0.0.5:*",
            "[fd00::1]:80",
        ]);
        assert!(policy.check("http://SIM.lab.org:5000").is_ok());
        assert!(policy.check("http://sim.lab.org:5001").is_err());
        assert!(policy.check("http://a.b.farm.org:1").is_ok());
        assert!(policy.check("http://farm.org:1").is_err());
        assert!(policy.check("http://evilfarm.org:1").is_err());
        assert!(policy.check("http://10.0.0.5:9").is_ok());
        assert!(policy.check("http://[fd00::1]/").is_ok());
        assert!(allow(&["*"]).check("http://anything.example:7").is_ok());
        assert!("host:port".parse::<HostPattern>().is_err());
    }
}
