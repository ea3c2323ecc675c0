//! The table of address ranges that outbound requests may not reach unless
//! the operator allow-lists them, and CIDR blocks.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network: an address whose bits past `prefix` are zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network `network/prefix`; `None` when the prefix is longer than the
    /// address or the address has bits set past the prefix.
    pub fn new(network: IpAddr, prefix: u8) -> Option<Cidr> {
        let cidr = Cidr { network, prefix };
        let max = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        (prefix <= max && cidr.masked_equal_to_self()).then_some(cidr)
    }

    /// The network holding exactly `addr` (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Cidr {
        let prefix = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Cidr {
            network: addr,
            prefix,
        }
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` lies in this network (an IPv4 address is never in an
    /// IPv6 network, nor the other way round).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                prefix_eq(u32::from(net).into(), u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                prefix_eq(u128::from(net), u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }

    fn masked_equal_to_self(&self) -> bool {
        match self.network {
            IpAddr::V4(net) => {
                let bits = u32::from(net);
                bits & mask32(self.prefix) == bits
            }
            IpAddr::V6(net) => {
                let bits = u128::from(net);
                bits & mask128(self.prefix) == bits
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask32(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p if p >= 32 => u32::MAX,
        p => u32::MAX << (32 - u32::from(p)),
    }
}

fn mask128(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        p if p >= 128 => u128::MAX,
        p => u128::MAX << (128 - u32::from(p)),
    }
}

/// Whether the top `prefix` bits of two `width`-bit numbers agree.
fn prefix_eq(a: u128, b: u128, prefix: u8, width: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(width.saturating_sub(prefix.min(width)));
    (a >> shift) == (b >> shift)
}

/// Why an address is refused by default: the range and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockedRange {
    /// The range, e.g. `127.0.0.0/8`.
    pub range: &'static str,
    /// What the range is, e.g. `loopback`.
    pub what: &'static str,
    /// For an IPv6 address judged by the IPv4 address it carries: the IPv6
    /// form, e.g. `IPv4-mapped ::ffff:0:0/96`.
    pub via: Option<&'static str>,
}

impl fmt::Display for BlockedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.what, self.range)?;
        if let Some(via) = self.via {
            write!(f, " via {via}")?;
        }
        Ok(())
    }
}

/// `(network, prefix, range, what)`.
type V4Entry = (u32, u8, &'static str, &'static str);

const fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// IPv4 ranges refused by default.
const BLOCKED_V4: &[V4Entry] = &[
    (v4(0, 0, 0, 0), 8, "0.0.0.0/8", "\"this network\""),
    (v4(10, 0, 0, 0), 8, "10.0.0.0/8", "private"),
    (v4(100, 64, 0, 0), 10, "100.64.0.0/10", "carrier-grade NAT"),
    (v4(127, 0, 0, 0), 8, "127.0.0.0/8", "loopback"),
    (
        v4(169, 254, 169, 254),
        32,
        "169.254.169.254/32",
        "cloud metadata service",
    ),
    (v4(169, 254, 0, 0), 16, "169.254.0.0/16", "link-local"),
    (v4(172, 16, 0, 0), 12, "172.16.0.0/12", "private"),
    (
        v4(192, 0, 0, 0),
        24,
        "192.0.0.0/24",
        "IETF protocol assignments",
    ),
    (v4(192, 168, 0, 0), 16, "192.168.0.0/16", "private"),
    (v4(198, 18, 0, 0), 15, "198.18.0.0/15", "benchmarking"),
    (v4(224, 0, 0, 0), 4, "224.0.0.0/4", "multicast"),
    (
        v4(255, 255, 255, 255),
        32,
        "255.255.255.255/32",
        "limited broadcast",
    ),
    (v4(240, 0, 0, 0), 4, "240.0.0.0/4", "reserved"),
];

/// How an IPv6 range is judged.
#[derive(Clone, Copy)]
enum V6Rule {
    /// Refused.
    Block(&'static str),
    /// Judged by the IPv4 address in its low 32 bits; the IPv6 form.
    EmbeddedLow32(&'static str),
    /// 6to4 (`2002:AABB:CCDD::/48`): judged by the IPv4 address in bits 16..48.
    Embedded6to4(&'static str),
}

/// `(network, prefix, range, rule)`, most specific first.
type V6Entry = (u128, u8, &'static str, V6Rule);

const BLOCKED_V6: &[V6Entry] = &[
    (0, 128, "::/128", V6Rule::Block("unspecified")),
    (1, 128, "::1/128", V6Rule::Block("loopback")),
    (
        0xffff_0000_0000,
        96,
        "::ffff:0:0/96",
        V6Rule::EmbeddedLow32("IPv4-mapped ::ffff:0:0/96"),
    ),
    (
        0xffff_0000_0000_0000,
        96,
        "::ffff:0:0:0/96",
        V6Rule::EmbeddedLow32("IPv4-translated ::ffff:0:0:0/96"),
    ),
    (
        0,
        96,
        "::/96",
        V6Rule::EmbeddedLow32("IPv4-compatible ::/96"),
    ),
    (
        0x0064_ff9b_0001_u128 << 80,
        48,
        "64:ff9b:1::/48",
        V6Rule::Block("local-use NAT64"),
    ),
    (
        0x0064_ff9b_u128 << 96,
        96,
        "64:ff9b::/96",
        V6Rule::EmbeddedLow32("NAT64 64:ff9b::/96"),
    ),
    (
        0x2001_0000_u128 << 96,
        32,
        "2001::/32",
        V6Rule::Block("Teredo tunnel"),
    ),
    (
        0x2002_u128 << 112,
        16,
        "2002::/16",
        V6Rule::Embedded6to4("6to4 2002::/16"),
    ),
    (
        0xfc00_u128 << 112,
        7,
        "fc00::/7",
        V6Rule::Block("unique local"),
    ),
    (
        0xfe80_u128 << 112,
        10,
        "fe80::/10",
        V6Rule::Block("link-local"),
    ),
    (
        0xfec0_u128 << 112,
        10,
        "fec0::/10",
        V6Rule::Block("site-local"),
    ),
    (
        0xff00_u128 << 112,
        8,
        "ff00::/8",
        V6Rule::Block("multicast"),
    ),
];

/// The range that makes `addr` refused by default, or `None` for an address
/// that may be reached (a public one).
///
/// IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
/// NAT64 `64:ff9b::/96`, 6to4) are judged by that IPv4 address.
pub fn blocked_range(addr: IpAddr) -> Option<BlockedRange> {
    match addr {
        IpAddr::V4(a) => blocked_v4(a),
        IpAddr::V6(a) => blocked_v6(a),
    }
}

/// Whether `addr` is refused by default; see [`blocked_range`].
pub fn is_blocked(addr: IpAddr) -> bool {
    blocked_range(addr).is_some()
}

fn blocked_v4(addr: Ipv4Addr) -> Option<BlockedRange> {
    let bits = u32::from(addr);
    BLOCKED_V4
        .iter()
        .find(|(net, prefix, _, _)| prefix_eq((*net).into(), bits.into(), *prefix, 32))
        .map(|&(_, _, range, what)| BlockedRange {
            range,
            what,
            via: None,
        })
}

fn blocked_v6(addr: Ipv6Addr) -> Option<BlockedRange> {
    let bits = u128::from(addr);
    let (_, _, range, rule) = BLOCKED_V6
        .iter()
        .find(|(net, prefix, _, _)| prefix_eq(*net, bits, *prefix, 128))?;
    // The casts truncate on purpose: they keep exactly the embedded bits.
    let (via, v4) = match *rule {
        V6Rule::Block(what) => {
            return Some(BlockedRange {
                range,
                what,
                via: None,
            })
        }
        V6Rule::EmbeddedLow32(via) => (via, Ipv4Addr::from(bits as u32)),
        V6Rule::Embedded6to4(via) => (via, Ipv4Addr::from((bits >> 80) as u32)),
    };
    blocked_v4(v4).map(|inner| BlockedRange {
        via: Some(via),
        ..inner
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn blocked(s: &str) -> bool {
        is_blocked(ip(s))
    }

    #[test]
    fn ipv4_range_edges() {
        // (first blocked, last blocked, just below, just above)
        let edges = [
            ("0.0.0.0", "0.255.255.255", None, Some("1.0.0.0")),
            (
                "10.0.0.0",
                "10.255.255.255",
                Some("9.255.255.255"),
                Some("11.0.0.0"),
            ),
            (
                "100.64.0.0",
                "100.127.255.255",
                Some("100.63.255.255"),
                Some("100.128.0.0"),
            ),
            (
                "127.0.0.0",
                "127.255.255.255",
                Some("126.255.255.255"),
                Some("128.0.0.0"),
            ),
            (
                "169.254.0.0",
                "169.254.255.255",
                Some("169.253.255.255"),
                Some("169.255.0.0"),
            ),
            (
                "172.16.0.0",
                "172.31.255.255",
                Some("172.15.255.255"),
                Some("172.32.0.0"),
            ),
            (
                "192.0.0.0",
                "192.0.0.255",
                Some("191.255.255.255"),
                Some("192.0.1.0"),
            ),
            (
                "192.168.0.0",
                "192.168.255.255",
                Some("192.167.255.255"),
                Some("192.169.0.0"),
            ),
            (
                "198.18.0.0",
                "198.19.255.255",
                Some("198.17.255.255"),
                Some("198.20.0.0"),
            ),
            (
                "224.0.0.0",
                "255.255.255.255",
                Some("223.255.255.255"),
                None,
            ),
        ];
        for (first, last, below, above) in edges {
            assert!(blocked(first), "{first} must be blocked");
            assert!(blocked(last), "{last} must be blocked");
            if let Some(b) = below {
                assert!(!blocked(b), "{b} must be allowed");
            }
            if let Some(a) = above {
                assert!(!blocked(a), "{a} must be allowed");
            }
        }
        assert!(blocked("239.255.255.255"));
        assert!(blocked("240.0.0.0"));
    }

    #[test]
    fn metadata_and_reasons() {
        let r = blocked_range(ip("169.254.169.254")).expect("blocked");
        assert_eq!(r.what, "cloud metadata service");
        assert_eq!(
            blocked_range(ip("127.0.0.1")).expect("blocked").what,
            "loopback"
        );
        assert_eq!(
            blocked_range(ip("255.255.255.255")).expect("blocked").what,
            "limited broadcast"
        );
        assert_eq!(
            blocked_range(ip("::ffff:127.0.0.1"))
                .expect("blocked")
                .to_string(),
            "loopback (127.0.0.0/8) via IPv4-mapped ::ffff:0:0/96"
        );
    }

    #[test]
    fn public_addresses_allowed() {
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "223.255.255.255",
            "2001:4860::8888",
            "2001:4860:4860::8888",
            "2606:4700:4700::1111",
            "2400:cb00::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!blocked(a), "{a} must be allowed");
        }
    }

    #[test]
    fn ipv6_ranges() {
        for a in [
            "::",
            "::1",
            "fc00::",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fd00::2",
            "fe80::",
            "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fec0::1",
            "ff00::",
            "ff02::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b:1::1",
            "2001::1",
        ] {
            assert!(blocked(a), "{a} must be blocked");
        }
        for a in [
            "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe00::1",
            "2001:1::1",
        ] {
            assert!(!blocked(a), "{a} must be allowed");
        }
    }

    #[test]
    fn ipv6_embedded_ipv4() {
        for a in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.1.2.3",
            "::2",
            "::ffff:0:127.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.1.1",
            "2002:7f00:1::",
            "2002:a00:1::1",
        ] {
            assert!(blocked(a), "{a} must be blocked");
        }
    }

    #[test]
    fn cidr_contains_and_validates() {
        let c = Cidr::new(ip("10.0.0.0"), 8).expect("valid");
        assert!(c.contains(ip("10.255.255.255")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(!c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::new(ip("10.0.0.1"), 8).is_none(), "host bits set");
        assert!(Cidr::new(ip("10.0.0.0"), 33).is_none());
        assert!(Cidr::new(ip("::"), 129).is_none());
        let all = Cidr::new(ip("0.0.0.0"), 0).expect("valid");
        assert!(all.contains(ip("255.255.255.255")));
        let v6 = Cidr::new(ip("fd00::"), 8).expect("valid");
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe00::")));
        assert_eq!(v6.to_string(), "fd00::/8");
        assert!(Cidr::host(ip("127.0.0.1")).contains(ip("127.0.0.1")));
        assert!(!Cidr::host(ip("127.0.0.1")).contains(ip("127.0.0.2")));
    }
}
