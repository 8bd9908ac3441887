//! Named network namespaces (`/run/netns/NAME`, the iproute2 convention, so `ip netns` and
//! `nsenter --net=` both see them). A [`NetNs`] deletes its namespace when dropped.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, run};

/// A named network namespace owned by this value.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    path: PathBuf,
    deleted: bool,
}

impl NetNs {
    /// Creates the namespace `name` with its loopback up. Fails if it already exists.
    pub fn create(name: &str) -> Result<Self> {
        validate(name)?;
        run("ip", &["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_string(),
            path: Path::new("/run/netns").join(name),
            deleted: false,
        };
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, for `nsenter --net=PATH` and setns(2).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a command inside the namespace (with `nsenter --net`, which keeps the host's
    /// mounts, unlike `ip netns exec`) and returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        let net = format!("--net={}", self.path.display());
        let mut all = vec![net.as_str(), "--", program];
        all.extend_from_slice(args);
        run("nsenter", &all)
    }

    /// A `std::process::Command` that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path.display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Deletes the namespace now. Processes still inside keep it alive until they exit.
    pub fn delete(mut self) -> Result<()> {
        self.deleted = true;
        delete(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if !self.deleted
            && let Err(e) = delete(&self.name)
        {
            tracing::warn!(netns = %self.name, error = %e, "deleting network namespace");
        }
    }
}

/// Deletes the namespace `name` if it exists.
pub fn delete(name: &str) -> Result<()> {
    if Path::new("/run/netns").join(name).exists() {
        run("ip", &["netns", "delete", name])?;
    }
    Ok(())
}

fn validate(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason: "use 1-64 letters, digits, '-', '_' or '.'",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate("berth-node-1").is_ok());
        assert!(validate("").is_err());
        assert!(validate("../etc").is_err());
        assert!(validate("a b").is_err());
    }
}
