//! Outputs that cannot eat inputs, and one writer per output.
//!
//! Every command checks its outputs against its inputs **before** it computes anything
//! ([`check_outputs`]): an output that is the same file as an input (same path, another
//! spelling of it, or the same file through a link) is refused, as are two outputs that
//! collide, an output that is an existing folder or names no file, and an output whose folder
//! is missing more than one level (a typo in `--out /nonexistent/dir/x` must not silently
//! create folders from the root). [`OutputLock`] takes `<out>.lock` so that a second process
//! writing the same output is refused instead of interleaving with the first.

use crate::error::{DataError, Result};
use std::path::{Component, Path, PathBuf};

/// A file a command reads or writes, with the option that named it (`--train`, `--out`, …).
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    /// The option or role, as shown in messages.
    pub role: &'a str,
    /// The path as given.
    pub path: &'a Path,
}

impl<'a> Named<'a> {
    /// A named path.
    pub fn new(role: &'a str, path: &'a Path) -> Self {
        Self { role, path }
    }
}

/// The identity of an existing file: device and inode where the platform has them, else the
/// canonical path.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    #[allow(dead_code)]
    Canonical(PathBuf),
}

fn identity(path: &Path) -> Option<Identity> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = &meta;
        Some(Identity::Inode(meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Some(Identity::Canonical(std::fs::canonicalize(path).ok()?))
    }
}

/// The absolute, normalised location an output will have: its folder canonicalised where that
/// folder exists, `.`/`..` resolved lexically otherwise.
fn location(path: &Path) -> PathBuf {
    let abs =
        if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(path) };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    match (out.parent(), out.file_name()) {
        (Some(dir), Some(name)) => std::fs::canonicalize(dir).map(|d| d.join(name)).unwrap_or(out),
        _ => out,
    }
}

/// Whether `a` and `b` are the same file (or would be, for outputs not yet written).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (identity(a), identity(b)) {
        (Some(x), Some(y)) => x == y,
        _ => location(a) == location(b),
    }
}

/// Checks one output path on its own: it names a file (not a folder, no trailing `/`), and at
/// most its immediate folder is missing (which [`crate::write_atomic`] then creates).
pub fn check_output_path(out: Named<'_>) -> Result<()> {
    let p = out.path;
    let text = p.as_os_str().to_string_lossy();
    if text.is_empty() {
        return Err(DataError::invalid(p, format!("{}: an empty path names no file", out.role)));
    }
    if text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) || p.file_name().is_none() {
        return Err(DataError::invalid(p, format!("{} must name a file, not a folder", out.role)));
    }
    if p.is_dir() {
        return Err(DataError::invalid(p, format!("{} is an existing folder; name a file inside it", out.role)));
    }
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            let grand = dir.parent().filter(|g| !g.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !grand.is_dir() {
                return Err(DataError::invalid(
                    p,
                    format!(
                        "{}: the folder {} does not exist, nor does {}; create it first (only a missing last folder is created)",
                        out.role,
                        dir.display(),
                        grand.display()
                    ),
                ));
            }
        } else if !dir.is_dir() {
            return Err(DataError::invalid(p, format!("{}: {} is not a folder", out.role, dir.display())));
        }
    }
    Ok(())
}

/// Checks an output folder the user named (`--out reports`): not an existing file, and at most
/// the folder itself is missing. What the command writes inside it is its own layout.
pub fn check_output_folder(out: Named<'_>) -> Result<()> {
    let p = out.path;
    if !p.exists() && p.symlink_metadata().is_ok() {
        let target = std::fs::read_link(p).map(|t| t.display().to_string()).unwrap_or_default();
        return Err(DataError::invalid(
            p,
            format!("{} is a link to {target}, which does not exist; create the folder or fix the link", out.role),
        ));
    }
    if p.exists() && !p.is_dir() {
        return Err(DataError::invalid(p, format!("{} names an existing file; it must be a folder", out.role)));
    }
    if !p.exists() {
        let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(DataError::invalid(
                p,
                format!("{}: the folder {} does not exist; create it first", out.role, parent.display()),
            ));
        }
    }
    Ok(())
}

/// The absolute location of a folder, symlinks resolved where it exists.
fn folder_location(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| location(path))
}

/// The refusal of an output folder that is `relation` an input.
fn not_apart(out: Named<'_>, relation: &str, input: Named<'_>) -> DataError {
    DataError::invalid(
        out.path,
        format!(
            "{} {relation} {} ({}): outputs never go into an input's folder; choose another {}",
            out.role,
            input.role,
            input.path.display(),
            out.role
        ),
    )
}

/// Refuses an output folder that equals, contains or lies inside an input folder (a dataset's
/// folder, a data root): writing there could overwrite the inputs of this or another run.
pub fn check_folder_apart(out: Named<'_>, input_folders: &[Named<'_>]) -> Result<()> {
    let o = folder_location(out.path);
    for i in input_folders {
        let f = folder_location(i.path);
        let relation = if o == f {
            "is"
        } else if o.starts_with(&f) {
            "lies inside"
        } else if f.starts_with(&o) {
            "contains"
        } else {
            continue;
        };
        return Err(not_apart(out, relation, *i));
    }
    Ok(())
}

/// Refuses an output folder that is the folder holding an input file, or a folder above it:
/// the run's index, tables and plots would land beside (or over) the input. Paths are compared
/// resolved (links followed, `..` removed). An output folder *inside* an input file's folder is
/// allowed (features in the working folder, reports under `reports/`).
pub fn check_folder_off_files(out: Named<'_>, input_files: &[Named<'_>]) -> Result<()> {
    let o = folder_location(out.path);
    for i in input_files {
        let file = std::fs::canonicalize(i.path).unwrap_or_else(|_| location(i.path));
        let Some(folder) = file.parent() else { continue };
        let relation = if o == folder {
            "is the folder of"
        } else if folder.starts_with(&o) {
            "contains"
        } else {
            continue;
        };
        return Err(not_apart(out, relation, *i));
    }
    Ok(())
}

/// Checks a name that becomes one folder under an output folder (a dataset's report folder):
/// a plain name, not `.`/`..`, without path separators or control characters, so that
/// `out.join(name)` stays inside `out`.
pub fn check_folder_name(role: &str, name: &str) -> std::result::Result<(), String> {
    let why = if name.trim().is_empty() {
        "is empty"
    } else if name == "." || name == ".." {
        "names no folder of its own (`.`/`..`)"
    } else if name.contains('/') || name.contains('\\') {
        "contains a path separator"
    } else if name.chars().any(char::is_control) {
        "contains a control character"
    } else {
        return Ok(());
    };
    Err(format!("{role} = {name:?} {why}; it names the report folder, so give a plain name such as \"my-dataset\""))
}

/// Refuses, before any work, outputs that would overwrite an input or each other (see the
/// module docs). `inputs` may name folders (an image folder): an output equal to one is refused.
pub fn check_outputs(inputs: &[Named<'_>], outputs: &[Named<'_>]) -> Result<()> {
    for o in outputs {
        check_output_path(*o)?;
    }
    check_collisions(inputs, outputs)
}

/// The collision part of [`check_outputs`] alone: no output is an input or another output.
pub fn check_collisions(inputs: &[Named<'_>], outputs: &[Named<'_>]) -> Result<()> {
    for o in outputs {
        for i in inputs {
            if same_file(o.path, i.path) {
                return Err(DataError::invalid(
                    o.path,
                    format!(
                        "{} is the same file as {} ({}): refusing to overwrite an input; choose another output path",
                        o.role,
                        i.role,
                        i.path.display()
                    ),
                ));
            }
        }
    }
    for (k, a) in outputs.iter().enumerate() {
        for b in &outputs[k + 1..] {
            if same_file(a.path, b.path) {
                return Err(DataError::invalid(
                    b.path,
                    format!("{} and {} name the same file: each output needs its own path", a.role, b.role),
                ));
            }
        }
    }
    Ok(())
}

/// An exclusive claim on an output: the file `<out>.lock` holding the owner's process id,
/// removed when the lock is dropped. A lock left by a process that no longer runs is taken over.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        // Without a cheap way to ask, assume the holder runs: the user removes a stale lock.
        true
    }
}

impl OutputLock {
    /// Takes `<out>.lock`; refuses when another live process holds it.
    pub fn acquire(out: &Path) -> Result<Self> {
        let mut s = out.as_os_str().to_owned();
        s.push(".lock");
        let path = PathBuf::from(s);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        }
        // The lock appears with its holder's pid already in it: the pid is written to a private
        // file that is then hard-linked to the lock name (atomic, fails if the lock exists), so
        // no other process can ever read an empty lock and take it over.
        let mine = {
            let mut t = path.as_os_str().to_owned();
            t.push(format!(".{}.tmp", std::process::id()));
            PathBuf::from(t)
        };
        std::fs::write(&mine, format!("{}\n", std::process::id())).map_err(|e| DataError::io(&mine, e))?;
        let taken = (|| {
            for _ in 0..2 {
                match std::fs::hard_link(&mine, &path) {
                    Ok(()) => return Ok(Self { path: path.clone() }),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let holder = std::fs::read_to_string(&path).unwrap_or_default();
                        match holder.trim().parse::<u32>() {
                            Ok(pid) if pid != std::process::id() && process_alive(pid) => {
                                return Err(DataError::invalid(
                                    out,
                                    format!(
                                        "another cft process (pid {pid}) is writing this output (lock file {}); wait for it to finish, or delete the lock file if that process is gone",
                                        path.display()
                                    ),
                                ));
                            }
                            // A stale lock (its process is gone, or the file is garbled): take it
                            // over, unless another process did so since we read it.
                            _ => {
                                if std::fs::read_to_string(&path).unwrap_or_default() == holder {
                                    let _ = std::fs::remove_file(&path);
                                }
                            }
                        }
                    }
                    Err(e) => return Err(DataError::io(&path, e)),
                }
            }
            Err(DataError::invalid(&path, "could not take the lock file (it reappeared twice)"))
        })();
        let _ = std::fs::remove_file(&mine);
        taken
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_equal_to_an_input_is_refused_in_every_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("train.safetensors");
        std::fs::write(&input, b"x").unwrap();
        let dotted = dir.path().join("sub/../train.safetensors");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let link = dir.path().join("link.safetensors");
        std::fs::hard_link(&input, &link).unwrap();
        for out in [&input, &dotted, &link] {
            let err = check_outputs(&[Named::new("--train", &input)], &[Named::new("--out", out)]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("--out is the same file as --train"), "{msg}");
        }
        let fresh = dir.path().join("head.safetensors");
        check_outputs(&[Named::new("--train", &input)], &[Named::new("--out", &fresh)]).unwrap();
        let err = check_outputs(&[], &[Named::new("--out", &fresh), Named::new("--history", &fresh)]).unwrap_err();
        assert!(err.to_string().contains("--out and --history name the same file"), "{err}");
    }

    #[test]
    fn folders_and_deep_missing_parents_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_output_path(Named::new("--out", dir.path())).unwrap_err();
        assert!(err.to_string().contains("existing folder"), "{err}");
        let slash = PathBuf::from(format!("{}/", dir.path().join("new").display()));
        assert!(check_output_path(Named::new("--out", &slash)).unwrap_err().to_string().contains("not a folder"));
        let deep = dir.path().join("a/b/x.safetensors");
        assert!(check_output_path(Named::new("--out", &deep)).unwrap_err().to_string().contains("does not exist"));
        check_output_path(Named::new("--out", &dir.path().join("a/x.safetensors"))).unwrap();
    }

    #[test]
    fn a_second_writer_is_refused_and_a_stale_lock_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.safetensors");
        let lock = OutputLock::acquire(&out).unwrap();
        // Our own pid counts as a stale holder for ourselves; simulate another live process (pid 1).
        std::fs::write(lock.path(), "1\n").unwrap();
        let err = OutputLock::acquire(&out).unwrap_err().to_string();
        assert!(err.contains("another cft process (pid 1)"), "{err}");
        std::fs::write(lock.path(), "999999999\n").unwrap();
        let second = OutputLock::acquire(&out).unwrap();
        drop(lock);
        drop(second);
        assert!(!dir.path().join("o.safetensors.lock").exists());
    }
}
