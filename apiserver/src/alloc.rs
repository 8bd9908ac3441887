//! Service address and port allocation: ClusterIPs from `--service-cluster-ip-range` and
//! NodePorts from `--service-node-port-range`, never handed out twice, released when a
//! Service is deleted, and rebuilt from the stored Services on start (so they are kept
//! across restarts with no separate state to drift).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// An IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR (a.b.c.d/n)"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("{s:?}: bad IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .map_err(|_| format!("{s:?}: bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("{s:?}: prefix length must be between 8 and 30"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            network: Ipv4Addr::from(u32::from(ip) & mask),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// The `n`th address (0 is the network address).
    pub fn nth(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }

    /// Number of addresses.
    pub fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.network)
    }
}

/// Why an allocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// A requested address or port is outside the range.
    #[error("{0}")]
    OutOfRange(String),
    /// A requested address or port is taken.
    #[error("{0}")]
    Taken(String),
    /// Nothing is free.
    #[error("{0}")]
    Full(String),
}

#[derive(Debug)]
struct State {
    ips: BTreeSet<u32>,
    ports: BTreeSet<u16>,
    next_ip: u32,
    next_port: u16,
}

/// The allocator of one apiserver.
#[derive(Debug)]
pub struct Allocator {
    /// The service CIDR.
    pub range: Cidr,
    /// The NodePort range, inclusive.
    pub ports: (u16, u16),
    state: Mutex<State>,
}

impl Allocator {
    /// An allocator over `range` and `ports` with nothing allocated.
    pub fn new(range: Cidr, ports: (u16, u16)) -> Self {
        Allocator {
            range,
            ports,
            state: Mutex::new(State {
                ips: BTreeSet::new(),
                ports: BTreeSet::new(),
                next_ip: 2,
                next_port: ports.0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first service address, reserved for the `kubernetes` Service.
    pub fn kubernetes_ip(&self) -> Ipv4Addr {
        self.range.nth(1)
    }

    /// Allocates `want` if given (it must be free and in range), else the next free address.
    pub fn allocate_ip(&self, want: Option<Ipv4Addr>) -> Result<Ipv4Addr, AllocError> {
        let mut s = self.state();
        let size = self.range.size();
        if let Some(ip) = want {
            if !self.range.contains(ip)
                || ip == self.range.network
                || ip == self.range.nth(size - 1)
            {
                return Err(AllocError::OutOfRange(format!(
                    "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    self.range
                )));
            }
            let n = u32::from(ip) - u32::from(self.range.network);
            if !s.ips.insert(n) {
                return Err(AllocError::Taken("provided IP is already allocated".into()));
            }
            return Ok(ip);
        }
        // Skip network, the kubernetes address (1) and broadcast; rotate for fairness.
        let usable = size.saturating_sub(3);
        for i in 0..usable {
            let n = 2 + (s.next_ip - 2 + i) % usable.max(1);
            if !s.ips.contains(&n) {
                s.ips.insert(n);
                s.next_ip = n + 1;
                if s.next_ip >= size - 1 {
                    s.next_ip = 2;
                }
                return Ok(self.range.nth(n));
            }
        }
        Err(AllocError::Full(
            "failed to allocate a serviceIP: range is full".into(),
        ))
    }

    /// Releases an address (no-op if not allocated or outside the range).
    pub fn release_ip(&self, ip: Ipv4Addr) {
        if self.range.contains(ip) {
            let n = u32::from(ip) - u32::from(self.range.network);
            self.state().ips.remove(&n);
        }
    }

    /// Allocates `want` if given, else the next free NodePort.
    pub fn allocate_port(&self, want: Option<u16>) -> Result<u16, AllocError> {
        let mut s = self.state();
        let (lo, hi) = self.ports;
        if let Some(p) = want {
            if p < lo || p > hi {
                return Err(AllocError::OutOfRange(format!(
                    "provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
                )));
            }
            if !s.ports.insert(p) {
                return Err(AllocError::Taken(
                    "provided port is already allocated".into(),
                ));
            }
            return Ok(p);
        }
        let count = u32::from(hi - lo) + 1;
        for i in 0..count {
            let p = lo + ((u32::from(s.next_port - lo) + i) % count) as u16;
            if !s.ports.contains(&p) {
                s.ports.insert(p);
                s.next_port = if p == hi { lo } else { p + 1 };
                return Ok(p);
            }
        }
        Err(AllocError::Full("range is full".into()))
    }

    /// Releases a NodePort.
    pub fn release_port(&self, port: u16) {
        self.state().ports.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse() {
        let c: Cidr = "10.96.0.0/12".parse().unwrap();
        assert_eq!(c.nth(1), Ipv4Addr::new(10, 96, 0, 1));
        assert!(c.contains(Ipv4Addr::new(10, 111, 255, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 112, 0, 0)));
        assert!("10.0.0.0".parse::<Cidr>().is_err());
        assert!("10.0.0.0/31".parse::<Cidr>().is_err());
    }

    #[test]
    fn no_address_or_port_twice_until_released() {
        let a = Allocator::new("10.0.0.0/29".parse().unwrap(), (30000, 30002));
        let ips: Vec<_> = (0..5).map(|_| a.allocate_ip(None).unwrap()).collect();
        assert!(!ips.contains(&a.kubernetes_ip()));
        let mut sorted = ips.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        assert!(matches!(a.allocate_ip(None), Err(AllocError::Full(_))));
        a.release_ip(ips[2]);
        assert_eq!(a.allocate_ip(None).unwrap(), ips[2]);
        assert!(matches!(
            a.allocate_ip(Some(ips[0])),
            Err(AllocError::Taken(_))
        ));
        assert!(matches!(
            a.allocate_ip(Some(Ipv4Addr::new(10, 0, 1, 1))),
            Err(AllocError::OutOfRange(_))
        ));
        let ports: Vec<_> = (0..3).map(|_| a.allocate_port(None).unwrap()).collect();
        assert_eq!(ports, [30000, 30001, 30002]);
        assert!(a.allocate_port(None).is_err());
        a.release_port(30001);
        assert_eq!(a.allocate_port(Some(30001)).unwrap(), 30001);
        assert!(a.allocate_port(Some(80)).is_err());
    }
}
