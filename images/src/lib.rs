//! Local container images that need no registry.
//!
//! The node cannot reach any container registry, so the images its pods use are
//! built on the spot: [`build`] writes an OCI image-layout tar for a [`Kind`]
//! (`busybox` from the host's static busybox, `pause` from the C program in
//! `pause/pause.c` that `build.rs` compiles and this crate embeds), and
//! [`import`] loads such tars into containerd's `k8s.io` namespace, unpacked
//! for the overlayfs snapshotter so CRI can run them straight away.
//!
//! The output is deterministic: building the same kind twice on the same host
//! gives byte-identical files and therefore the same manifest digest.

mod elf;
mod error;
mod import;
mod layout;
mod rootfs;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub use elf::is_static_elf;
pub use error::{Error, Result};
pub use import::import;

/// The reference of the pause (sandbox) image.
pub const PAUSE_IMAGE: &str = "berth.local/pause:1.0";

/// The reference of the busybox image that pods without a registry can use.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";

/// Where [`Kind::Busybox`] takes its busybox binary from (Debian's `busybox-static`).
pub const BUSYBOX_SOURCE: &str = "/bin/busybox";

/// An image this crate can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Static busybox with a symlink per applet, `/etc/passwd` and `/etc/group`.
    Busybox,
    /// A single static `/pause` binary, the pod sandbox image.
    Pause,
}

impl Kind {
    /// Every kind, in a fixed order.
    pub const ALL: [Kind; 2] = [Kind::Busybox, Kind::Pause];

    /// The image references a build of this kind is imported under.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Kind::Busybox => &[BUSYBOX_IMAGE, "docker.io/library/busybox:1.35"],
            Kind::Pause => &[PAUSE_IMAGE],
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Busybox => "busybox",
            Kind::Pause => "pause",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::UnknownKind(s.to_owned()))
    }
}

/// What [`build`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The image references recorded in `index.json` (see [`Kind::names`]).
    pub names: Vec<String>,
    /// The digest of the image manifest, `sha256:<hex>`.
    pub manifest_digest: String,
}

/// Writes the image `kind` as an OCI image-layout tar file at `out`.
pub fn build(kind: Kind, out: &Path) -> Result<Built> {
    let (layer, config) = match kind {
        Kind::Busybox => rootfs::busybox(Path::new(BUSYBOX_SOURCE))?,
        Kind::Pause => rootfs::pause()?,
    };
    let (archive, manifest_digest) = layout::archive(kind.names(), layer, config)?;
    std::fs::write(out, archive).map_err(error::io(format!("writing {}", out.display())))?;
    Ok(Built {
        names: kind.names().iter().map(|n| n.to_string()).collect(),
        manifest_digest,
    })
}
