//! Importing image tars into containerd with `ctr`.
//!
//! Why `ctr` and not containerd's gRPC API: containerd 1.6 has no server-side
//! import or unpack (the Transfer service that does both arrived in 1.7). A
//! gRPC client would have to re-implement what `ctr` does on the client side:
//! ingest every blob through the content service, create the image records,
//! apply each layer through the diff service onto snapshots it prepares and
//! commits itself, and label everything for garbage collection. `ctr` ships in
//! the same Debian package as containerd, at the same version, so it is always
//! present and always speaks the daemon's dialect.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::io;
use crate::{Error, Result};

/// The containerd namespace the CRI plugin keeps its images in.
const NAMESPACE: &str = "k8s.io";
/// The snapshotter the CRI plugin unpacks images for.
const SNAPSHOTTER: &str = "overlayfs";

/// Imports each OCI image-layout tar in `files` into the `k8s.io` namespace of
/// the containerd listening on `address`, unpacked for the overlayfs
/// snapshotter, by running
/// `ctr -a ADDRESS -n k8s.io images import --snapshotter overlayfs FILE`.
///
/// This blocks until `ctr` exits; call it from `spawn_blocking` in async code.
/// Stops at the first failure, whose error carries `ctr`'s standard error.
pub fn import(address: &Path, files: &[PathBuf]) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::metadata(address).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket {
        return Err(Error::NoSocket(address.to_path_buf()));
    }
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(Error::NoFile(missing.clone()));
    }
    for file in files {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(address)
            .args([
                "--namespace",
                NAMESPACE,
                "images",
                "import",
                "--snapshotter",
                SNAPSHOTTER,
            ])
            .arg(file)
            .output()
            .map_err(io("running ctr (is containerd installed?)"))?;
        if !output.status.success() {
            return Err(Error::Import {
                file: file.clone(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
    }
    Ok(())
}
