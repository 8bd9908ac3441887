//! Deterministic tar archives and the OCI image layout that wraps a layer.
//!
//! Every entry is owned by 0:0 with mtime 0 and entries are written in path
//! order, so the same inputs always give the same bytes (and digests). JSON
//! documents are serialised with sorted keys for the same reason: oci-spec
//! keeps annotations in a `HashMap`.

use std::collections::{BTreeMap, HashMap};
use std::io;

use oci_spec::image::{
    Arch, Config, Descriptor, Digest, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, OciLayoutBuilder, Os, PlatformBuilder, RootFsBuilder,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::Result;
use crate::error::io;

/// The annotation containerd's importer takes the full image name from.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming a reference (here: the tag) within a layout.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

enum Entry {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
}

/// The entries of a tar archive, keyed (and therefore written) by relative path.
#[derive(Default)]
pub(crate) struct Tree(BTreeMap<String, Entry>);

impl Tree {
    pub(crate) fn dir(&mut self, path: &str, mode: u32) {
        self.0.insert(path.to_owned(), Entry::Dir(mode));
    }

    pub(crate) fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) {
        self.0
            .insert(path.to_owned(), Entry::File(mode, data.into()));
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) {
        self.0
            .insert(path.to_owned(), Entry::Symlink(target.to_owned()));
    }

    /// Serialises the tree as an uncompressed tar archive.
    pub(crate) fn to_tar(&self) -> Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, entry) in &self.0 {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_size(0);
            let written = match entry {
                Entry::Dir(mode) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    tar.append_data(&mut header, format!("{path}/"), io::empty())
                }
                Entry::File(mode, data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, path, data.as_slice())
                }
                Entry::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    tar.append_link(&mut header, path, target)
                }
            };
            written.map_err(io(format!("adding {path} to a tar archive")))?;
        }
        tar.into_inner().map_err(io("finishing a tar archive"))
    }
}

/// Returns the sha256 digest of `data` as `sha256:<hex>`.
pub(crate) fn sha256(data: &[u8]) -> Result<Digest> {
    Ok(format!("sha256:{:x}", Sha256::digest(data)).parse()?)
}

/// Serialises `value` as compact JSON with every object's keys sorted.
fn json(value: &impl Serialize) -> Result<Vec<u8>> {
    let mut value = serde_json::to_value(value)?;
    value.sort_all_objects();
    Ok(serde_json::to_vec(&value)?)
}

/// Stores `data` under `blobs/sha256/` and returns its descriptor.
fn add_blob(tree: &mut Tree, media_type: MediaType, data: Vec<u8>) -> Result<Descriptor> {
    let digest = sha256(&data)?;
    let descriptor = Descriptor::new(media_type, data.len() as u64, digest.clone());
    tree.file(&format!("blobs/sha256/{}", digest.digest()), 0o644, data);
    Ok(descriptor)
}

/// The tag part of an image reference (`latest` when it has none).
fn tag(name: &str) -> &str {
    match name.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag,
        _ => "latest",
    }
}

/// Builds an OCI image-layout tar holding one linux/amd64 image made of the
/// uncompressed `layer` and the execution parameters `config`, listed in
/// `index.json` once per entry of `names`. Returns the archive and the
/// manifest digest.
pub(crate) fn archive(names: &[&str], layer: Vec<u8>, config: Config) -> Result<(Vec<u8>, String)> {
    let mut tree = Tree::default();
    tree.dir("blobs", 0o755);
    tree.dir("blobs/sha256", 0o755);

    let layer = add_blob(&mut tree, MediaType::ImageLayer, layer)?;
    let image_config = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![layer.digest().to_string()])
                .build()?,
        )
        .build()?;
    let config = add_blob(&mut tree, MediaType::ImageConfig, json(&image_config)?)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(vec![layer])
        .build()?;
    let manifest = add_blob(&mut tree, MediaType::ImageManifest, json(&manifest)?)?;

    let platform = PlatformBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .build()?;
    let manifests = names
        .iter()
        .map(|name| {
            let mut descriptor = manifest.clone();
            descriptor.set_platform(Some(platform.clone()));
            descriptor.set_annotations(Some(HashMap::from([
                (CONTAINERD_NAME.to_owned(), name.to_string()),
                (OCI_REF_NAME.to_owned(), tag(name).to_owned()),
            ])));
            descriptor
        })
        .collect::<Vec<_>>();
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?;
    tree.file("index.json", 0o644, json(&index)?);
    let layout = OciLayoutBuilder::default()
        .image_layout_version("1.0.0")
        .build()?;
    tree.file("oci-layout", 0o644, json(&layout)?);

    Ok((tree.to_tar()?, manifest.digest().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag("docker.io/library/busybox:1.35"), "1.35");
        assert_eq!(tag("localhost:5000/pause"), "latest");
        assert_eq!(tag("pause"), "latest");
    }
}
