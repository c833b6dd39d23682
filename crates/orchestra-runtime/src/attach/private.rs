//! Where attach sockets live, kept private: a directory of mode 0700 owned by this user, and
//! sockets of mode 0600, whatever the umask — another user (even of the same group) can neither
//! reach a live session's chat nor put a socket of their own in its place.

use std::fs::{DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;

/// Why a socket directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UnsafeDir {
    /// It cannot be made or read.
    #[error("cannot prepare the socket directory {}", path.display())]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Someone else owns it, it is not a directory, or others may write to it.
    #[error(
        "the socket directory {} is not private ({reason}); remove it and try again",
        path.display()
    )]
    NotPrivate {
        /// The directory.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The uid of this process.
pub(crate) fn my_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Makes `dir` (and its parents) if missing, with mode 0700 for `dir`, and checks that it is a
/// real directory owned by this user. A directory of this user's that others could reach (an
/// earlier release made it under the umask) is tightened to 0700: what another user may have
/// left in it cannot pass for this user's server, since clients check who listens
/// ([`check_peer`]).
pub(crate) fn private_dir(dir: &Path) -> Result<(), UnsafeDir> {
    let io_err = |source| UnsafeDir::Io {
        path: dir.to_path_buf(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io_err)?;
    let not_private = |reason: String| UnsafeDir::NotPrivate {
        path: dir.to_path_buf(),
        reason,
    };
    if !meta.file_type().is_dir() {
        return Err(not_private("it is not a directory".into()));
    }
    if meta.uid() != my_uid() {
        return Err(not_private(format!("it belongs to uid {}", meta.uid())));
    }
    if meta.mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(io_err)?;
    }
    Ok(())
}

/// Refuses a server socket that another user listens on (one who put a socket where this
/// user's would be): a human's typed lines go only to a process of their own.
pub(crate) fn check_peer(stream: &tokio::net::UnixStream, path: &Path) -> Result<(), UnsafeDir> {
    let cred = stream.peer_cred().map_err(|source| UnsafeDir::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if cred.uid() != my_uid() {
        return Err(UnsafeDir::NotPrivate {
            path: path.to_path_buf(),
            reason: format!("the socket is served by uid {}, not by you", cred.uid()),
        });
    }
    Ok(())
}

/// Gives the socket at `path` mode 0600.
pub(crate) fn private_socket(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(0o600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_0700_and_a_readable_one_of_mine_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/sessions");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_directory_of_another_user_or_a_link_is_refused_and_an_open_one_of_mine_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, Permissions::from_mode(0o777)).unwrap();
        private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);

        let link = tmp.path().join("link");
        let target = tmp.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = private_dir(&link).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");

        // Tests run as root here, which may give a directory away; elsewhere this case is
        // reported as skipped.
        if my_uid() != 0 {
            eprintln!("skipped: giving a directory to another user needs root");
            return;
        }
        let theirs = tmp.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        let err = private_dir(&theirs).unwrap_err().to_string();
        assert!(err.contains("belongs to uid 65534"), "{err}");
    }
}
