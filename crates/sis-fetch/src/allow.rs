//! The operator's allow-list: host names and networks that outbound requests
//! may reach even though they are in a blocked range.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::IpAddr;

use crate::address::Cidr;
use crate::error::FetchError;

/// The environment variable read by [`AllowList::from_env`].
pub const ALLOW_ENV: &str = "SIS_FETCH_ALLOW";

/// Host names and networks exempt from the blocked ranges.
///
/// A host name entry exempts a URL whose host is exactly that name (compared
/// case-insensitively, no wildcards, no suffix matching), whatever addresses it
/// resolves to. A network entry (`10.0.0.0/8`, `fd00::/8`, or a single address
/// such as `127.0.0.1`) exempts the addresses it contains, whichever name led
/// to them. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is matched as its
/// IPv4 address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    hosts: BTreeSet<String>,
    networks: Vec<Cidr>,
}

impl AllowList {
    /// The empty list: every blocked range stays blocked.
    pub fn none() -> AllowList {
        AllowList::default()
    }

    /// Parses a comma-separated list of host names, addresses and CIDR
    /// networks, e.g. `"127.0.0.1,10.0.0.0/8,files.example.com"`.
    ///
    /// Whitespace around entries and empty entries are ignored. An invalid
    /// entry (a bad prefix length, bits set past the prefix, a port, a
    /// wildcard, a URL, characters not allowed in a host name) is an error
    /// naming the entry.
    pub fn parse(list: &str) -> Result<AllowList, FetchError> {
        let mut allow = AllowList::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            allow.add(entry)?;
        }
        Ok(allow)
    }

    /// Parses the `SIS_FETCH_ALLOW` environment variable (see
    /// [`AllowList::parse`]); unset means the empty list.
    pub fn from_env() -> Result<AllowList, FetchError> {
        AllowList::from_env_source(|key| std::env::var_os(key))
    }

    /// [`AllowList::from_env`] reading variables through `lookup` (so tests
    /// need not change the process environment).
    pub fn from_env_source(
        lookup: impl FnOnce(&str) -> Option<OsString>,
    ) -> Result<AllowList, FetchError> {
        match lookup(ALLOW_ENV) {
            None => Ok(AllowList::none()),
            Some(value) => match value.to_str() {
                Some(value) => AllowList::parse(value),
                None => Err(FetchError::InvalidAllowEntry {
                    entry: format!("${ALLOW_ENV}"),
                    reason: "not valid UTF-8".to_owned(),
                }),
            },
        }
    }

    /// This list with every entry of `other` added (e.g. the configuration
    /// file's list and the environment's).
    pub fn union(mut self, other: &AllowList) -> AllowList {
        self.hosts.extend(other.hosts.iter().cloned());
        for net in &other.networks {
            if !self.networks.contains(net) {
                self.networks.push(*net);
            }
        }
        self
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.networks.is_empty()
    }

    /// The host name entries, lower-case.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(String::as_str)
    }

    /// The network entries (single addresses as `/32` or `/128`).
    pub fn networks(&self) -> &[Cidr] {
        &self.networks
    }

    /// Whether the host name `host` is allow-listed (exact, case-insensitive).
    pub fn allows_host(&self, host: &str) -> bool {
        !self.hosts.is_empty() && self.hosts.contains(&host.to_ascii_lowercase())
    }

    /// Whether `addr` lies in an allow-listed network.
    pub fn allows_addr(&self, addr: IpAddr) -> bool {
        let canonical = match addr {
            IpAddr::V6(v6) => v6.to_canonical(),
            v4 => v4,
        };
        self.networks
            .iter()
            .any(|net| net.contains(addr) || net.contains(canonical))
    }

    fn add(&mut self, entry: &str) -> Result<(), FetchError> {
        let invalid = |reason: &str| FetchError::InvalidAllowEntry {
            entry: entry.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some((addr, prefix)) = entry.split_once('/') {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| invalid("not an IP address before '/'"))?;
            let prefix: u8 = prefix
                .parse()
                .map_err(|_| invalid("the prefix length is not a number"))?;
            let net = Cidr::new(addr, prefix).ok_or_else(|| {
                invalid("the prefix length is too long or the address has bits set past it")
            })?;
            self.push_network(net);
        } else if let Ok(addr) = entry.parse::<IpAddr>() {
            self.push_network(Cidr::host(addr));
        } else {
            self.hosts.insert(valid_host_name(entry).map_err(invalid)?);
        }
        Ok(())
    }

    fn push_network(&mut self, net: Cidr) {
        if !self.networks.contains(&net) {
            self.networks.push(net);
        }
    }
}

/// `name` lower-cased when it is a DNS host name as URLs carry it (ASCII
/// letters, digits, `-` and `_`, dot-separated labels of 1 to 63 characters,
/// at most 253 in all, not ending in a numeric label, which a URL would read
/// as an IPv4 address).
fn valid_host_name(name: &str) -> Result<String, &'static str> {
    if name.len() > 253 {
        return Err("host name longer than 253 characters");
    }
    if name.contains(['*', ':', '/', '@', '[', ']']) {
        return Err("expected a host name, an IP address or a CIDR network \
                    (no wildcard, port, scheme, path or brackets)");
    }
    let lower = name.to_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must have 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("a host name has only ASCII letters, digits, '-' and '_'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with '-'");
        }
    }
    let looks_numeric = labels.last().is_some_and(|last| {
        last.bytes().all(|b| b.is_ascii_digit())
            || last
                .strip_prefix("0x")
                .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if looks_numeric {
        return Err("not a valid IP address, and a host name may not end in a number");
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FetchErrorKind;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn parses_hosts_addresses_and_networks() {
        let allow = AllowList::parse(" 127.0.0.1 , 10.0.0.0/8,Files.Example.COM,,fd00::/8, ::1 ")
            .expect("valid list");
        assert!(allow.allows_addr(ip("127.0.0.1")));
        assert!(!allow.allows_addr(ip("127.0.0.2")));
        assert!(allow.allows_addr(ip("10.200.3.4")));
        assert!(!allow.allows_addr(ip("11.0.0.1")));
        assert!(allow.allows_addr(ip("fd12:3456::1")));
        assert!(allow.allows_addr(ip("::1")));
        assert!(!allow.allows_addr(ip("::2")));
        assert!(allow.allows_host("files.example.com"));
        assert!(allow.allows_host("FILES.example.com"));
        assert!(!allow.allows_host("a.files.example.com"));
        assert!(!allow.allows_host("files.example.com.evil.net"));
        assert!(!allow.allows_host("example.com"));
        assert_eq!(allow.hosts().collect::<Vec<_>>(), ["files.example.com"]);
        assert_eq!(allow.networks().len(), 4);
    }

    #[test]
    fn mapped_ipv6_matches_ipv4_entry() {
        let allow = AllowList::parse("127.0.0.1").expect("valid");
        assert!(allow.allows_addr(ip("::ffff:127.0.0.1")));
        assert!(!allow.allows_addr(ip("::1")));
        // A host-name entry never exempts an address, nor an address a name.
        assert!(!allow.allows_host("127.0.0.1"));
        assert!(!allow.allows_host("localhost"));
    }

    #[test]
    fn empty_list() {
        let allow = AllowList::parse("").expect("valid");
        assert!(allow.is_empty());
        assert_eq!(AllowList::parse(" , ,").expect("valid"), AllowList::none());
        assert!(!allow.allows_addr(ip("127.0.0.1")));
        assert!(!allow.allows_host("localhost"));
    }

    #[test]
    fn invalid_entries_are_named() {
        for (list, bad) in [
            ("127.0.0.1,10.0.0.0/33", "10.0.0.0/33"),
            ("10.0.0.1/8", "10.0.0.1/8"),
            ("10.0.0.0/x", "10.0.0.0/x"),
            ("10.0.0/8", "10.0.0/8"),
            ("::/129", "::/129"),
            ("*.example.com", "*.example.com"),
            ("http://files.example.com", "http://files.example.com"),
            ("files.example.com:8080", "files.example.com:8080"),
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("[::1]", "[::1]"),
            ("a..b", "a..b"),
            ("-a.com", "-a.com"),
            ("bad host", "bad host"),
            ("héllo.example", "héllo.example"),
            ("10.0.0", "10.0.0"),
            ("256.1.1.1", "256.1.1.1"),
            ("0x7f.1", "0x7f.1"),
        ] {
            let err = AllowList::parse(list).expect_err(list);
            assert_eq!(err.kind(), FetchErrorKind::Config);
            assert!(
                err.to_string().contains(&format!("\"{bad}\"")),
                "{list}: {err}"
            );
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(AllowList::parse(&long).is_err());
    }

    #[test]
    fn from_env_source_reads_the_variable() {
        let allow = AllowList::from_env_source(|key| {
            assert_eq!(key, ALLOW_ENV);
            Some("127.0.0.1, files.example.com".into())
        })
        .expect("valid");
        assert!(allow.allows_addr(ip("127.0.0.1")));
        assert!(allow.allows_host("files.example.com"));
        assert!(AllowList::from_env_source(|_| None)
            .expect("unset")
            .is_empty());
        let err = AllowList::from_env_source(|_| Some("10.0.0.0/40".into())).expect_err("bad");
        assert!(err.to_string().contains("10.0.0.0/40"), "{err}");
    }

    #[test]
    fn union_merges() {
        let a = AllowList::parse("127.0.0.1,a.example").expect("valid");
        let b = AllowList::parse("127.0.0.1,10.0.0.0/8,b.example").expect("valid");
        let u = a.union(&b);
        assert_eq!(u.networks().len(), 2);
        assert!(u.allows_host("a.example") && u.allows_host("b.example"));
    }
}
