//! `berth image build|import`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Write an OCI image-layout tar: `busybox` (docker.io/library/busybox:latest and :1.35,
    /// from the busybox-static package) or `pause` (berth.local/pause:1.0).
    Build {
        /// Which image to build.
        kind: images::Kind,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Import OCI image-layout tars into containerd's k8s.io namespace (unpacked for CRI).
    Import {
        /// containerd's gRPC socket.
        #[arg(long, default_value = "/run/containerd/containerd.sock")]
        address: PathBuf,
        /// Image tars to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Build { kind, output } => {
            let built = images::build(kind, &output)
                .with_context(|| format!("building {kind} into {}", output.display()))?;
            println!(
                "{} {} {}",
                output.display(),
                built.manifest_digest,
                built.names.join(",")
            );
        }
        ImageCommand::Import { address, files } => {
            images::import(&address, &files)
                .with_context(|| format!("importing into {}", address.display()))?;
            for f in &files {
                println!("imported {}", f.display());
            }
        }
    }
    Ok(())
}
