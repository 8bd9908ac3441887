//! Compiles `pause/pause.c` into a static binary that the crate embeds.

use std::env;
use std::path::PathBuf;
use std::process::{Command, exit};

const SOURCE: &str = "pause/pause.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=CC");

    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        fail("OUT_DIR is not set (run this through cargo)");
    };
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut words = cc.split_whitespace();
    let Some(program) = words.next() else {
        fail("CC is empty");
    };
    let output = out_dir.join("pause");
    let status = Command::new(program)
        .args(words)
        .args(["-static", "-Os", "-s", "-Wall", "-o"])
        .arg(&output)
        .arg(SOURCE)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!("`{cc}` failed to compile {SOURCE} ({s})")),
        Err(e) => fail(&format!("could not run the C compiler `{cc}`: {e}")),
    }
}

fn fail(why: &str) -> ! {
    eprintln!(
        "error: {why}\n\
         The images crate builds its static pause binary with the system C compiler \
         and the static C library. On Debian/Ubuntu install them with:\n    \
         apt-get install gcc libc6-dev"
    );
    exit(1);
}
