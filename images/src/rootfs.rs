//! The root filesystems (single layers) and run configurations of each image.

use std::path::Path;
use std::process::Command;

use oci_spec::image::{Config, ConfigBuilder};

use crate::error::io;
use crate::layout::Tree;
use crate::{Error, Result, is_static_elf};

/// The static pause binary compiled from `pause/pause.c` by `build.rs`.
static PAUSE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// The pause image: just `/pause`, which is also the entrypoint.
pub(crate) fn pause() -> Result<(Vec<u8>, Config)> {
    let mut tree = Tree::default();
    tree.file("pause", 0o755, PAUSE);
    let config = ConfigBuilder::default()
        .entrypoint(vec!["/pause".to_owned()])
        .build()?;
    Ok((tree.to_tar()?, config))
}

/// The busybox image, built around the static busybox binary at `source`.
pub(crate) fn busybox(source: &Path) -> Result<(Vec<u8>, Config)> {
    let binary = match std::fs::read(source) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Busybox(format!(
                "{} not found: install the busybox-static package",
                source.display()
            )));
        }
        read => read.map_err(io(format!("reading {}", source.display())))?,
    };
    match is_static_elf(&binary) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::Busybox(format!(
                "{} is dynamically linked: install busybox-static instead of busybox",
                source.display()
            )));
        }
        Err(e) => return Err(Error::Busybox(format!("{}: {e}", source.display()))),
    }

    let mut tree = Tree::default();
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("var", 0o755),
    ] {
        tree.dir(dir, mode);
    }
    for applet in applets(source)? {
        tree.symlink(&format!("bin/{applet}"), "busybox");
    }
    tree.file("bin/busybox", 0o755, binary);
    tree.symlink("usr/bin/env", "/bin/busybox");
    tree.file("etc/passwd", 0o644, PASSWD);
    tree.file("etc/group", 0o644, GROUP);

    let config = ConfigBuilder::default()
        .env(vec![PATH.to_owned()])
        .cmd(vec!["sh".to_owned()])
        .build()?;
    Ok((tree.to_tar()?, config))
}

/// The applet names `busybox --list` prints, without `busybox` itself.
fn applets(busybox: &Path) -> Result<Vec<String>> {
    let what = || format!("running {} --list", busybox.display());
    let output = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(io(what()))?;
    if !output.status.success() {
        return Err(Error::Busybox(format!(
            "{} exited with {}",
            what(),
            output.status
        )));
    }
    let list = String::from_utf8_lossy(&output.stdout);
    let applets: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
        .map(str::to_owned)
        .collect();
    if let Some(bad) = applets
        .iter()
        .find(|a| a.contains('/') || *a == "." || *a == "..")
    {
        return Err(Error::Busybox(format!(
            "{}: odd applet name {bad:?}",
            what()
        )));
    }
    if !applets.iter().any(|a| a == "sh") {
        return Err(Error::Busybox(format!("{}: no `sh` applet", what())));
    }
    Ok(applets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_busybox_names_the_package() {
        let err = busybox(Path::new("/nonexistent/busybox")).unwrap_err();
        assert!(
            err.to_string()
                .contains("install the busybox-static package"),
            "{err}"
        );
    }

    #[test]
    fn dynamic_busybox_is_refused() {
        // Debian's dash is dynamically linked; skip quietly where it is absent.
        if Path::new("/bin/dash").exists() {
            let err = busybox(Path::new("/bin/dash")).unwrap_err();
            assert!(err.to_string().contains("dynamically linked"), "{err}");
        }
    }
}
