//! The `berth` command line as a user runs it.

use std::process::Command;

fn berth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("run berth")
}

#[test]
fn image_build_writes_an_oci_layout_tar() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pause.tar");
    let run = berth(&["image", "build", "pause", "-o", out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("sha256:") && stdout.contains("berth.local/pause:1.0"),
        "{stdout}"
    );
    let bytes = std::fs::read(&out).unwrap();
    // A tar whose entries include the OCI layout marker.
    assert!(bytes.windows(10).any(|w| w == b"oci-layout"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let run = berth(&["image", "build", "nginx", "-o", "/tmp/x.tar"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("nginx"), "{stderr}");

    let run = berth(&["bench", "cri", "--pods", "0"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--pods"));

    let run = berth(&[
        "image",
        "import",
        "--address",
        "/nonexistent.sock",
        "/nonexistent.tar",
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("no containerd socket at /nonexistent.sock"),
        "{stderr}"
    );
}
