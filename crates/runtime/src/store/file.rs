//! Token sets in files: one JSON file per credential, replaced atomically.

use super::record::{decode, encode, from_millis, to_millis};
use super::{Reported, Saved, StoreError, StoreLock, Stored, TokenStore};
use crate::client::BoxFuture;
use crate::token::TokenSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

/// Token sets in a directory, shared by every process that opens the same directory.
///
/// - `<key>.json` holds the set; writes go to `<key>.json.tmp` (mode 0600), flushed to disk and
///   renamed over it, so a crash leaves the old set or the new one, never a torn file (and the
///   next write replaces the temporary file it left).
/// - `<key>.lock` carries the refresh lock: an OS file lock, which dies with its process, so a
///   crashed refresher never blocks the others.
/// - `<key>.write.lock` serializes the compare-and-set of writers.
/// - `<key>.sending` holds the version whose refresh token a request may have spent and when
///   it was marked ([`TokenStore::mark_sending`]); `<key>.dead` and `<key>.expiring` the
///   version something was reported about ([`TokenStore::mark_reported`]); a write of a new
///   version removes them all.
/// - `<key>.removed` holds the last version of a deleted set (a tombstone): the next set of
///   the key is numbered after it, and nothing is put back over the removal.
///
/// Writes that land at once share the directory's flush (group commit): each is acknowledged
/// only after a flush of the directory that started after its rename.
#[derive(Clone)]
pub struct FileStore {
    dir: PathBuf,
    flushes: Arc<Flushes>,
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
        })
    }

    /// The file holding `key`'s token set.
    pub fn path_of(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_name(key)))
    }

    fn lock_path(&self, key: &str, kind: &str) -> PathBuf {
        self.dir.join(format!("{}.{kind}", file_name(key)))
    }
}

/// A file name for any key: safe characters as they are, others as `%XX`.
fn file_name(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
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

fn read(path: &Path) -> Result<Option<Stored>, StoreError> {
    let mut stored = match std::fs::read(path) {
        Ok(bytes) => decode(&bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot read the token set", path, &e)),
    };
    stored.sending = read_mark(path, SENDING, stored.version)?;
    stored.dead = read_mark(path, Reported::Dead.as_str(), stored.version)?;
    stored.expiring = read_mark(path, Reported::Expiring.as_str(), stored.version)?;
    stored.announced = read_mark(path, Reported::Announced.as_str(), stored.version)?;
    Ok(Some(stored))
}

/// The mark of a refresh in flight ([`TokenStore::mark_sending`]).
const SENDING: &str = "sending";
/// Every mark's file extension.
const MARKS: [&str; 4] = [SENDING, "dead", "expiring", "announced"];

/// When `version` got the mark `kind`: a file beside the set holding `<version> <milliseconds
/// since the epoch>`. A mark of another version belongs to a set since replaced: none.
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

impl FileStore {
    /// Gives `version` the mark `kind`, made at `at`.
    fn write_mark(
        &self,
        path: &Path,
        kind: &str,
        version: u64,
        at: SystemTime,
    ) -> Result<(), StoreError> {
        let mark = format!("{version} {}", to_millis(at));
        self.replace(&path.with_extension(kind), mark.as_bytes())
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

/// Removes the marks of whatever version is stored (best effort: a mark left behind names a
/// version no longer stored, and reads as none).
fn remove_marks(path: &Path) {
    for kind in MARKS {
        let _ = std::fs::remove_file(path.with_extension(kind));
    }
}

/// Runs `work` holding `key`'s write lock, with the current version.
fn with_write_lock<T>(
    store: &FileStore,
    key: &str,
    work: impl FnOnce(&Path, Option<u64>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let path = store.path_of(key);
    let lock_path = store.lock_path(key, "write.lock");
    let lock = open_lock_file(&lock_path)?;
    lock.lock()
        .map_err(|e| io_error("cannot lock for writing", &lock_path, &e))?;
    let current = read(&path)?.map(|s| s.version);
    work(&path, current)
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

impl TokenStore for FileStore {
    /// The keys of the directory's `<key>.json` files (a directory listing: it reads no set).
    fn list<'a>(
        &'a self,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, StoreError>> {
        let dir = self.dir.clone();
        let prefix = prefix.to_owned();
        Box::pin(blocking(move || {
            let entries = std::fs::read_dir(&dir)
                .map_err(|e| io_error("cannot list the store directory", &dir, &e))?;
            let mut keys = Vec::new();
            for entry in entries {
                let entry =
                    entry.map_err(|e| io_error("cannot list the store directory", &dir, &e))?;
                let name = entry.file_name();
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                    continue;
                };
                if let Some(key) = key_of(stem).filter(|k| k.starts_with(&prefix)) {
                    keys.push(key);
                }
            }
            Ok(Some(keys))
        }))
    }

    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Stored>, StoreError>> {
        let path = self.path_of(key);
        Box::pin(blocking(move || read(&path)))
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
            with_write_lock(&store, &key, |path, current| {
                if current != expected {
                    return Ok(Saved::Conflict(current));
                }
                let base = match current {
                    Some(current) => Some(current),
                    None => removed_version(path)?,
                };
                let version = base.unwrap_or(0) + 1;
                store.replace(path, &encode(version, &tokens))?;
                // The marks belonged to the version just replaced; the tombstone is now
                // outnumbered by the set (a crash before this leaves both: the set wins).
                remove_marks(path);
                let _ = std::fs::remove_file(path.with_extension(REMOVED));
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
        let set = set.clone();
        let (store, key) = (self.clone(), key.to_owned());
        Box::pin(blocking(move || {
            with_write_lock(&store, &key, |path, current| {
                if let Some(current) = current.filter(|c| *c >= set.version) {
                    return Ok(Saved::Conflict(Some(current)));
                }
                // A removal is never undone by a put-back, whatever its version.
                if current.is_none()
                    && let Some(removed) = removed_version(path)?
                {
                    return Ok(Saved::Conflict(Some(removed)));
                }
                remove_marks(path);
                store.replace(path, &encode(set.version, &set.tokens))?;
                let marks = [
                    (SENDING, set.sending),
                    (Reported::Dead.as_str(), set.dead),
                    (Reported::Expiring.as_str(), set.expiring),
                    (Reported::Announced.as_str(), set.announced),
                ];
                for (kind, at) in marks {
                    if let Some(at) = at {
                        store.write_mark(path, kind, set.version, at)?;
                    }
                }
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
            with_write_lock(&store, &key, |path, current| {
                // The tombstone first: once the set is gone, its version must already be
                // recorded, or a new set could repeat it.
                let last = current.max(removed_version(path)?);
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
            with_write_lock(&store, &key, |path, current| {
                if current != Some(version) {
                    return Ok(false);
                }
                // A mark of this version already says when the token was first sent.
                if read(path)?.is_some_and(|s| s.sending.is_some()) {
                    return Ok(true);
                }
                store.write_mark(path, SENDING, version, SystemTime::now())?;
                Ok(true)
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
            with_write_lock(&store, &key, |path, current| {
                let kind = what.as_str();
                if current != Some(version) || read_mark(path, kind, version)?.is_some() {
                    return Ok(false);
                }
                store.write_mark(path, kind, version, SystemTime::now())?;
                Ok(true)
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
            with_write_lock(&store, &key, |path, current| {
                let marker = path.with_extension(SENDING);
                if current == Some(version) {
                    match std::fs::remove_file(&marker) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(io_error("cannot clear the sending mark", &marker, &e));
                        }
                        _ => {}
                    }
                }
                Ok(())
            })
        }))
    }

    fn try_lock<'a>(
        &'a self,
        key: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<StoreLock>, StoreError>> {
        let path = self.lock_path(key, "lock");
        Box::pin(blocking(move || {
            let file = open_lock_file(&path)?;
            match file.try_lock() {
                Ok(()) => Ok(Some(StoreLock::holding(file))),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => {
                    Err(io_error("cannot take the refresh lock", &path, &e))
                }
            }
        }))
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
