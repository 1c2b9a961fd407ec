//! Token sets in files: one file per credential, written in place in two checksummed slots.

mod scan;
mod slots;

use super::record::{decode, encode_marked, from_millis};
use super::{Due, DueAfter, Reported, Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::client::BoxFuture;
use crate::token::TokenSet;
use slots::Layout;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

/// Token sets in a directory, shared by every process that opens the same directory.
///
/// - `<key>.json` holds the set and its marks (mode 0600) in two checksummed slots: a write
///   goes to the slot not holding the current record and is made durable with one
///   `fdatasync`, in place, so a crash leaves the old record or the new one, never a torn one
///   (see the `slots` module). The first write of a key, and one too large for its slots,
///   writes a new file instead (`<key>.json.tmp`, flushed and renamed over it; the next write
///   replaces the temporary file a crash left). Files of one JSON record with marks in files
///   beside it (`<key>.sending`, `.dead`, `.expiring`, `.announced`), as stores made before the
///   slots hold, are read as they are and rewritten in slots by their next write.
/// - `<key>.lock` carries the refresh lock: an OS file lock, which dies with its process, so a
///   crashed refresher never blocks the others.
/// - `<key>.write.lock` serializes the compare-and-set of writers.
/// - `<key>.removed` holds the last version of a deleted set (a tombstone): the next set of
///   the key is numbered after it, and nothing is put back over the removal.
///
/// New files and removals that land at once share the directory's flush (group commit): each
/// is acknowledged only after a flush of the directory that started after its rename.
///
/// Reads and lock probes run on the calling task (a small file from the page cache, a few
/// microseconds); writes, which wait for the disk, and the keeper's scans of the directory
/// run on Tokio's blocking threads: each such hop cost the keeper's bench about 86 µs of CPU
/// per renewal on a 2-core VM, more than the read it carried.
#[derive(Clone)]
pub struct FileStore {
    dir: PathBuf,
    flushes: Arc<Flushes>,
    /// The keeper's walks of the directory and what its scans read ([`TokenStore::due`]).
    scans: Arc<Mutex<scan::Scans>>,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore").field("dir", &self.dir).finish()
    }
}

/// The directory's flushes (`fsync` of the directory, which makes the renames in it durable),
/// shared by the writes waiting for one at once: a write takes a ticket after its rename, and
/// is durable once a flush that started after its ticket has ended. Whoever finds no flush
/// running starts one covering every ticket so far; the others wait for it. A flush that
/// fails covers nobody: each waiter then flushes again itself, and reports its own error.
#[derive(Default)]
struct Flushes {
    state: Mutex<FlushState>,
    ended: Condvar,
}

#[derive(Default)]
struct FlushState {
    /// The last ticket given.
    tickets: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    running: bool,
}

impl Flushes {
    /// Returns once every rename this thread made in `dir` before the call is durable.
    fn flush(&self, dir: &Path) -> std::io::Result<()> {
        self.flush_with(|| File::open(dir).and_then(|d| d.sync_all()))
    }

    /// [`Flushes::flush`], flushing with `sync`.
    fn flush_with(&self, sync: impl Fn() -> std::io::Result<()>) -> std::io::Result<()> {
        let lock = || self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = lock();
        state.tickets += 1;
        let mine = state.tickets;
        while state.durable < mine {
            if state.running {
                state = self.ended.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.running = true;
            let through = state.tickets;
            drop(state);
            let flushed = sync();
            state = lock();
            state.running = false;
            if flushed.is_ok() {
                state.durable = state.durable.max(through);
            }
            self.ended.notify_all();
            flushed?;
        }
        Ok(())
    }
}

impl FileStore {
    /// A store in `dir`, created (mode 0700) if missing. An existing directory must belong to
    /// this user and be closed to everyone else (no group or other permission bits): tokens in
    /// a directory others can list, write or own are not the application's alone.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io_error("cannot create the store directory", &dir, &e))?;
        let meta = std::fs::metadata(&dir)
            .map_err(|e| io_error("cannot inspect the store directory", &dir, &e))?;
        let owner = rustix::process::geteuid().as_raw();
        if meta.uid() != owner {
            return Err(StoreError::new(format!(
                "the store directory ({}) belongs to user {}, not to this process's user {owner}; refusing to keep tokens there",
                dir.display(),
                meta.uid()
            )));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::new(format!(
                "the store directory ({}) has mode {mode:03o}; tokens need a directory only its owner can use (chmod 700)",
                dir.display()
            )));
        }
        Ok(Self {
            dir,
            flushes: Arc::default(),
            scans: Arc::default(),
        })
    }

    /// The file holding `key`'s token set.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.named(&file_name(key), "json")
    }

    fn lock_path(&self, key: &str, kind: &str) -> PathBuf {
        self.named(&file_name(key), kind)
    }

    /// `<name>.<kind>` in the directory, for a key's [`file_name`] worked out once.
    fn named(&self, name: &str, kind: &str) -> PathBuf {
        self.dir.join(format!("{name}.{kind}"))
    }
}

/// A file name for any key: safe characters as they are, others as `%XX`.
fn file_name(key: &str) -> String {
    use std::fmt::Write as _;
    let mut name = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => name.push(b as char),
            other => {
                let _ = write!(name, "%{other:02X}");
            }
        }
    }
    name
}

fn io_error(what: &str, path: &Path, error: &std::io::Error) -> StoreError {
    StoreError::new(format!("{what} ({}): {error}", path.display()))
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error("cannot open the lock file", path, &e))
}

/// A key's file as read.
#[expect(
    clippy::large_enum_variant,
    reason = "a return value, matched at once, never kept"
)]
enum Read {
    Missing,
    /// The current set, and where it is (`None`: a JSON file of before, with no slots).
    Found(Stored, Option<Layout>),
    /// Neither slot is whole: a writer was writing one while the other was read, or (read
    /// under the write lock) the file is damaged.
    Torn,
}

fn read(path: &Path) -> Result<Read, StoreError> {
    match File::open(path) {
        Ok(mut file) => read_open(path, &mut file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Read::Missing),
        Err(e) => Err(io_error("cannot read the token set", path, &e)),
    }
}

/// [`read`], from `path` open as `file`.
fn read_open(path: &Path, file: &mut File) -> Result<Read, StoreError> {
    let bytes = read_all(file).map_err(|e| io_error("cannot read the token set", path, &e))?;
    if !slots::is_slotted(&bytes) {
        return Ok(Read::Found(read_unslotted(path, &bytes)?, None));
    }
    Ok(match slots::current(&bytes) {
        Some((layout, record)) => Read::Found(decode(record)?, Some(layout)),
        None => Read::Torn,
    })
}

/// The whole of `file`, into room for two one-page slots: the usual file takes one `read`
/// and the one that finds its end. (`File::read_to_end` asks `statx` and `lseek` for a size
/// hint first, two system calls more on each of a renewal's reads; through `take` it does not.)
fn read_all(file: &mut File) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::with_capacity(2 * slots::PAGE + 1);
    file.take(u64::MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A set stored before the slots: one JSON record, its marks in files beside it.
fn read_unslotted(path: &Path, bytes: &[u8]) -> Result<Stored, StoreError> {
    let mut stored = decode(bytes)?;
    let version = stored.version;
    stored.sending = read_mark(path, SENDING, version)?;
    for what in [Reported::Dead, Reported::Expiring, Reported::Announced] {
        *stored.mark_mut(what) = read_mark(path, what.as_str(), version)?;
    }
    Ok(stored)
}

/// The error for a file whose slots are both torn, read under its write lock.
fn damaged(path: &Path) -> StoreError {
    StoreError::new(format!(
        "the stored token set is unreadable ({}): neither of its two slots holds a whole record; nothing was changed",
        path.display()
    ))
}

/// The sending mark's file extension, in stores made before the slots.
const SENDING: &str = "sending";
/// Every mark's file extension, in stores made before the slots.
const MARKS: [&str; 4] = [SENDING, "dead", "expiring", "announced"];

/// When `version` got the mark `kind`, in a store made before the slots: a file beside the set
/// holding `<version> <milliseconds since the epoch>`. A mark of another version belongs to a
/// set since replaced: none.
fn read_mark(path: &Path, kind: &str, version: u64) -> Result<Option<SystemTime>, StoreError> {
    let marker = path.with_extension(kind);
    match std::fs::read_to_string(&marker) {
        Ok(text) => {
            let mut parts = text.split_whitespace().map(str::parse::<u64>);
            Ok(match (parts.next(), parts.next()) {
                (Some(Ok(v)), Some(Ok(ms))) if v == version => Some(from_millis(ms)),
                _ => None,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot read a mark of the token set", &marker, &e)),
    }
}

/// A key's file as the holder of its write lock sees it.
struct Held {
    path: PathBuf,
    /// The file, open for reading and writing, as it was read; `None` when it was missing or
    /// once a write replaced it.
    file: Option<File>,
    stored: Option<Stored>,
    /// Where the current record is; `None` for a missing file or a JSON file of before.
    layout: Option<Layout>,
}

impl Held {
    fn version(&self) -> Option<u64> {
        self.stored.as_ref().map(|s| s.version)
    }

    /// The stored set, if it is `version`.
    fn at(&self, version: u64) -> Option<&Stored> {
        self.stored.as_ref().filter(|s| s.version == version)
    }
}

impl FileStore {
    /// Stores `stored` as `held`'s current record, durable when this returns: in place, in the
    /// slot not current, where it fits; otherwise in a new file.
    fn write(&self, held: &mut Held, stored: &Stored) -> Result<(), StoreError> {
        let seq = held.layout.map_or(1, |l| l.seq + 1);
        let slot = slots::encode(seq, &encode_marked(stored));
        let in_place = held.layout.and_then(|l| l.next(&slot));
        held.layout = Some(match in_place {
            Some((at, next)) => {
                let written = match held.file.take() {
                    Some(file) => Ok(file),
                    None => OpenOptions::new().write(true).open(&held.path),
                }
                .and_then(|file| {
                    file.write_all_at(&slot, at)?;
                    file.sync_data()?;
                    held.file = Some(file);
                    Ok(())
                });
                written.map_err(|e| io_error("cannot write the token set", &held.path, &e))?;
                next
            }
            None => {
                let unslotted = held.stored.is_some() && held.layout.is_none();
                let (file, layout) = slots::new_file(&slot, seq);
                // The open file is the one replaced: a next write reopens the path.
                held.file = None;
                self.replace(&held.path, &file)?;
                if unslotted {
                    // Its marks are in the record now; the files of before would be stale.
                    remove_marks(&held.path);
                }
                layout
            }
        });
        held.stored = Some(stored.clone());
        Ok(())
    }

    /// Sets `version`'s mark (`what`; `None`: the sending mark) to `to`, where `version` is
    /// the one stored: `None` when it is not, else whether the mark changed (and the change
    /// is durable). A mark already set keeps its first time.
    fn set_mark(
        &self,
        held: &mut Held,
        version: u64,
        what: Option<Reported>,
        to: Option<SystemTime>,
    ) -> Result<Option<bool>, StoreError> {
        let Some(mut marked) = held.at(version).cloned() else {
            return Ok(None);
        };
        let mark = match what {
            Some(what) => marked.mark_mut(what),
            None => &mut marked.sending,
        };
        if mark.is_some() == to.is_some() {
            return Ok(Some(false));
        }
        *mark = to;
        self.write(held, &marked)?;
        Ok(Some(true))
    }

    /// Writes `bytes` to `path` through a synced temporary file and a rename, durable once
    /// the directory's flush covers the rename.
    fn replace(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let temp = temp_of(path);
        // What a crash left (it holds tokens): gone before the new one is made, with its mode.
        let _ = std::fs::remove_file(&temp);
        let written = (|| {
            let mut file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&temp)?;
            file.write_all(bytes)?;
            // The data and its size: all a reader of the renamed file needs.
            file.sync_data()?;
            std::fs::rename(&temp, path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            io_error("cannot write the token set", path, &e)
        })?;
        self.flush_dir()
    }

    /// Makes every rename and removal so far in the directory durable.
    fn flush_dir(&self) -> Result<(), StoreError> {
        self.flushes
            .flush(&self.dir)
            .map_err(|e| io_error("cannot sync the store directory", &self.dir, &e))
    }
}

/// The tombstone of a deleted set: `<key>.removed`, holding its last version.
const REMOVED: &str = "removed";

/// The last version of `path`'s deleted set, if it was deleted (and nothing stored since).
fn removed_version(path: &Path) -> Result<Option<u64>, StoreError> {
    let tomb = path.with_extension(REMOVED);
    match std::fs::read_to_string(&tomb) {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(
            "cannot read the removal of the token set",
            &tomb,
            &e,
        )),
    }
}

/// Removes the mark files a store made before the slots kept beside a set (best effort: a
/// mark left behind names a version no longer stored, and is read only beside a JSON file of
/// before).
fn remove_marks(path: &Path) {
    for kind in MARKS {
        let _ = std::fs::remove_file(path.with_extension(kind));
    }
}

/// Runs `work` holding `key`'s write lock, with its file as stored.
fn with_write_lock<T>(
    store: &FileStore,
    key: &str,
    work: impl FnOnce(&mut Held) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let name = file_name(key);
    let (path, lock_path) = (store.named(&name, "json"), store.named(&name, "write.lock"));
    let lock = open_lock_file(&lock_path)?;
    lock.lock()
        .map_err(|e| io_error("cannot lock for writing", &lock_path, &e))?;
    // Read and written through one open file: one `open` and `close` a write fewer.
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("cannot read the token set", &path, &e)),
    };
    let read = match &mut file {
        Some(file) => read_open(&path, file)?,
        None => Read::Missing,
    };
    let (stored, layout) = match read {
        Read::Missing => (None, None),
        Read::Found(stored, layout) => (Some(stored), layout),
        // Nobody else writes while the lock is held.
        Read::Torn => return Err(damaged(&path)),
    };
    work(&mut Held {
        path,
        file,
        stored,
        layout,
    })
}

/// The temporary file a write of `path` goes through: `<name>.tmp` beside it. One per file:
/// every writer of a key holds the key's write lock, so no two writes share it, and a file a
/// crash left between write and rename is simply replaced by the next write (no directory
/// scan: a scan per write made every write cost as much as the directory is large).
fn temp_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| StoreError::new("a file operation was cancelled"))?
}

/// The key a file name stands for (the inverse of [`file_name`]); `None` for a name no key has.
fn key_of(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The keys under `prefix` of the directory's `<key>.json` files.
fn keys_in(dir: &Path, prefix: &str) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    each_key(dir, prefix, |key, _| {
        keys.push(key);
        Ok(())
    })?;
    Ok(keys)
}

/// Calls `each` with the key and the directory entry of every `<key>.json` file under
/// `prefix`, in the directory's order.
fn each_key(
    dir: &Path,
    prefix: &str,
    mut each: impl FnMut(String, &std::fs::DirEntry) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let listing_failed = |e: std::io::Error| io_error("cannot list the store directory", dir, &e);
    for entry in std::fs::read_dir(dir).map_err(listing_failed)? {
        let entry = entry.map_err(listing_failed)?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if let Some(key) = key_of(stem).filter(|k| k.starts_with(prefix)) {
            each(key, &entry)?;
        }
    }
    Ok(())
}

impl TokenStore for FileStore {
    /// The keys of the directory's `<key>.json` files (a directory listing: it reads no set).
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StoreError>> {
        let dir = self.dir.clone();
        let prefix = prefix.to_owned();
        Box::pin(blocking(move || keys_in(&dir, &prefix).map(Some)))
    }

    /// A walk's pages from one scan of the directory, made off the async threads when its
    /// first page is asked for (one step instead of one per set). A scan reads only the files
    /// changed since it last read them (the `scan` module); a set that becomes due after the
    /// scan waits for the next walk.
    fn due<'a>(
        &'a self,
        prefix: &'a str,
        until: SystemTime,
        after: DueAfter<'a>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Due>, StoreError>> {
        let store = self.clone();
        let prefix = prefix.to_owned();
        let after = after.map(|(at, key)| (at, key.to_owned()));
        Box::pin(blocking(move || {
            let mut scans = store.scans.lock().unwrap_or_else(|p| p.into_inner());
            let after = after.as_ref().map(|(at, key)| (*at, key.as_str()));
            scans.page(&store, &prefix, until, after, limit).map(Some)
        }))
    }

    /// Without a lock, on the calling task (a small file, from the page cache); a read that
    /// meets a write in progress in both slots (a slow reader between two writes) reads
    /// again under the write lock, off the async threads.
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        let read = read(&self.path_of(key));
        Box::pin(async move {
            match read? {
                Read::Missing => Ok(None),
                Read::Found(stored, _) => Ok(Some(stored)),
                Read::Torn => {
                    let (store, key) = (self.clone(), key.to_owned());
                    blocking(move || with_write_lock(&store, &key, |held| Ok(held.stored.take())))
                        .await
                }
            }
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        tokens: &'a TokenSet,
        expected: Option<u64>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        let tokens = tokens.clone();
        let (store, key) = (self.clone(), key.to_owned());
        Box::pin(blocking(move || {
            with_write_lock(&store, &key, |held| {
                let current = held.version();
                if current != expected {
                    return Ok(Saved::Conflict(current));
                }
                let removed = match current {
                    Some(_) => None,
                    None => removed_version(&held.path)?,
                };
                let version = current.or(removed).unwrap_or(0) + 1;
                store.write(held, &Stored::unmarked(version, tokens))?;
                if removed.is_some() {
                    // Outnumbered by the set now (a crash before this leaves both: the set
                    // wins).
                    let _ = std::fs::remove_file(held.path.with_extension(REMOVED));
                }
                Ok(Saved::Written(version))
            })
        }))
    }

    fn restore<'a>(
        &'a self,
        key: &'a str,
        set: &'a Stored,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        let set = Stored {
            read_at: None,
            ..set.clone()
        };
        let (store, key) = (self.clone(), key.to_owned());
        Box::pin(blocking(move || {
            with_write_lock(&store, &key, |held| {
                let current = held.version();
                if let Some(current) = current.filter(|c| *c >= set.version) {
                    return Ok(Saved::Conflict(Some(current)));
                }
                // A removal is never undone by a put-back, whatever its version.
                if current.is_none()
                    && let Some(removed) = removed_version(&held.path)?
                {
                    return Ok(Saved::Conflict(Some(removed)));
                }
                store.write(held, &set)?;
                Ok(Saved::Written(set.version))
            })
        }))
    }

    fn delete<'a>(
        &'a self,
        key: &'a str,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<Saved, StoreError>> {
        let (store, key) = (self.clone(), key.to_owned());
        Box::pin(blocking(move || {
            with_write_lock(&store, &key, |held| {
                let path = &held.path;
                // The tombstone first: once the set is gone, its version must already be
                // recorded, or a new set could repeat it.
                let last = held.version().max(removed_version(path)?);
                if let Some(last) = last {
                    store.replace(&path.with_extension(REMOVED), last.to_string().as_bytes())?;
                }
                let marks = MARKS.iter().map(|kind| path.with_extension(kind));
                for file in std::iter::once(path.to_path_buf()).chain(marks) {
                    match std::fs::remove_file(&file) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(io_error("cannot delete the token set", &file, &e));
                        }
                        _ => {}
                    }
                }
                store.flush_dir()?;
                Ok(Saved::Written(0))
            })
        }))
    }

    fn mark_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (store, key) = (self.clone(), key.to_owned());
        Box::pin(blocking(move || {
            with_write_lock(&store, &key, |held| {
                // A mark of this version already says when the token was first sent.
                let marked = store.set_mark(held, version, None, Some(SystemTime::now()))?;
                Ok(marked.is_some())
            })
        }))
    }

    fn mark_reported<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        what: Reported,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (store, key) = (self.clone(), key.to_owned());
        Box::pin(blocking(move || {
            with_write_lock(&store, &key, |held| {
                let marked = store.set_mark(held, version, Some(what), Some(SystemTime::now()))?;
                Ok(marked == Some(true))
            })
        }))
    }

    fn clear_sending<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        _lock: &'a StoreLock,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (store, key) = (self.clone(), key.to_owned());
        Box::pin(blocking(move || {
            with_write_lock(&store, &key, |held| {
                store.set_mark(held, version, None, None)?;
                Ok(())
            })
        }))
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        Box::pin(std::future::ready(try_lock_file(
            &self.lock_path(key, "lock"),
        )))
    }

    /// The lock, then (where it was taken) the set, in one step on the calling task.
    fn try_lock_loading<'a>(
        &'a self,
        key: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        let locked = (|| {
            let name = file_name(key);
            let Some(lock) = try_lock_file(&self.named(&name, "lock"))? else {
                return Ok(None);
            };
            let set = match read(&self.named(&name, "json"))? {
                Read::Found(stored, _) => Some(stored),
                // Read again by the holder's own load.
                Read::Missing | Read::Torn => None,
            };
            Ok(Some(lock.with_set(set)))
        })();
        Box::pin(std::future::ready(locked))
    }
}

/// The refresh lock in `path`, unless another holder has it.
fn try_lock_file(path: &Path) -> Result<Option<StoreLock>, StoreError> {
    let file = open_lock_file(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(StoreLock::holding(file))),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(io_error("cannot take the refresh lock", path, &e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tokenkit-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn tokens(access: &str) -> TokenSet {
        TokenSet {
            access_token: access.into(),
            refresh_token: Some("r".into()),
            expires_at: None,
            token_type: None,
            refresh_expires_at: None,
            extras: Default::default(),
            origin: None,
            issuer: None,
            values: Default::default(),
        }
    }

    /// The keeper's scans read a file again only once it changed: a file just written is
    /// read on every scan; one still for longer than `SETTLED` when its `stat` was taken is
    /// remembered by that `stat`; a write in place, a dead mark, a removal and a new file
    /// of the removed key are each seen by the next scan; nothing is trusted past
    /// `REREAD_AFTER`.
    #[tokio::test]
    async fn scans_read_only_the_files_changed_since() {
        fn later() -> SystemTime {
            SystemTime::now() + Duration::from_secs(10)
        }
        fn much_later() -> SystemTime {
            SystemTime::now() + Duration::from_secs(100)
        }
        let dir = scratch("scans");
        let store = FileStore::new(&dir).unwrap();
        let soon = SystemTime::now() + Duration::from_secs(60);
        let until = soon + Duration::from_secs(3600);
        let dying = |access: &str, at| TokenSet {
            refresh_expires_at: Some(at),
            ..tokens(access)
        };
        for key in ["a", "b", "c"] {
            assert_eq!(
                store.save(key, &dying(key, soon), None).await.unwrap(),
                Saved::Written(1)
            );
        }
        // Another handle writes, as another process would: the scans see only the files.
        let other = FileStore::new(&dir).unwrap();
        let (store, other) = (&store, &other);
        let due = || async move {
            let due = store.due("", until, None, 100).await.unwrap().unwrap();
            due.into_iter().map(|(key, _)| key).collect::<Vec<_>>()
        };
        let reads = || store.scans.lock().unwrap().reads;

        assert_eq!(due().await, ["a", "b", "c"]);
        assert_eq!(due().await, ["a", "b", "c"]);
        assert_eq!(reads(), 6, "just written: read by every scan");

        store.scans.lock().unwrap().now = later;
        assert_eq!(due().await, ["a", "b", "c"]);
        assert_eq!(reads(), 9, "read once more, now settled");
        assert_eq!(due().await, ["a", "b", "c"]);
        assert_eq!(reads(), 9, "remembered");

        let later_still = until + Duration::from_secs(1);
        let b2 = dying("b2", later_still);
        assert_eq!(
            other.save("b", &b2, Some(1)).await.unwrap(),
            Saved::Written(2)
        );
        assert_eq!(due().await, ["a", "c"], "the write in place is seen");
        assert_eq!(reads(), 10);

        let lock = other
            .try_lock("a", Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        let marked = other.mark_reported("a", 1, Reported::Dead, &lock);
        assert!(marked.await.unwrap());
        assert_eq!(due().await, ["c"], "the dead mark is seen");
        assert_eq!(reads(), 11);
        drop(lock);

        let lock = other
            .try_lock("c", Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        other.delete("c", &lock).await.unwrap();
        assert!(due().await.is_empty(), "the removal is seen");
        assert_eq!(reads(), 11);
        assert_eq!(
            other.save("c", &dying("c2", soon), None).await.unwrap(),
            Saved::Written(2)
        );
        drop(lock);
        assert_eq!(due().await, ["c"], "a new file of the key is read");
        assert_eq!(reads(), 12);
        assert_eq!(due().await, ["c"]);
        assert_eq!(reads(), 12);

        store.scans.lock().unwrap().now = much_later;
        assert_eq!(due().await, ["c"]);
        assert_eq!(reads(), 15, "past REREAD_AFTER every file is read again");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Eight writers at once: the first flush covers only the first, which started it; the
    /// seven that took their tickets while it ran share the next one. A flush that fails
    /// covers nobody, and the waiters flush again themselves.
    #[test]
    fn writes_at_once_share_the_directory_s_flush() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let flushes = Flushes::default();
        let syncs = AtomicU32::new(0);
        let sync = || {
            if syncs.fetch_add(1, Ordering::SeqCst) == 0 {
                // The first flush runs until the seven others are waiting for it.
                while flushes.state.lock().unwrap().tickets < 8 {
                    std::thread::yield_now();
                }
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let first = scope.spawn(|| flushes.flush_with(sync));
            while syncs.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            let rest: Vec<_> = (0..7)
                .map(|_| scope.spawn(|| flushes.flush_with(sync)))
                .collect();
            first.join().unwrap().unwrap();
            for writer in rest {
                writer.join().unwrap().unwrap();
            }
        });
        assert_eq!(syncs.load(Ordering::SeqCst), 2, "8 writes, 2 flushes");

        let failing = Flushes::default();
        let tries = AtomicU32::new(0);
        let once_failing = || match tries.fetch_add(1, Ordering::SeqCst) {
            0 => Err(std::io::Error::other("disk full")),
            _ => Ok(()),
        };
        assert!(failing.flush_with(once_failing).is_err());
        failing.flush_with(once_failing).unwrap();
        assert_eq!(failing.state.lock().unwrap().durable, 2);
    }

    #[tokio::test]
    async fn compare_and_set_and_mode() {
        let dir = scratch("cas");
        let store = FileStore::new(&dir).unwrap();
        assert_eq!(store.load("a/b").await.unwrap(), None);
        assert_eq!(
            store.save("a/b", &tokens("1"), None).await.unwrap(),
            Saved::Written(1)
        );
        assert_eq!(
            store.save("a/b", &tokens("x"), None).await.unwrap(),
            Saved::Conflict(Some(1))
        );
        assert_eq!(
            store.save("a/b", &tokens("2"), Some(1)).await.unwrap(),
            Saved::Written(2)
        );
        let stored = store.load("a/b").await.unwrap().unwrap();
        assert_eq!(
            (stored.version, stored.tokens.access_token.expose()),
            (2, "2")
        );
        let mode = std::fs::metadata(store.path_of("a/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.path_of("a/b").ends_with("a%2Fb.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_refresh_lock_is_exclusive_until_dropped() {
        let dir = scratch("lock");
        let store = FileStore::new(&dir).unwrap();
        let ttl = Duration::from_secs(1);
        let held = store.try_lock("k", ttl).await.unwrap().expect("free");
        assert!(store.try_lock("k", ttl).await.unwrap().is_none());
        held.release().await;
        assert!(store.try_lock("k", ttl).await.unwrap().is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_crash_s_temporary_files_go_with_the_next_write() {
        let dir = scratch("leftovers");
        let store = FileStore::new(&dir).unwrap();
        // What a kill -9 between write and rename leaves, for this key and another one.
        let mine = dir.join("k.json.tmp");
        let theirs = dir.join("other.json.tmp");
        std::fs::write(&mine, "SNTL").unwrap();
        std::fs::write(&theirs, "SNTL").unwrap();
        store.save("k", &tokens("1"), None).await.unwrap();
        assert!(!mine.exists(), "the crash's temporary file is still there");
        assert!(theirs.exists(), "another key's file was touched");
        assert_eq!(store.load("k").await.unwrap().unwrap().version, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn held_lock() -> StoreLock {
        StoreLock::holding(())
    }

    /// After the first write, writes go in place: the same file (inode), the same length, no
    /// file beside it, the marks in the record.
    #[tokio::test]
    async fn writes_after_the_first_go_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch("in-place");
        let store = FileStore::new(&dir).unwrap();
        let path = store.path_of("k");
        store.save("k", &tokens("1"), None).await.unwrap();
        let first = std::fs::metadata(&path).unwrap();
        let lock = held_lock();
        assert!(store.mark_sending("k", 1, &lock).await.unwrap());
        assert!(store.load("k").await.unwrap().unwrap().sending.is_some());
        assert!(
            store
                .mark_reported("k", 1, Reported::Dead, &lock)
                .await
                .unwrap()
        );
        assert!(
            !store
                .mark_reported("k", 1, Reported::Dead, &lock)
                .await
                .unwrap()
        );
        store.clear_sending("k", 1, &lock).await.unwrap();
        let cleared = store.load("k").await.unwrap().unwrap();
        assert_eq!((cleared.sending, cleared.dead.is_some()), (None, true));
        assert_eq!(
            store.save("k", &tokens("2"), Some(1)).await.unwrap(),
            Saved::Written(2)
        );
        let now = std::fs::metadata(&path).unwrap();
        assert_eq!((now.ino(), now.len()), (first.ino(), first.len()));
        let stored = store.load("k").await.unwrap().unwrap();
        assert_eq!(
            (stored.version, stored.dead),
            (2, None),
            "a new version, no marks"
        );
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert_eq!(names, ["k.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A store made before the slots: a JSON file with its marks beside it reads as it is;
    /// the next write puts it in slots and takes the mark files away.
    #[tokio::test]
    async fn a_store_made_before_the_slots_reads_and_moves_to_them() {
        let dir = scratch("unslotted");
        let store = FileStore::new(&dir).unwrap();
        let path = store.path_of("k");
        std::fs::write(&path, super::super::record::encode(4, &tokens("old"))).unwrap();
        std::fs::write(path.with_extension("sending"), "4 1700000000000").unwrap();
        std::fs::write(path.with_extension("dead"), "3 1700000000000").unwrap();
        let stored = store.load("k").await.unwrap().unwrap();
        assert_eq!(stored.version, 4);
        assert_eq!(stored.sending, Some(from_millis(1_700_000_000_000)));
        assert_eq!(stored.dead, None, "a mark of version 3 is not version 4's");

        let lock = held_lock();
        assert!(
            store
                .mark_reported("k", 4, Reported::Expiring, &lock)
                .await
                .unwrap()
        );
        assert!(slots::is_slotted(&std::fs::read(&path).unwrap()));
        assert!(!path.with_extension("sending").exists());
        let moved = store.load("k").await.unwrap().unwrap();
        assert_eq!(moved.sending, Some(from_millis(1_700_000_000_000)));
        assert!(moved.expiring.is_some());
        assert_eq!(moved.tokens.access_token.expose(), "old");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What a crash mid-write leaves on disk (part of the new slot written over the older
    /// record): the last acknowledged record, and the next write lands.
    #[tokio::test]
    async fn a_write_torn_by_a_crash_leaves_the_record_before_it() {
        let dir = scratch("torn");
        let store = FileStore::new(&dir).unwrap();
        let path = store.path_of("k");
        store.save("k", &tokens("1"), None).await.unwrap();
        store.save("k", &tokens("2"), Some(1)).await.unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (layout, _) = slots::current(&bytes).unwrap();
        let next = slots::encode(
            layout.seq + 1,
            b"{\"version\": 3, \"access_token\": \"SNTL\"}",
        );
        let (at, _) = layout.next(&next).unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&next[..next.len() / 2], at).unwrap();
        let stored = store.load("k").await.unwrap().unwrap();
        assert_eq!(
            (stored.version, stored.tokens.access_token.expose()),
            (2, "2")
        );
        assert_eq!(
            store.save("k", &tokens("3"), Some(2)).await.unwrap(),
            Saved::Written(3)
        );
        assert_eq!(store.load("k").await.unwrap().unwrap().version, 3);

        // Both slots damaged: a clear error under the lock, and nothing written over them.
        let mut bytes = std::fs::read(&path).unwrap();
        let half = bytes.len() / 2;
        bytes[40] ^= 1;
        bytes[half + 40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = store.load("k").await.unwrap_err();
        assert!(err.message.contains("neither of its two slots"), "{err}");
        assert!(store.save("k", &tokens("4"), Some(3)).await.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A set too large for its slots gets a new file with larger ones; a smaller one after
    /// it goes in place again.
    #[tokio::test]
    async fn a_set_outgrowing_its_slots_moves_to_a_larger_file() {
        let dir = scratch("grow");
        let store = FileStore::new(&dir).unwrap();
        store.save("k", &tokens("1"), None).await.unwrap();
        let small = std::fs::metadata(store.path_of("k")).unwrap().len();
        let mut large = tokens("2");
        large
            .extras
            .insert("blob".into(), "x".repeat(20_000).into());
        store.save("k", &large, Some(1)).await.unwrap();
        let grown = std::fs::metadata(store.path_of("k")).unwrap().len();
        assert!(grown > small + 40_000, "{small} -> {grown}");
        assert_eq!(store.load("k").await.unwrap().unwrap().tokens, large);
        store.save("k", &tokens("3"), Some(2)).await.unwrap();
        assert_eq!(std::fs::metadata(store.path_of("k")).unwrap().len(), grown);
        assert_eq!(store.load("k").await.unwrap().unwrap().version, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Readers take no lock: while a writer rewrites the slots as fast as it can, every read
    /// finds a whole record, and versions never go backwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_beside_a_writer_always_find_a_whole_record() {
        let dir = scratch("readers");
        let store = FileStore::new(&dir).unwrap();
        store.save("k", &tokens("0"), None).await.unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for v in 1..=300u64 {
                    let set = tokens(&"a".repeat(v as usize % 97 + 1));
                    assert_eq!(
                        store.save("k", &set, Some(v)).await.unwrap(),
                        Saved::Written(v + 1)
                    );
                }
            })
        };
        let mut last = 0;
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let version = store.load("k").await.unwrap().unwrap().version;
            assert!(version >= last, "{last} then {version}");
            last = version;
            reads += 1;
        }
        writer.await.unwrap();
        assert_eq!(store.load("k").await.unwrap().unwrap().version, 301);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_use_is_refused() {
        let dir = scratch("perms");
        std::fs::create_dir_all(&dir).unwrap();
        for mode in [0o755, 0o770, 0o701] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = FileStore::new(&dir).unwrap_err();
            assert!(err.message.contains("chmod 700"), "{err}");
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(FileStore::new(&dir).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
