//! Database files private to their owner: a new database file is created mode 0600 whatever the
//! umask, and SQLite gives its WAL and shared-memory files the mode of the database file.

use std::io;
use std::path::Path;

/// The mode of a database file this process creates.
#[cfg(unix)]
pub(crate) const MODE: u32 = 0o600;

/// Creates `path` empty (a version-0 database, migrated next) with mode [`MODE`] unless it
/// exists; an existing file (or directory) is left alone, to be opened or refused by SQLite.
#[cfg(unix)]
pub(crate) fn create(path: &Path) -> io::Result<()> {
    use std::fs::{OpenOptions, Permissions};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(path)
    {
        // The umask may have taken bits of MODE away (it cannot add any).
        Ok(file) => file.set_permissions(Permissions::from_mode(MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Elsewhere SQLite creates the file with the platform's defaults.
#[cfg(not(unix))]
pub(crate) fn create(_: &Path) -> io::Result<()> {
    Ok(())
}
