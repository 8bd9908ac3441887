//! Builds both images into temporary directories and checks what was written.

// `allow-unwrap-in-tests` covers only `#[test]` functions, not this file's helpers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use images::{BUSYBOX_IMAGE, Built, Kind, PAUSE_IMAGE, build, is_static_elf};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest, Sha256};

/// One tar entry: its type, mode, content and link target.
#[derive(Debug)]
struct Entry {
    kind: tar::EntryType,
    mode: u32,
    data: Vec<u8>,
    link: Option<String>,
}

fn untar(data: &[u8]) -> BTreeMap<String, Entry> {
    let mut archive = tar::Archive::new(data);
    let mut entries = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        let kind = header.entry_type();
        let mode = header.mode().unwrap();
        let path = entry.path().unwrap().to_str().unwrap().to_owned();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_str().unwrap().to_owned());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let previous = entries.insert(
            path.clone(),
            Entry {
                kind,
                mode,
                data,
                link,
            },
        );
        assert!(previous.is_none(), "duplicate entry {path}");
    }
    entries
}

/// A built image, unpacked and verified against its own descriptors.
struct Image {
    built: Built,
    bytes: Vec<u8>,
    index: ImageIndex,
    config: ImageConfiguration,
    layer: BTreeMap<String, Entry>,
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// Returns the blob `descriptor` points at after checking its digest and size.
fn blob<'a>(files: &'a BTreeMap<String, Entry>, descriptor: &Descriptor) -> &'a [u8] {
    let digest = descriptor.digest();
    let path = format!("blobs/sha256/{}", digest.digest());
    let data = &files
        .get(&path)
        .unwrap_or_else(|| panic!("missing {path}"))
        .data;
    assert_eq!(sha256(data), digest.to_string(), "digest of {path}");
    assert_eq!(data.len() as u64, descriptor.size(), "size of {path}");
    data
}

fn build_image(kind: Kind, dir: &Path) -> Image {
    let out = dir.join(format!("{kind}.tar"));
    let built = build(kind, &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let files = untar(&bytes);
    let names: Vec<_> = files.keys().map(String::as_str).collect();
    // Two directories, three blobs (layer, config, manifest), then the two layout files.
    assert_eq!(names.len(), 7, "{names:?}");
    assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
    assert!(
        names[2..5].iter().all(|n| n.starts_with("blobs/sha256/")),
        "{names:?}"
    );
    assert_eq!(names[5..], ["index.json", "oci-layout"]);
    assert_eq!(
        files["oci-layout"].data,
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );

    let index = ImageIndex::from_reader(files["index.json"].data.as_slice()).unwrap();
    assert_eq!(index.schema_version(), 2);
    let manifests = index.manifests();
    assert_eq!(manifests.len(), built.names.len());
    for (descriptor, name) in manifests.iter().zip(&built.names) {
        assert_eq!(descriptor.digest(), manifests[0].digest());
        assert_eq!(descriptor.media_type(), &MediaType::ImageManifest);
        let annotations = descriptor.annotations().as_ref().unwrap();
        assert_eq!(annotations["io.containerd.image.name"], *name);
        let tag = name.rsplit_once(':').unwrap().1;
        assert_eq!(annotations["org.opencontainers.image.ref.name"], tag);
    }
    assert_eq!(manifests[0].digest().to_string(), built.manifest_digest);

    let manifest = ImageManifest::from_reader(blob(&files, &manifests[0])).unwrap();
    assert_eq!(manifest.config().media_type(), &MediaType::ImageConfig);
    let config = ImageConfiguration::from_reader(blob(&files, manifest.config())).unwrap();
    assert_eq!(config.architecture().to_string(), "amd64");
    assert_eq!(config.os().to_string(), "linux");
    let [layer] = manifest.layers().as_slice() else {
        panic!("expected one layer")
    };
    assert_eq!(layer.media_type(), &MediaType::ImageLayer);
    let layer_bytes = blob(&files, layer);
    assert_eq!(config.rootfs().diff_ids(), &[sha256(layer_bytes)]);
    let layer = untar(layer_bytes);
    Image {
        built,
        bytes,
        index,
        config,
        layer,
    }
}

#[test]
fn kind_names() {
    for kind in Kind::ALL {
        assert_eq!(kind.to_string().parse::<Kind>().unwrap(), kind);
    }
    assert_eq!("busybox".parse::<Kind>().unwrap(), Kind::Busybox);
    assert_eq!(Kind::Pause.to_string(), "pause");
    assert!("alpine".parse::<Kind>().is_err());
}

#[test]
fn busybox_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(Kind::Busybox, dir.path());
    assert_eq!(
        image.built.names,
        [BUSYBOX_IMAGE, "docker.io/library/busybox:1.35"]
    );
    assert_eq!(image.index.manifests().len(), 2);

    let layer = &image.layer;
    let busybox = &layer["bin/busybox"];
    assert_eq!(
        (busybox.kind, busybox.mode),
        (tar::EntryType::Regular, 0o755)
    );
    assert!(is_static_elf(&busybox.data).unwrap());
    for applet in ["sh", "ls", "cat", "[["] {
        let entry = &layer[&format!("bin/{applet}")];
        assert_eq!(entry.kind, tar::EntryType::Symlink, "{applet}");
        assert_eq!(entry.link.as_deref(), Some("busybox"), "{applet}");
    }
    assert_eq!(layer["usr/bin/env"].link.as_deref(), Some("/bin/busybox"));
    let passwd = String::from_utf8(layer["etc/passwd"].data.clone()).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/sh\n"),
        "{passwd}"
    );
    assert!(passwd.contains("nobody:x:65534:65534:"), "{passwd}");
    assert!(layer["etc/group"].data.starts_with(b"root:x:0:\n"));
    let tmp = &layer["tmp/"];
    assert_eq!((tmp.kind, tmp.mode), (tar::EntryType::Directory, 0o1777));
    for dir in [
        "root/", "var/", "proc/", "sys/", "dev/", "etc/", "home/", "usr/bin/",
    ] {
        assert_eq!(layer[dir].kind, tar::EntryType::Directory, "{dir}");
    }

    let config = image.config.config().as_ref().unwrap();
    assert_eq!(config.cmd().as_deref(), Some(&["sh".to_owned()][..]));
    let env = config.env().as_ref().unwrap();
    assert_eq!(
        env,
        &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    );
}

#[test]
fn pause_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(Kind::Pause, dir.path());
    assert_eq!(image.built.names, [PAUSE_IMAGE]);
    assert_eq!(image.layer.keys().collect::<Vec<_>>(), ["pause"]);
    let pause = &image.layer["pause"];
    assert_eq!((pause.kind, pause.mode), (tar::EntryType::Regular, 0o755));
    assert!(is_static_elf(&pause.data).unwrap(), "pause must be static");
    let config = image.config.config().as_ref().unwrap();
    assert_eq!(
        config.entrypoint().as_deref(),
        Some(&["/pause".to_owned()][..])
    );
}

#[test]
fn builds_are_deterministic() {
    for kind in Kind::ALL {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (first, second) = (build_image(kind, a.path()), build_image(kind, b.path()));
        assert_eq!(first.built, second.built, "{kind}");
        assert!(first.bytes == second.bytes, "{kind}: builds differ");
    }
}

/// Whether the process `pid` has a handler installed for `signal`.
fn catches(pid: u32, signal: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .unwrap_or("0");
    let mask = u64::from_str_radix(mask.trim(), 16).unwrap();
    mask & (1 << (signal - 1)) != 0
}

fn wait_timeout(child: &mut std::process::Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Runs the pause binary from the image, sends it `signal` once its handlers
/// are installed, and returns how it exited.
fn pause_exit_on(signal: i32) -> ExitStatus {
    let dir = tempfile::tempdir().unwrap();
    let image = build_image(Kind::Pause, dir.path());
    let binary = dir.path().join("pause");
    std::fs::write(&binary, &image.layer["pause"].data).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Another test thread forking while the file was open for writing can make
    // exec fail with ETXTBSY for a moment.
    let mut attempts = 0;
    let mut child = loop {
        match Command::new(&binary).spawn() {
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            spawned => break spawned.unwrap(),
        }
    };
    let ready = Instant::now() + Duration::from_secs(5);
    while !(catches(child.id(), libc::SIGTERM) && catches(child.id(), libc::SIGINT)) {
        assert!(
            Instant::now() < ready,
            "pause never installed its signal handlers"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "pause exited by itself"
    );

    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory-safety preconditions; pid is our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = wait_timeout(&mut child, Duration::from_secs(5));
    if status.is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    status.expect("pause did not exit within 5s of the signal")
}

#[test]
fn pause_exits_zero_on_sigterm() {
    assert_eq!(pause_exit_on(libc::SIGTERM).code(), Some(0));
}

#[test]
fn pause_exits_zero_on_sigint() {
    assert_eq!(pause_exit_on(libc::SIGINT).code(), Some(0));
}
