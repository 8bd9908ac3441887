//! Node IPAM: hands each node a pod CIDR (`spec.podCIDR`/`spec.podCIDRs`) carved out of the
//! cluster CIDR, like kube-controller-manager's range allocator (`--allocate-node-cidrs`,
//! `--cluster-cidr`, `--node-cidr-mask-size`, IPv4 only).
//!
//! The allocator is rebuilt from the nodes on start ([`CidrAllocator::from_nodes`]): each
//! node's existing pod CIDR is marked used and remembered for that node, so a node keeps
//! its range across controller restarts and no range is ever handed out twice. New ranges
//! are found round-robin from just after the last one handed out (upstream's order), so a
//! released range is not immediately reused. Ranges overlapping the service CIDR can be
//! held back with [`CidrAllocator::exclude`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Node;

/// Default `--node-cidr-mask-size` for IPv4.
pub const DEFAULT_NODE_MASK: u8 = 24;
/// Largest difference between the cluster and node mask sizes (at most 65536 ranges), as
/// upstream allows.
pub const MAX_MASK_DIFF: u8 = 16;

/// Why an allocation or a configuration failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A CIDR string could not be parsed (or is not IPv4).
    #[error("invalid CIDR {0:?}")]
    InvalidCidr(String),
    /// The node mask size does not fit the cluster CIDR.
    #[error(
        "node CIDR mask size /{node} must be between the cluster mask size /{cluster} and /32, \
         and at most {MAX_MASK_DIFF} bits longer"
    )]
    InvalidMask {
        /// The cluster CIDR's prefix length.
        cluster: u8,
        /// The requested node prefix length.
        node: u8,
    },
    /// A CIDR is not one of the node ranges of the cluster CIDR.
    #[error("CIDR {cidr} is not a /{mask} range inside the cluster CIDR {cluster}")]
    OutOfRange {
        /// The offending CIDR.
        cidr: String,
        /// The cluster CIDR.
        cluster: String,
        /// The node mask size.
        mask: u8,
    },
    /// A node's existing CIDR is already held by another node.
    #[error("CIDR {cidr} of node {node} is already allocated to node {other}")]
    Conflict {
        /// The CIDR.
        cidr: String,
        /// The node claiming it.
        node: String,
        /// The node holding it.
        other: String,
    },
    /// Every range is in use.
    #[error("no remaining pod CIDRs in {0}")]
    Exhausted(String),
}

/// An IPv4 CIDR, normalised (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    base: u32,
    prefix: u8,
}

impl Cidr {
    /// The network address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(prefix: u8) -> u32 {
        match prefix {
            0 => 0,
            p => u32::MAX << (32 - u32::from(p.min(32))),
        }
    }

    /// Whether `other` lies entirely within this CIDR.
    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && other.base & Self::mask(self.prefix) == self.base
    }

    /// Whether the two CIDRs share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }
}

impl FromStr for Cidr {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidCidr(s.to_string());
        let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr {
            base: u32::from(ip) & Cidr::mask(prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix)
    }
}

/// Allocates per-node pod CIDRs out of the cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrAllocator {
    cluster: Cidr,
    node_mask: u8,
    /// Number of node ranges (`2^(node_mask - cluster prefix)`).
    count: u32,
    /// Index -> holder: a node name, or `None` for ranges held back by [`Self::exclude`].
    used: BTreeMap<u32, Option<String>>,
    /// Node -> index.
    by_node: BTreeMap<String, u32>,
    next: u32,
}

impl CidrAllocator {
    /// An empty allocator over `cluster_cidr` (e.g. `10.244.0.0/16`) handing out
    /// `/node_mask` ranges ([`DEFAULT_NODE_MASK`]).
    pub fn new(cluster_cidr: &str, node_mask: u8) -> Result<Self, Error> {
        let cluster: Cidr = cluster_cidr.parse()?;
        if node_mask < cluster.prefix
            || node_mask > 32
            || node_mask - cluster.prefix > MAX_MASK_DIFF
        {
            return Err(Error::InvalidMask {
                cluster: cluster.prefix,
                node: node_mask,
            });
        }
        Ok(CidrAllocator {
            cluster,
            node_mask,
            count: 1u32 << (node_mask - cluster.prefix),
            used: BTreeMap::new(),
            by_node: BTreeMap::new(),
            next: 0,
        })
    }

    /// An allocator that knows the nodes' existing pod CIDRs (`spec.podCIDRs`, else
    /// `spec.podCIDR`; only IPv4 ones are considered). Fails, as upstream does at start-up,
    /// when a node holds a range outside the cluster CIDR or one already held by another.
    pub fn from_nodes(cluster_cidr: &str, node_mask: u8, nodes: &[Node]) -> Result<Self, Error> {
        let mut a = Self::new(cluster_cidr, node_mask)?;
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            for cidr in node_cidrs(node) {
                if cidr.parse::<Cidr>().is_ok() {
                    a.occupy(&name, &cidr)?;
                }
            }
        }
        Ok(a)
    }

    /// The cluster CIDR.
    pub fn cluster_cidr(&self) -> Cidr {
        self.cluster
    }

    /// The node mask size.
    pub fn node_mask(&self) -> u8 {
        self.node_mask
    }

    /// How many ranges are free.
    pub fn free(&self) -> usize {
        (self.count as usize).saturating_sub(self.used.len())
    }

    /// The CIDR allocated to a node, if any.
    pub fn cidr_of(&self, node: &str) -> Option<String> {
        self.by_node.get(node).map(|i| self.cidr_at(*i).to_string())
    }

    fn cidr_at(&self, index: u32) -> Cidr {
        let shift = 32 - u32::from(self.node_mask);
        let offset = if shift >= 32 { 0 } else { index << shift };
        Cidr {
            base: self.cluster.base | offset,
            prefix: self.node_mask,
        }
    }

    fn index_of(&self, cidr: &str) -> Result<u32, Error> {
        let c: Cidr = cidr.parse()?;
        if c.prefix != self.node_mask || !self.cluster.contains(&c) {
            return Err(Error::OutOfRange {
                cidr: cidr.to_string(),
                cluster: self.cluster.to_string(),
                mask: self.node_mask,
            });
        }
        let shift = 32 - u32::from(self.node_mask);
        let rel = c.base - self.cluster.base;
        Ok(if shift >= 32 { 0 } else { rel >> shift })
    }

    /// Records that `node` holds `cidr` (a node's existing `spec.podCIDR`).
    pub fn occupy(&mut self, node: &str, cidr: &str) -> Result<(), Error> {
        let i = self.index_of(cidr)?;
        match self.used.get(&i) {
            Some(Some(holder)) if holder == node => return Ok(()),
            Some(holder) => {
                return Err(Error::Conflict {
                    cidr: cidr.to_string(),
                    node: node.to_string(),
                    other: holder.clone().unwrap_or_else(|| "(excluded)".into()),
                });
            }
            None => {}
        }
        if let Some(old) = self.by_node.insert(node.to_string(), i) {
            self.used.remove(&old);
        }
        self.used.insert(i, Some(node.to_string()));
        Ok(())
    }

    /// Holds back every node range that overlaps `cidr` (typically the service CIDR when
    /// it lies inside the cluster CIDR). Ranges already held by nodes stay theirs.
    pub fn exclude(&mut self, cidr: &str) -> Result<(), Error> {
        let c: Cidr = cidr.parse()?;
        if !c.overlaps(&self.cluster) {
            return Ok(());
        }
        let end = |x: &Cidr| u64::from(x.base) + (1u64 << (32 - u32::from(x.prefix))) - 1;
        let lo = u64::from(c.base.max(self.cluster.base));
        let hi = end(&c).min(end(&self.cluster));
        let base = u64::from(self.cluster.base);
        let shift = 32 - u32::from(self.node_mask);
        let index = |a: u64| u32::try_from((a - base) >> shift).unwrap_or(u32::MAX);
        let (first, last) = (index(lo), index(hi));
        for i in first..=last {
            self.used.entry(i).or_insert(None);
        }
        Ok(())
    }

    /// The pod CIDR for a node: the one it already has (`spec.podCIDR`, recorded if new to
    /// the allocator), the one allocated to it earlier, or the next free range.
    pub fn allocate(&mut self, node: &Node) -> Result<String, Error> {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(cidr) = node_cidrs(node)
            .into_iter()
            .find(|c| c.parse::<Cidr>().is_ok())
        {
            self.occupy(&name, &cidr)?;
            return self.cidr_of(&name).ok_or(Error::InvalidCidr(cidr));
        }
        if let Some(cidr) = self.cidr_of(&name) {
            return Ok(cidr);
        }
        for step in 0..self.count {
            let i = (self.next + step) % self.count;
            if let std::collections::btree_map::Entry::Vacant(slot) = self.used.entry(i) {
                slot.insert(Some(name.clone()));
                self.by_node.insert(name, i);
                self.next = (i + 1) % self.count;
                return Ok(self.cidr_at(i).to_string());
            }
        }
        Err(Error::Exhausted(self.cluster.to_string()))
    }

    /// Frees a range (when its node is deleted). Unknown or excluded ranges are left alone.
    pub fn release(&mut self, cidr: &str) {
        let Ok(i) = self.index_of(cidr) else { return };
        if let Some(Some(node)) = self.used.get(&i) {
            self.by_node.remove(node);
            self.used.remove(&i);
        }
    }

    /// Frees whatever range a node holds.
    pub fn release_node(&mut self, node: &str) {
        if let Some(i) = self.by_node.remove(node) {
            self.used.remove(&i);
        }
    }
}

/// A node's pod CIDRs: `spec.podCIDRs`, or `spec.podCIDR` when that list is empty.
pub fn node_cidrs(node: &Node) -> Vec<String> {
    let Some(spec) = &node.spec else {
        return Vec::new();
    };
    match spec.pod_cidrs.as_deref() {
        Some(list) if !list.is_empty() => list.to_vec(),
        _ => spec
            .pod_cidr
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect(),
    }
}
