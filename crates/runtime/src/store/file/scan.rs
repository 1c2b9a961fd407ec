//! The keeper's scans of the directory: which sets are due, read from each file once and
//! remembered while the file stays as it was.
//!
//! A keeper looks every second or so, and every look asks for the due sets of the whole
//! directory; reading every file each time cost about 8 µs a set (10,000 sets: 80 ms of CPU a
//! look). A scan now reads a file only when its `stat` differs from the one taken before the
//! file was last read. Every write of a set changes its file's change time (in place) or its
//! inode (a new file), so an unchanged `stat` means unchanged contents, with one exception:
//! file times have a granularity (a kernel tick, a second on some file systems), and a write
//! in the same tick as the read before it leaves the same times. So, as git does for its
//! index, a file is remembered only if it had been still for [`SETTLED`] when its `stat` was
//! taken; and nothing is remembered for longer than [`REREAD_AFTER`], which bounds what a
//! clock stepped forward, or a file server's clock behind ours, could hide.

use super::super::{Due, DueAfter, StoreError, due_after};
use super::{FileStore, Read, each_key, read};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a file must have been unchanged when its `stat` was taken to be remembered: far
/// above any file system's timestamp granularity (2 s on FAT, a tick on ext4).
const SETTLED: Duration = Duration::from_secs(5);
/// How long a file is trusted from one reading at most.
const REREAD_AFTER: Duration = Duration::from_secs(60);

/// The walks in progress and what the scans remembered, per store.
pub(super) struct Scans {
    walks: HashMap<String, Walk>,
    seen: HashMap<String, Seen>,
    /// The number of the last scan, to forget the files it no longer found.
    scans: u64,
    /// The files the scans read (those they did not find as remembered).
    pub reads: u64,
    /// The wall clock, which file times are compared with (a test's own in tests).
    pub now: fn() -> SystemTime,
}

impl Default for Scans {
    fn default() -> Self {
        Self {
            walks: HashMap::new(),
            seen: HashMap::new(),
            scans: 0,
            reads: 0,
            now: SystemTime::now,
        }
    }
}

/// A walk's view of the directory: every set under a prefix due by `until`, in the order of
/// (time, key), scanned once when the walk starts and paged from then on.
struct Walk {
    until: SystemTime,
    due: Due,
}

/// What a scan needs of a set, and the file it was read from.
struct Seen {
    stamp: Stamp,
    /// When the refresh token dies; `None` if it never does or the set is marked dead.
    dies: Option<SystemTime>,
    /// When it was read, by [`Scans::now`].
    read: SystemTime,
    scan: u64,
}

/// A file's identity, size and times, as `stat` gives them.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Whether the file had been unchanged for [`SETTLED`] at `at`.
    fn settled_at(&self, at: SystemTime) -> bool {
        let (secs, nanos) = self.ctime;
        let since_epoch = u64::try_from(secs)
            .ok()
            .zip(u32::try_from(nanos).ok())
            .map(|(secs, nanos)| Duration::new(secs, nanos));
        // A time before the epoch or past what `SystemTime` holds: never settled.
        since_epoch
            .and_then(|d| UNIX_EPOCH.checked_add(d))
            .and_then(|changed| at.duration_since(changed).ok())
            .is_some_and(|still| still >= SETTLED)
    }
}

impl Scans {
    /// A page of the walk under `prefix`: the due sets after `after`, at most `limit`. The
    /// walk's first page scans the directory; the others page through that scan, and the
    /// last one forgets it. A set that becomes due after the scan waits for the next walk.
    pub fn page(
        &mut self,
        store: &FileStore,
        prefix: &str,
        until: SystemTime,
        after: DueAfter<'_>,
        limit: usize,
    ) -> Result<Due, StoreError> {
        let walking = self
            .walks
            .get(prefix)
            .is_some_and(|walk| after.is_some() && walk.until == until);
        if !walking {
            let due = self.scan(store, prefix, until)?;
            self.walks.insert(prefix.to_owned(), Walk { until, due });
        }
        let due = &self.walks[prefix].due;
        let start = due.partition_point(|(key, at)| !due_after(after, *at, key));
        let page: Due = due[start..].iter().take(limit).cloned().collect();
        if page.len() < limit {
            self.walks.remove(prefix);
        }
        Ok(page)
    }

    /// Every set under `prefix` whose refresh token dies by `until`, not marked dead, in the
    /// order of (time, key). A set being written in both slots as it is read is skipped (it
    /// is being renewed).
    fn scan(
        &mut self,
        store: &FileStore,
        prefix: &str,
        until: SystemTime,
    ) -> Result<Due, StoreError> {
        self.scans += 1;
        // Before every `stat`: a file still for `SETTLED` by then was still when stamped.
        let now = (self.now)();
        let mut due = Vec::new();
        each_key(&store.dir, prefix, |key, entry| {
            let stamp = match entry.metadata() {
                // A link's own times say nothing of what it points to: read on every scan.
                Ok(meta) => meta.is_file().then(|| Stamp::of(&meta)),
                // Removed since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => {
                    let path = entry.path();
                    return Err(super::io_error("cannot inspect the token set", &path, &e));
                }
            };
            if let Some(dies) = self.dies(&key, entry, stamp, now)?
                && dies <= until
            {
                due.push((key, dies));
            }
            Ok(())
        })?;
        let scan = self.scans;
        self.seen
            .retain(|key, seen| seen.scan == scan || !key.starts_with(prefix));
        due.sort_unstable_by(|(a, at), (b, bt)| (at, a).cmp(&(bt, b)));
        Ok(due)
    }

    /// When `key`'s refresh token dies (`None`: never, marked dead, or no whole set to read),
    /// from what was remembered of its file (`entry`) if the file is as it was then: `stamp`,
    /// taken after `now` (`None`: not a regular file, never remembered).
    fn dies(
        &mut self,
        key: &str,
        entry: &std::fs::DirEntry,
        stamp: Option<Stamp>,
        now: SystemTime,
    ) -> Result<Option<SystemTime>, StoreError> {
        let scan = self.scans;
        if let Some(seen) = self.seen.get_mut(key)
            && Some(seen.stamp) == stamp
            && now
                .duration_since(seen.read)
                .is_ok_and(|age| age < REREAD_AFTER)
        {
            seen.scan = scan;
            return Ok(seen.dies);
        }
        self.seen.remove(key);
        // Read after the stamp: whatever the stamp says, the contents are at least as new.
        self.reads += 1;
        let Read::Found(stored, layout) = read(&entry.path())? else {
            return Ok(None);
        };
        let dies = stored.dies();
        // A set of before the slots keeps its marks in other files, which the stamp misses.
        if let Some(stamp) = stamp.filter(|s| layout.is_some() && s.settled_at(now)) {
            let seen = Seen {
                stamp,
                dies,
                read: now,
                scan,
            };
            self.seen.insert(key.to_owned(), seen);
        }
        Ok(dies)
    }
}
