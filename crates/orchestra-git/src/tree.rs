//! Writing the next commit's tree from the previous one plus the staged paths, so a commit
//! costs what changed rather than what the repository holds (libgit2's `write_tree` reloads the
//! whole tree cache from the object database after every write).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use git2::{FileMode, Index, ObjectType, Oid, Repository, Tree, TreeBuilder};

use crate::error::{Context as _, Result};

/// A path's new blob and mode, or None when it was removed.
type Change = Option<(Oid, i32)>;

/// The tree of `base` with `paths` set to what `index` holds for them (or removed when the
/// index has no entry). `index` must otherwise match `base` and hold no conflicts.
pub(crate) fn update(
    repo: &Repository,
    base: &Tree<'_>,
    index: &Index,
    paths: &[PathBuf],
    at: &Path,
) -> Result<Oid> {
    let mut changes = BTreeMap::new();
    for path in paths {
        let change = index.get_path(path, 0).map(|e| {
            (
                e.id,
                i32::try_from(e.mode).unwrap_or(i32::from(FileMode::Blob)),
            )
        });
        changes.insert(path.clone(), change);
    }
    match build(repo, Some(base.clone()), changes, at)? {
        Some(oid) => Ok(oid),
        None => {
            let empty = repo.treebuilder(None).ctx("make an empty tree", at)?;
            empty.write().ctx("write an empty tree", at)
        }
    }
}

/// What happens to one name of a directory: its own change, and changes below it.
#[derive(Default)]
struct Slot {
    direct: Option<Change>,
    nested: BTreeMap<PathBuf, Change>,
}

/// Builds the directory `base` with `changes` (relative paths) applied; None when it ends empty.
fn build(
    repo: &Repository,
    base: Option<Tree<'_>>,
    changes: BTreeMap<PathBuf, Change>,
    at: &Path,
) -> Result<Option<Oid>> {
    let mut slots: BTreeMap<OsString, Slot> = BTreeMap::new();
    for (path, change) in changes {
        let mut components = path.components();
        let Some(Component::Normal(first)) = components.next() else {
            continue;
        };
        let rest = components.as_path();
        let slot = slots.entry(first.to_os_string()).or_default();
        if rest.as_os_str().is_empty() {
            slot.direct = Some(change);
        } else {
            slot.nested.insert(rest.to_path_buf(), change);
        }
    }
    let mut builder = repo.treebuilder(base.as_ref()).ctx("start a tree", at)?;
    for (name, slot) in slots {
        let entry = match (slot.direct, slot.nested.is_empty()) {
            // A file replaced a directory: the changes below are the directory's removals.
            (Some(Some(file)), _) => Some(file),
            (Some(None), true) => None,
            (_, false) => {
                let sub_base = subtree(repo, &builder, &name, at)?;
                build(repo, sub_base, slot.nested, at)?.map(|oid| (oid, i32::from(FileMode::Tree)))
            }
            (None, true) => continue,
        };
        set(&mut builder, &name, entry, at)?;
    }
    if builder.is_empty() {
        return Ok(None);
    }
    Ok(Some(builder.write().ctx("write a tree", at)?))
}

/// The existing subtree `name` of the directory being built, if it is one.
fn subtree<'r>(
    repo: &'r Repository,
    builder: &TreeBuilder<'_>,
    name: &OsString,
    at: &Path,
) -> Result<Option<Tree<'r>>> {
    let Some(entry) = builder.get(Path::new(name)).ctx("read a tree entry", at)? else {
        return Ok(None);
    };
    if entry.kind() != Some(ObjectType::Tree) {
        return Ok(None);
    }
    Ok(Some(repo.find_tree(entry.id()).ctx("read a tree", at)?))
}

fn set(builder: &mut TreeBuilder<'_>, name: &OsString, entry: Change, at: &Path) -> Result<()> {
    let name = Path::new(name);
    match entry {
        Some((oid, mode)) => {
            builder
                .insert(name, oid, mode)
                .ctx("add a tree entry", at)?;
        }
        None => {
            if builder.get(name).ctx("read a tree entry", at)?.is_some() {
                builder.remove(name).ctx("remove a tree entry", at)?;
            }
        }
    }
    Ok(())
}
