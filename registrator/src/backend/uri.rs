//! The registry URI (`consul://host:port`, `consulkv://host/prefix`,
//! `consul-unix:///run/consul.sock`) split the way Go's `url.Parse` splits it for
//! upstream's adapter factories: scheme, host (authority) and path.
//!
//! The one representation of the URI: the command line validates it with
//! [`RegistryUri::parse`] (so a bad URI is a usage error before anything runs) and
//! the backends are built from the parsed value.

use std::fmt;

use super::BackendError;

/// The schemes a backend exists for.
pub const SCHEMES: &[&str] = &[
    "consul",
    "consul-tls",
    "consul-unix",
    "consulkv",
    "consulkv-unix",
    "etcd",
];

/// A parsed registry URI of a known scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryUri {
    /// The URI as given (for messages).
    pub raw: String,
    /// Lower-cased scheme (`consul`, `etcd`...).
    pub scheme: String,
    /// `host`, `host:port` or `[v6]:port`; empty when the URI names none.
    pub host: String,
    /// Everything after the host up to `?`/`#`, with its leading `/`; may be empty.
    pub path: String,
}

impl RegistryUri {
    /// Splits and checks `uri`. A string without `scheme://` or with a scheme no
    /// backend serves is a [`BackendError::UnrecognizedAdapter`] (upstream's
    /// wording); a malformed scheme, host or port, or a unix scheme without a
    /// socket path, is a [`BackendError::BadUri`].
    pub fn parse(uri: &str) -> Result<RegistryUri, BackendError> {
        let bad = |reason: &str| BackendError::BadUri {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(BackendError::UnrecognizedAdapter(uri.to_string()));
        };
        let valid_scheme = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !valid_scheme {
            return Err(bad("missing or invalid scheme"));
        }
        let scheme = scheme.to_ascii_lowercase();
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(BackendError::UnrecognizedAdapter(uri.to_string()));
        }
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        // Userinfo is accepted by Go and ignored by every adapter.
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("invalid character in host"));
        }
        let port = if let Some(v6) = host.strip_prefix('[') {
            let Some((_, after)) = v6.split_once(']') else {
                return Err(bad("missing ']' in host"));
            };
            match after {
                "" => "",
                p => p.strip_prefix(':').ok_or_else(|| bad("invalid port"))?,
            }
        } else {
            match host.split_once(':') {
                Some((_, p)) if p.contains(':') => return Err(bad("too many colons in host")),
                Some((_, p)) => p,
                None => "",
            }
        };
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(bad(&format!("invalid port {port:?}")));
        }
        let parsed = RegistryUri {
            raw: uri.to_string(),
            scheme,
            host: host.trim_end_matches(':').to_string(),
            path: path.to_string(),
        };
        // Upstream hands `unix://<host><path>` to the client; a missing path used to
        // fail at the first request (consulkv-unix: index out of range at start-up).
        match parsed.scheme.as_str() {
            "consul-unix" if parsed.unix_socket().is_empty() => Err(bad(
                "a socket path is required: consul-unix:///path/to/consul.sock",
            )),
            "consulkv-unix" if parsed.unix_socket().is_empty() => Err(bad(
                "a socket path is required: consulkv-unix:///path/to/consul.sock:/prefix",
            )),
            _ => Ok(parsed),
        }
    }

    /// The socket path of a `*-unix://` URI: the path, cut at its first `:` for
    /// `consulkv-unix` (`/run/consul.sock:/prefix`). Empty for other schemes.
    pub fn unix_socket(&self) -> &str {
        match self.scheme.as_str() {
            "consul-unix" => &self.path,
            "consulkv-unix" => self.path.split_once(':').map_or(&self.path, |(s, _)| s),
            _ => "",
        }
    }

    /// The key prefix without leading or trailing `/`: the path, or for
    /// `consulkv-unix` what follows the socket's `:` (empty when absent; upstream
    /// crashed).
    pub fn key_prefix(&self) -> &str {
        let path = match self.scheme.as_str() {
            "consulkv-unix" => self.path.split_once(':').map_or("", |(_, p)| p),
            _ => &self.path,
        };
        path.trim_matches('/')
    }

    /// The host with `default_port` added when it has none; `None` when the URI has no host.
    pub fn host_with_port(&self, default_port: u16) -> Option<String> {
        with_default_port(&self.host, default_port)
    }
}

impl fmt::Display for RegistryUri {
    /// The URI as given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// `host` → `host:port`, `[::1]` → `[::1]:port`, unchanged when a port is present;
/// `None` for an empty host.
pub(crate) fn with_default_port(host: &str, default_port: u16) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    let has_port = if host.starts_with('[') {
        host.contains("]:")
    } else {
        host.contains(':')
    };
    Some(if has_port {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> (String, String, String) {
        let u = RegistryUri::parse(uri).unwrap();
        (u.scheme, u.host, u.path)
    }

    #[test]
    fn splits_like_go_url_parse() {
        let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            parse("consul://10.0.0.1:8500"),
            s("consul", "10.0.0.1:8500", "")
        );
        assert_eq!(parse("CONSUL://h"), s("consul", "h", ""));
        assert_eq!(parse("consul://"), s("consul", "", ""));
        assert_eq!(
            parse("consulkv://h:8500/services/x"),
            s("consulkv", "h:8500", "/services/x")
        );
        assert_eq!(
            parse("consul-unix:///run/consul.sock"),
            s("consul-unix", "", "/run/consul.sock")
        );
        assert_eq!(
            parse("consulkv-unix:///tmp/c.sock:/prefix"),
            s("consulkv-unix", "", "/tmp/c.sock:/prefix")
        );
        assert_eq!(
            parse("etcd://[::1]:2379/p?x=1"),
            s("etcd", "[::1]:2379", "/p")
        );
        assert_eq!(parse("etcd://user@h:1"), s("etcd", "h:1", ""));
    }

    #[test]
    fn unix_sockets_and_prefixes() {
        let u = RegistryUri::parse("consulkv-unix:///tmp/c.sock:/a/b/").unwrap();
        assert_eq!((u.unix_socket(), u.key_prefix()), ("/tmp/c.sock", "a/b"));
        let u = RegistryUri::parse("consulkv-unix:///tmp/c.sock").unwrap();
        assert_eq!((u.unix_socket(), u.key_prefix()), ("/tmp/c.sock", ""));
        let u = RegistryUri::parse("consul-unix:///run/c.sock").unwrap();
        assert_eq!(
            (u.unix_socket(), u.key_prefix()),
            ("/run/c.sock", "run/c.sock")
        );
        let u = RegistryUri::parse("etcd://h/skydns/").unwrap();
        assert_eq!((u.unix_socket(), u.key_prefix()), ("", "skydns"));
        assert_eq!(u.to_string(), "etcd://h/skydns/");
    }

    #[test]
    fn errors_use_upstream_wording() {
        for (uri, text) in [
            ("consul", "unrecognized adapter: consul"),
            (
                "zookeeper://zk:2181/x",
                "unrecognized adapter: zookeeper://zk:2181/x",
            ),
            (
                "consul-unix://",
                "bad adapter uri: consul-unix://: a socket path is required: \
                 consul-unix:///path/to/consul.sock",
            ),
            (
                "consulkv-unix://",
                "bad adapter uri: consulkv-unix://: a socket path is required: \
                 consulkv-unix:///path/to/consul.sock:/prefix",
            ),
            (
                "1x://h",
                "bad adapter uri: 1x://h: missing or invalid scheme",
            ),
            (
                "consul://h:port",
                "bad adapter uri: consul://h:port: invalid port \"port\"",
            ),
            (
                "consul://h:70000",
                "bad adapter uri: consul://h:70000: invalid port \"70000\"",
            ),
            (
                "consul://a b",
                "bad adapter uri: consul://a b: invalid character in host",
            ),
            (
                "etcd://[::1",
                "bad adapter uri: etcd://[::1: missing ']' in host",
            ),
        ] {
            assert_eq!(RegistryUri::parse(uri).unwrap_err().to_string(), text);
        }
    }

    #[test]
    fn default_port_is_added_only_when_missing() {
        assert_eq!(with_default_port("h", 1).as_deref(), Some("h:1"));
        assert_eq!(with_default_port("h:2", 1).as_deref(), Some("h:2"));
        assert_eq!(with_default_port("[::1]", 1).as_deref(), Some("[::1]:1"));
        assert_eq!(with_default_port("[::1]:2", 1).as_deref(), Some("[::1]:2"));
        assert_eq!(with_default_port("", 1), None);
    }
}
