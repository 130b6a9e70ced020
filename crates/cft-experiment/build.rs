//! Records the commit this `cft` was built from (and whether the checkout had uncommitted
//! changes to tracked files) so manifests name the build, not whatever repository the user
//! happens to run it in.

use std::path::PathBuf;
use std::process::Command;

fn git(dir: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = dir.join("../..");
    // Any source change may flip the dirty flag; a commit moves HEAD's ref.
    for p in ["crates", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(p).display());
    }
    if let Some(git_dir) = git(&dir, &["rev-parse", "--absolute-git-dir"]) {
        let git_dir = PathBuf::from(git_dir);
        for p in ["HEAD", "index", "packed-refs"] {
            println!("cargo:rerun-if-changed={}", git_dir.join(p).display());
        }
        if let Some(r) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", git_dir.join(r).display());
        }
    }
    let commit = git(&dir, &["rev-parse", "HEAD"]);
    let dirty = commit.as_ref().and_then(|_| git(&workspace, &["status", "--porcelain", "--untracked-files=no"]));
    println!("cargo:rustc-env=CFT_BUILD_GIT_COMMIT={}", commit.unwrap_or_default());
    println!(
        "cargo:rustc-env=CFT_BUILD_GIT_DIRTY={}",
        match dirty {
            Some(s) => (!s.is_empty()).to_string(),
            None => String::new(),
        }
    );
}
